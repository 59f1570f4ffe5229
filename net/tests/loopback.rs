//! Two connected processes (in one test process) over 127.0.0.1: ordering, integrity, alignment,
//! sending from any thread, closing, and the refusal of a wrong secret.

mod support;

use std::sync::Arc;

use support::{loopback, options, other_secret, payload_of, secret, Recorder};
use tethys_net::{
    AuthFailure, CloseReason, Connection, ConnectionOptions, Listener, MessageKind, NetError, NodeId, Payload, PayloadBody, SendRefusal,
    PAYLOAD_PREFIX_BYTES,
};

const DIALER: NodeId = NodeId(1);
const ACCEPTOR: NodeId = NodeId(2);

/// A connected pair: (dialer's connection, its recorder, acceptor's connection, its recorder).
async fn connected_pair() -> (Connection, Arc<Recorder>, Connection, Arc<Recorder>) {
    connected_pair_with(options()).await
}

/// `connected_pair` with the given options on both sides.
async fn connected_pair_with(options: ConnectionOptions) -> (Connection, Arc<Recorder>, Connection, Arc<Recorder>) {
    let listener = Listener::bind(loopback()).await.expect("bind");
    let addr = listener.local_addr();
    let (dialer_inbound, acceptor_inbound) = (Recorder::new(), Recorder::new());
    let accepting = {
        let (inbound, options) = (acceptor_inbound.clone(), options.clone());
        tokio::spawn(async move { listener.accept(ACCEPTOR, &secret(), inbound, &options).await })
    };
    let dialed = Connection::dial(addr, DIALER, &secret(), dialer_inbound.clone(), &options).await.expect("dial");
    let accepted = accepting.await.expect("accept task").expect("accept");
    assert_eq!((dialed.peer(), accepted.peer()), (ACCEPTOR, DIALER));
    (dialed, dialer_inbound, accepted, acceptor_inbound)
}

const STREAMS: u64 = 8;
const MESSAGES_PER_STREAM: u64 = 600;

/// Sends every stream's messages interleaved; sizes cross the writer's staging size (4 KiB).
fn send_streams(connection: &Connection) {
    for sequence in 0..MESSAGES_PER_STREAM {
        for stream in 0..STREAMS {
            let len = match (sequence + stream) % 10 {
                0 => 0,
                1 => 9_000,
                _ => ((sequence * 13 + stream) % 300) as usize,
            };
            let kind = if sequence % 5 == 0 { MessageKind::Event } else { MessageKind::Data };
            connection.send(kind, stream, sequence, payload_of(stream, sequence, len)).expect("send");
        }
    }
}

fn check_streams(recorder: &Recorder, from: NodeId) {
    let recorded = recorder.recorded();
    let mut next_sequence = vec![0u64; STREAMS as usize];
    for message in &recorded.messages {
        assert_eq!(message.peer, from);
        assert!(message.aligned, "payload of stream {} message {} is not 16-byte aligned", message.stream, message.aux);
        let expected_sequence = &mut next_sequence[message.stream as usize];
        assert_eq!(message.aux, *expected_sequence, "stream {} out of order", message.stream);
        assert_eq!(message.payload, payload_of(message.stream, message.aux, message.payload.len()));
        *expected_sequence += 1;
    }
    assert!(next_sequence.iter().all(|count| *count == MESSAGES_PER_STREAM));
}

