//! Faults on whole connections: cutting the live ones, refusing new ones, and the connection
//! counters.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use support::{connect_through, read_exactly, sees_close, wait_until, Target};
use tethys_chaos::ChaosProxy;

/// Well under the step deadline: a close that takes longer is not prompt.
const PROMPT: Duration = Duration::from_secs(2);

fn exchange_a_byte_each_way(client: &mut TcpStream, server: &mut TcpStream) {
    client.write_all(b">").expect("client writes");
    assert_eq!(read_exactly(server, 1), b">");
    server.write_all(b"<").expect("server writes");
    assert_eq!(read_exactly(client, 1), b"<");
}

#[test]
fn cut_closes_both_ends_of_every_connection_promptly_and_spares_later_ones() {
    let target = Target::bind();
    let proxy = ChaosProxy::start(target.addr()).expect("start proxy");
    let mut ends = Vec::new();
    for _ in 0..2 {
        let (mut client, mut server) = connect_through(&proxy, &target);
        exchange_a_byte_each_way(&mut client, &mut server);
        ends.extend([client, server]);
    }
    wait_until("both connections are open", || proxy.stats().connections_open == 2);

    proxy.cut();

    for (index, end) in ends.iter_mut().enumerate() {
        end.set_read_timeout(Some(PROMPT)).expect("read timeout");
        let side = if index % 2 == 0 { "client" } else { "target" };
        assert!(sees_close(end), "the {side} end of connection {} stayed open after a cut", index / 2);
    }
    wait_until("no connection is open", || proxy.stats().connections_open == 0);

    let (mut client, mut server) = connect_through(&proxy, &target);
    exchange_a_byte_each_way(&mut client, &mut server);
}

#[test]
fn refuse_closes_new_connections_until_lifted_and_spares_live_ones() {
    let target = Target::bind();
    let proxy = ChaosProxy::start(target.addr()).expect("start proxy");
    let (mut live_client, mut live_server) = connect_through(&proxy, &target);

    proxy.refuse(true);
    let mut refused = TcpStream::connect(proxy.addr()).expect("the kernel completes the handshake");
    refused.set_read_timeout(Some(PROMPT)).expect("read timeout");
    assert!(sees_close(&mut refused), "a refused client is closed");
    wait_until("the refusal is counted", || proxy.stats().connections_refused == 1);
    assert!(target.try_accept().is_none(), "a refused client is never connected to the target");
    exchange_a_byte_each_way(&mut live_client, &mut live_server);

    proxy.refuse(false);
    let (mut client, mut server) = connect_through(&proxy, &target);
    exchange_a_byte_each_way(&mut client, &mut server);
    let stats = proxy.stats();
    assert_eq!((stats.connections_accepted, stats.connections_refused), (3, 1));
}

#[test]
fn connections_count_as_open_from_accept_to_close() {
    let target = Target::bind();
    let proxy = ChaosProxy::start(target.addr()).expect("start proxy");
    let connections: Vec<_> = (0..3).map(|_| connect_through(&proxy, &target)).collect();
    wait_until("three connections are open", || proxy.stats().connections_open == 3);
    assert_eq!(proxy.stats().connections_accepted, 3);

    // Closing both ends lets both flows end, and the proxy closes its side.
    drop(connections);
    wait_until("no connection is open", || proxy.stats().connections_open == 0);
    assert_eq!(proxy.stats().connections_accepted, 3);
}
