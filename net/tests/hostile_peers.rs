//! Peers that authenticate and then misbehave, and strangers that never do: the connection is
//! closed with an error naming what was wrong, nothing malformed is delivered, nothing panics.

mod support;

use std::sync::Arc;

use support::{loopback, options, secret, Recorder};
use tethys_net::{
    authenticate_dialer, write_message, AuthFailure, Connection, Limits, Listener, MessageKind, NetError, NodeId, WireError, HEADER_BYTES,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

const ROGUE: NodeId = NodeId(1);
const ACCEPTOR: NodeId = NodeId(2);

/// A listening acceptor and a raw, authenticated TCP stream to it that the test writes by hand.
async fn rogue_connection() -> (TcpStream, JoinHandle<Result<Connection, NetError>>, Arc<Recorder>) {
    let listener = Listener::bind(loopback()).await.expect("bind");
    let addr = listener.local_addr();
    let inbound = Recorder::new();
    let accepting = {
        let inbound = inbound.clone();
        tokio::spawn(async move { listener.accept(ACCEPTOR, &secret(), inbound, &options()).await })
    };
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let peer = authenticate_dialer(&mut stream, addr, ROGUE, None, &secret(), options().handshake_timeout).await.expect("handshake");
    assert_eq!(peer, ACCEPTOR);
    // The transport offer that ends the handshake: TCP, so the test's bytes reach the decoder.
    stream.write_all(tethys_net::OFFER_TCP_ONLY).await.expect("offer");
    (stream, accepting, inbound)
}

fn valid_message() -> Vec<u8> {
    let mut bytes = Vec::new();
    write_message(&mut bytes, MessageKind::Data, 9, 1, b"a valid frame", &Limits::default()).expect("small");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_handshake_closes_the_connection_with_a_wire_error() {
    let (mut stream, accepting, inbound) = rogue_connection().await;
    let mut bytes = valid_message();
    let garbage_at = bytes.len() as u64;
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: tethys\r\n\r\n");
    stream.write_all(&bytes).await.expect("write");
    let connection = accepting.await.expect("accept task").expect("accept");
    let reason = inbound.wait_closed(ROGUE).await;
    let expected = WireError::BadMagic { offset: garbage_at, found: *b"GE" };
    assert!(reason.contains(&format!("{expected:?}")), "{reason}");
    let recorded = inbound.recorded();
    assert_eq!(recorded.messages.len(), 1, "only the valid message before the garbage is delivered");
    assert_eq!(recorded.messages[0].payload, b"a valid frame");
    assert!(connection.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_length_closes_the_connection_before_its_payload_arrives() {
    let (mut stream, accepting, inbound) = rogue_connection().await;
    let mut header = valid_message()[..HEADER_BYTES].to_vec();
    header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    stream.write_all(&header).await.expect("write");
    let _connection = accepting.await.expect("accept task").expect("accept");
    let reason = inbound.wait_closed(ROGUE).await;
    assert!(reason.contains("PayloadTooLarge") && reason.contains(&u32::MAX.to_string()), "{reason}");
    assert!(inbound.recorded().messages.is_empty());
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_mid_message_reports_the_truncation() {
    let (mut stream, accepting, inbound) = rogue_connection().await;
    let message = valid_message();
    stream.write_all(&message[..HEADER_BYTES + 4]).await.expect("write");
    stream.shutdown().await.expect("shutdown");
    let _connection = accepting.await.expect("accept task").expect("accept");
    let reason = inbound.wait_closed(ROGUE).await;
    let expected = WireError::TruncatedPayload { offset: 0, received_bytes: 4, payload_bytes: 13 };
    assert!(reason.contains(&format!("{expected:?}")), "{reason}");
    assert!(inbound.recorded().messages.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_up_without_a_close_message_is_reported() {
    let (mut stream, accepting, inbound) = rogue_connection().await;
    stream.write_all(&valid_message()).await.expect("write");
    stream.shutdown().await.expect("shutdown");
    let _connection = accepting.await.expect("accept task").expect("accept");
    let reason = inbound.wait_closed(ROGUE).await;
    assert!(reason.contains("PeerHungUp"), "{reason}");
    assert_eq!(inbound.recorded().messages.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_speaking_another_protocol_is_refused_at_the_handshake() {
    let listener = Listener::bind(loopback()).await.expect("bind");
    let addr = listener.local_addr();
    let inbound = Recorder::new();
    let accepting = {
        let inbound = inbound.clone();
        tokio::spawn(async move { listener.accept(ACCEPTOR, &secret(), inbound, &options()).await })
    };
    let mut stranger = TcpStream::connect(addr).await.expect("connect");
    stranger.write_all(b"GET / HTTP/1.1\r\nHost: tethys\r\n\r\n....").await.expect("write");
    let accepted = accepting.await.expect("accept task");
    assert!(
        matches!(accepted, Err(NetError::Authentication { failure: AuthFailure::NotTethys { found }, .. }) if found == *b"GET "),
        "{accepted:?}"
    );
    assert!(inbound.recorded().messages.is_empty() && inbound.recorded().closed.is_empty());
}