/// Over shared memory (the default between processes of one host), and over TCP.
fn both_transports() -> [(ConnectionOptions, bool); 2] {
    [(options(), true), (ConnectionOptions { shared_memory_ring_bytes: 0, ..options() }, false)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_messages_arrive_in_order_per_stream_intact_and_aligned() {
    for (options, shared_memory) in both_transports() {
        thousands_of_messages_over(options, shared_memory).await;
    }
}

async fn thousands_of_messages_over(options: ConnectionOptions, shared_memory: bool) {
    let (dialed, dialer_inbound, accepted, acceptor_inbound) = connected_pair_with(options).await;
    assert_eq!((dialed.through_shared_memory(), accepted.through_shared_memory()), (shared_memory, shared_memory));
    let total = (STREAMS * MESSAGES_PER_STREAM) as usize;
    // Both directions at once.
    send_streams(&dialed);
    send_streams(&accepted);
    acceptor_inbound.wait_until("every message at the acceptor", |recorded| recorded.messages.len() == total).await;
    dialer_inbound.wait_until("every message at the dialer", |recorded| recorded.messages.len() == total).await;
    check_streams(&acceptor_inbound, DIALER);
    check_streams(&dialer_inbound, ACCEPTOR);
    let (sent, received) = (dialed.stats(), accepted.stats());
    assert_eq!(sent.messages_sent, total as u64);
    assert_eq!(received.messages_received, total as u64);
    assert_eq!(sent.bytes_queued, 0, "everything delivered was written");
    assert_eq!(sent.bytes_sent, received.bytes_received);
    assert!(sent.bytes_sent > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_sending_through_a_small_ring_keep_each_streams_order() {
    // A 64 KiB ring: messages of up to 20 KB from four threads at once fill it, so sends go both
    // ways (written by the sending thread, or queued for the writer task, which waits for room),
    // and must still arrive in order per stream.
    let small_ring = ConnectionOptions { shared_memory_ring_bytes: 64 << 10, ..options() };
    let (dialed, _dialer_inbound, accepted, acceptor_inbound) = connected_pair_with(small_ring).await;
    assert!(dialed.through_shared_memory());
    const PER_THREAD: u64 = 2_000;
    let senders: Vec<_> = (0..4u64)
        .map(|stream| {
            let dialed = dialed.clone();
            std::thread::spawn(move || {
                for sequence in 0..PER_THREAD {
                    let len = ((sequence * 7919 + stream * 31) % 20_000) as usize;
                    dialed.send(MessageKind::Data, stream, sequence, payload_of(stream, sequence, len)).expect("send");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().expect("sender thread");
    }
    acceptor_inbound.wait_until("every thread's messages", |recorded| recorded.messages.len() == 4 * PER_THREAD as usize).await;
    let recorded = acceptor_inbound.recorded();
    let mut next = [0u64; 4];
    for message in &recorded.messages {
        assert_eq!(message.aux, next[message.stream as usize], "stream {} out of order", message.stream);
        assert_eq!(message.payload, payload_of(message.stream, message.aux, message.payload.len()));
        next[message.stream as usize] += 1;
    }
    drop(recorded);
    assert_eq!(dialed.stats().bytes_sent, accepted.stats().bytes_received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_from_a_plain_thread_is_delivered() {
    let (dialed, _dialer_inbound, _accepted, acceptor_inbound) = connected_pair().await;
    let sender = std::thread::spawn(move || {
        for sequence in 0..1_000u64 {
            dialed.send(MessageKind::Data, 3, sequence, payload_of(3, sequence, 40)).expect("send from a std thread");
        }
        dialed
    });
    acceptor_inbound.wait_until("the thread's messages", |recorded| recorded.messages.len() == 1_000).await;
    let sequences: Vec<u64> = acceptor_inbound.recorded().messages.iter().map(|message| message.aux).collect();
    assert_eq!(sequences, (0..1_000).collect::<Vec<_>>());
    drop(sender.join().expect("sender thread"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credit_and_control_messages_carry_aux_and_stream() {
    let (dialed, _dialer_inbound, _accepted, acceptor_inbound) = connected_pair().await;
    dialed.send(MessageKind::Credit, 42, 16, ()).expect("credit");
    dialed.send(MessageKind::Control, u64::MAX, 7, b"control bytes").expect("control");
    acceptor_inbound.wait_until("two messages", |recorded| recorded.messages.len() == 2).await;
    let recorded = acceptor_inbound.recorded();
    let got: Vec<_> = recorded.messages.iter().map(|m| (m.kind, m.stream, m.aux, m.payload.clone())).collect();
    assert_eq!(got, [(MessageKind::Credit, 42, 16, vec![]), (MessageKind::Control, u64::MAX, 7, b"control bytes".to_vec())]);
}

struct Body(Vec<u8>);

impl PayloadBody for Body {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefixed_payload_arrives_as_its_prefix_then_its_body_aligned() {
    let (dialed, _dialer_inbound, _accepted, acceptor_inbound) = connected_pair().await;
    // A body small enough to be staged beside its header, and one written from where it is.
    let bodies = [vec![7u8; 100], (0..200_000u32).map(|at| at as u8).collect::<Vec<u8>>()];
    for (sequence, body) in bodies.iter().enumerate() {
        let prefix = [sequence as u8 + 1; PAYLOAD_PREFIX_BYTES];
        dialed.send(MessageKind::Data, 9, sequence as u64, Payload::Prefixed { prefix, body: Box::new(Body(body.clone())) }).expect("send");
    }
    acceptor_inbound.wait_until("both payloads", |recorded| recorded.messages.len() == 2).await;
    for (sequence, message) in acceptor_inbound.recorded().messages.iter().enumerate() {
        let (prefix, body) = message.payload.split_at(PAYLOAD_PREFIX_BYTES);
        assert_eq!(prefix, [sequence as u8 + 1; PAYLOAD_PREFIX_BYTES]);
        assert_eq!(body, &bodies[sequence][..]);
        assert!(message.aligned);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_tells_both_sides_and_refuses_later_sends() {
    let (dialed, dialer_inbound, accepted, acceptor_inbound) = connected_pair().await;
    dialed.send(MessageKind::Data, 1, 0, b"before the close").expect("send");
    dialed.close("job finished");
    let at_acceptor = acceptor_inbound.wait_closed(DIALER).await;
    assert!(at_acceptor.contains("ClosedByPeer") && at_acceptor.contains("job finished"), "{at_acceptor}");
    assert_eq!(acceptor_inbound.recorded().messages.len(), 1, "what was sent before the close arrives first");
    let at_dialer = dialer_inbound.wait_closed(ACCEPTOR).await;
    assert!(at_dialer.contains("ClosedLocally"), "{at_dialer}");
    let refused = dialed.send(MessageKind::Data, 1, 1, b"after").expect_err("closed");
    assert_eq!(refused.refusal, SendRefusal::Closed);
    assert_eq!(refused.into_payload().parts()[1], b"after", "the payload is handed back");
    assert!(accepted.is_closed(), "the peer's Close ends the connection there too");
    assert!(matches!(accepted.send(MessageKind::Data, 1, 1, ()).map_err(|error| error.refusal), Err(SendRefusal::Closed)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_closes_the_connection() {
    let (dialed, _dialer_inbound, _accepted, acceptor_inbound) = connected_pair().await;
    drop(dialed);
    let at_acceptor = acceptor_inbound.wait_closed(DIALER).await;
    assert!(at_acceptor.contains("ClosedByPeer"), "{at_acceptor}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_the_peer_would_refuse_are_refused_here() {
    let (dialed, ..) = connected_pair().await;
    let too_large = vec![0u8; options().limits.max_payload_bytes as usize + 1];
    let refused = dialed.send(MessageKind::Data, 1, 0, too_large).expect_err("over the limit");
    assert!(matches!(refused.refusal, SendRefusal::PayloadTooLarge(_)), "{refused}");
    let refused = dialed.send(MessageKind::Close, 0, 0, Payload::Empty).expect_err("Close goes through close()");
    assert_eq!(refused.refusal, SendRefusal::CloseKind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_refused_on_both_sides_and_delivers_nothing() {
    let listener = Listener::bind(loopback()).await.expect("bind");
    let addr = listener.local_addr();
    let acceptor_inbound = Recorder::new();
    let accepting = {
        let inbound = acceptor_inbound.clone();
        tokio::spawn(async move { listener.accept(ACCEPTOR, &secret(), inbound, &options()).await })
    };
    let stranger_inbound = Recorder::new();
    let dialed = Connection::dial(addr, DIALER, &other_secret(), stranger_inbound.clone(), &options()).await;
    let accepted = accepting.await.expect("accept task");
    match dialed {
        Err(NetError::Authentication { addr: named, failure: AuthFailure::WrongSecret }) => assert_eq!(named, addr),
        other => panic!("the dialer should refuse the acceptor's proof: {other:?}"),
    }
    assert!(
        matches!(accepted, Err(NetError::Authentication { failure: AuthFailure::WrongSecret, .. })),
        "the acceptor should refuse the dialer's proof: {accepted:?}"
    );
    for recorder in [acceptor_inbound, stranger_inbound] {
        let recorded = recorder.recorded();
        assert!(recorded.messages.is_empty() && recorded.closed.is_empty(), "nothing is delivered: {recorded:?}");
    }
}

#[test]
fn close_reason_reports_failures_only_as_errors() {
    assert!(CloseReason::ClosedByPeer { reason: "bye".into() }.error().is_none());
}
