//! Plain forwarding, and what the proxy's lifetime does to the connections through it.

mod support;

use std::net::{TcpListener, TcpStream};

use support::{
    assert_same_bytes, connect_through, payload, read_exactly, read_to_end, sees_close, wait_until, write_and_close_in_background, Target,
};
use tethys_chaos::{ChaosError, ChaosProxy};

#[test]
fn plain_forwarding_is_byte_exact_in_both_directions_at_once() {
    const STREAM_BYTES: usize = 4 << 20;
    let target = Target::bind();
    let proxy = ChaosProxy::start(target.addr()).expect("start proxy");
    let (mut client, mut server) = connect_through(&proxy, &target);

    // Both directions carry different payloads at the same time.
    let to_target = payload(0, STREAM_BYTES);
    let from_target = payload(1 << 40, STREAM_BYTES);
    let client_writer = write_and_close_in_background(&client, to_target.clone());
    let server_writer = write_and_close_in_background(&server, from_target.clone());
    let received_by_server = read_to_end(&mut server);
    let received_by_client = read_to_end(&mut client);
    client_writer.join().expect("client writer");
    server_writer.join().expect("server writer");

    assert_same_bytes(&received_by_server, &to_target, "client to target");
    assert_same_bytes(&received_by_client, &from_target, "target to client");
    wait_until("both directions are counted as forwarded", || {
        let stats = proxy.stats();
        stats.to_target.forwarded_bytes == STREAM_BYTES as u64 && stats.from_target.forwarded_bytes == STREAM_BYTES as u64
    });
    let stats = proxy.stats();
    assert_eq!(stats.buffered_bytes(), 0);
    assert_eq!((stats.to_target.dropped_bytes, stats.from_target.dropped_bytes), (0, 0));
}

#[test]
fn a_half_closed_connection_keeps_forwarding_the_other_way() {
    let target = Target::bind();
    let proxy = ChaosProxy::start(target.addr()).expect("start proxy");
    let (mut client, mut server) = connect_through(&proxy, &target);

    client.shutdown(std::net::Shutdown::Write).expect("client half-closes");
    assert_eq!(read_to_end(&mut server), b"", "the target sees the client's end of stream");
    write_and_close_in_background(&server, b"late reply".to_vec()).join().expect("server writes");
    assert_eq!(read_to_end(&mut client), b"late reply");
}

#[test]
fn dropping_the_proxy_closes_both_ends_and_the_listener() {
    let target = Target::bind();
    let proxy = ChaosProxy::start(target.addr()).expect("start proxy");
    let proxy_addr = proxy.addr();
    let (mut client, mut server) = connect_through(&proxy, &target);
    std::io::Write::write_all(&mut client, b"x").expect("write");
    assert_eq!(read_exactly(&mut server, 1), b"x");

    drop(proxy);

    assert!(sees_close(&mut client), "the client sees the connection close");
    assert!(sees_close(&mut server), "the target sees the connection close");
    // Nothing listens on the proxy's port any more (an ephemeral port is not handed out again
    // within the moment this takes).
    assert!(TcpStream::connect(proxy_addr).is_err(), "the listener is closed");
}

#[test]
fn an_unreachable_target_closes_the_client_and_names_both_addresses() {
    // A port that was just free: nothing listens there.
    let unreachable = TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("free port");
    let proxy = ChaosProxy::start(unreachable).expect("start proxy");

    let mut client = TcpStream::connect(proxy.addr()).expect("the proxy accepts");
    let client_addr = client.local_addr().expect("client address");
    client.set_read_timeout(Some(support::STEP_DEADLINE)).expect("read timeout");
    assert!(sees_close(&mut client), "the client is closed");

    wait_until("the failure is counted", || proxy.stats().target_connect_failures == 1);
    let error = proxy.take_connect_error().expect("the failure is kept");
    assert!(matches!(&error, ChaosError::Connect { client, target, .. } if *client == client_addr && *target == unreachable), "{error:?}");
    assert!(error.to_string().contains(&unreachable.to_string()), "{error}");
    assert!(proxy.take_connect_error().is_none(), "taken once");
}
