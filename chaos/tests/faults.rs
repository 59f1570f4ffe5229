//! The faults on live connections: delay, throttle, pause, dropped bytes, and reset. Times are
//! asserted as lower bounds only (a fault can make a transfer slower than its floor, never
//! faster), except where removing a fault must restore a speed far above the fault's.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use support::{
    assert_same_bytes, connect_through, is_would_block, payload, read_exactly, read_to_end, wait_until, write_and_close_in_background,
    write_in_background, Target,
};
use tethys_chaos::{ChaosProxy, Direction, CONNECTION_BUFFER_BYTES_MAX, READ_CHUNK_BYTES};

fn proxy_and_connection() -> (Target, ChaosProxy, TcpStream, TcpStream) {
    let target = Target::bind();
    let proxy = ChaosProxy::start(target.addr()).expect("start proxy");
    let (client, server) = connect_through(&proxy, &target);
    (target, proxy, client, server)
}

#[test]
fn a_delay_holds_each_direction_of_a_round_trip_and_keeps_order() {
    const DELAY: Duration = Duration::from_millis(100);
    let (_target, proxy, mut client, mut server) = proxy_and_connection();
    proxy.delay(Direction::Both, DELAY);

    let started = Instant::now();
    for message in [&b"pi"[..], b"n", b"g"] {
        client.write_all(message).expect("client writes");
    }
    assert_eq!(read_exactly(&mut server, 4), b"ping", "chunks arrive in the order sent");
    server.write_all(b"pong").expect("server writes");
    assert_eq!(read_exactly(&mut client, 4), b"pong");
    let round_trip = started.elapsed();
    assert!(round_trip >= 2 * DELAY, "a round trip took {round_trip:?}, under twice the delay of {DELAY:?}");
}

#[test]
fn a_throttle_bounds_the_rate_and_removing_it_restores_speed() {
    const RATE_BYTES_PER_S: u64 = 512 << 10;
    const THROTTLED_BYTES: usize = 256 << 10;
    const UNTHROTTLED_BYTES: usize = 4 << 20;
    let (_target, proxy, client, mut server) = proxy_and_connection();
    proxy.throttle(Direction::ToTarget, Some(RATE_BYTES_PER_S)).expect("throttle");

    let floor = Duration::from_secs_f64(THROTTLED_BYTES as f64 / RATE_BYTES_PER_S as f64);
    let started = Instant::now();
    let writer = write_in_background(&client, payload(0, THROTTLED_BYTES));
    let received = read_exactly(&mut server, THROTTLED_BYTES);
    let throttled = started.elapsed();
    writer.join().expect("writer");
    assert_same_bytes(&received, &payload(0, THROTTLED_BYTES), "throttled bytes");
    // The bucket starts empty, so the floor holds up to timer rounding; 10% slack covers it.
    assert!(throttled >= floor.mul_f64(0.9), "{THROTTLED_BYTES} B at {RATE_BYTES_PER_S} B/s took {throttled:?}, under {floor:?}");

    proxy.throttle(Direction::ToTarget, None).expect("remove the throttle");
    let started = Instant::now();
    let writer = write_and_close_in_background(&client, payload(THROTTLED_BYTES as u64, UNTHROTTLED_BYTES));
    let received = read_to_end(&mut server);
    let unthrottled = started.elapsed();
    writer.join().expect("writer");
    assert_same_bytes(&received, &payload(THROTTLED_BYTES as u64, UNTHROTTLED_BYTES), "unthrottled bytes");
    // Under the throttle these bytes would take 8 s; loopback without it takes milliseconds.
    let throttled_floor = Duration::from_secs_f64(UNTHROTTLED_BYTES as f64 / RATE_BYTES_PER_S as f64);
    assert!(unthrottled < throttled_floor / 2, "{UNTHROTTLED_BYTES} B took {unthrottled:?} with the throttle removed");
}

#[test]
fn a_pause_forwards_nothing_and_bounds_the_proxy_buffer_until_resume() {
    const FIRST_BYTES: usize = 1_000;
    const HOLD: Duration = Duration::from_millis(100);
    let (_target, proxy, mut client, mut server) = proxy_and_connection();
    client.write_all(&payload(0, FIRST_BYTES)).expect("first write");
    assert_eq!(read_exactly(&mut server, FIRST_BYTES), payload(0, FIRST_BYTES));
    wait_until("the first bytes are counted", || proxy.stats().to_target.forwarded_bytes == FIRST_BYTES as u64);

    proxy.pause(Direction::ToTarget);
    // Write until the sender's socket blocks with the proxy's buffer full: from then on the
    // proxy reads nothing more, and only TCP backpressure is left.
    client.set_nonblocking(true).expect("nonblocking client");
    let mut written_bytes = FIRST_BYTES;
    let deadline = Instant::now() + support::STEP_DEADLINE;
    loop {
        let stats = proxy.stats();
        assert_eq!(stats.to_target.forwarded_bytes, FIRST_BYTES as u64, "nothing is forwarded while paused");
        assert!(stats.to_target.buffered_bytes <= CONNECTION_BUFFER_BYTES_MAX as u64, "buffered {stats:?}");
        match client.write(&payload(written_bytes as u64, READ_CHUNK_BYTES)) {
            Ok(bytes) => written_bytes += bytes,
            Err(error) if is_would_block(&error) => {
                if stats.to_target.buffered_bytes > (CONNECTION_BUFFER_BYTES_MAX - READ_CHUNK_BYTES) as u64 {
                    break;
                }
                assert!(Instant::now() < deadline, "the sender never blocked; wrote {written_bytes} bytes, {stats:?}");
                thread::sleep(Duration::from_millis(1));
            }
            Err(error) => panic!("client write failed: {error}"),
        }
    }
    assert!(written_bytes > FIRST_BYTES + CONNECTION_BUFFER_BYTES_MAX - READ_CHUNK_BYTES);

    // The measured quantity: nothing arrives during a hold.
    thread::sleep(HOLD);
    let stats = proxy.stats();
    assert_eq!(stats.to_target.forwarded_bytes, FIRST_BYTES as u64);
    assert!(stats.to_target.buffered_bytes <= CONNECTION_BUFFER_BYTES_MAX as u64);
    server.set_nonblocking(true).expect("nonblocking server");
    let mut byte = [0; 1];
    assert!(std::io::Read::read(&mut server, &mut byte).is_err_and(|error| is_would_block(&error)), "a byte arrived while paused");
    server.set_nonblocking(false).expect("blocking server");

    proxy.resume(Direction::ToTarget);
    client.set_nonblocking(false).expect("blocking client");
    client.shutdown(std::net::Shutdown::Write).expect("half-close");
    let received = read_to_end(&mut server);
    assert_same_bytes(&received, &payload(FIRST_BYTES as u64, written_bytes - FIRST_BYTES), "bytes held during the pause");
    wait_until("everything is forwarded and nothing buffered", || {
        let stats = proxy.stats();
        stats.to_target.forwarded_bytes == written_bytes as u64 && stats.buffered_bytes() == 0
    });
}

/// Sends a prefix, orders `DROPPED_BYTES` dropped in `direction`, sends the rest: the receiver
/// gets the prefix and the rest without its first `DROPPED_BYTES`.
fn assert_drop_bytes_removes_exactly_that_many(direction: Direction) {
    const PREFIX_BYTES: usize = 50_000;
    const DROPPED_BYTES: usize = 12_345;
    const REST_BYTES: usize = 300_000;
    let (_target, proxy, client, server) = proxy_and_connection();
    let (mut sender, mut receiver) = match direction {
        Direction::ToTarget => (client, server),
        Direction::FromTarget => (server, client),
        Direction::Both => unreachable!("one direction at a time"),
    };

    sender.write_all(&payload(0, PREFIX_BYTES)).expect("prefix");
    assert_eq!(read_exactly(&mut receiver, PREFIX_BYTES), payload(0, PREFIX_BYTES));
    proxy.drop_bytes(direction, DROPPED_BYTES as u64);
    let writer = write_and_close_in_background(&sender, payload(PREFIX_BYTES as u64, REST_BYTES));
    let received = read_to_end(&mut receiver);
    writer.join().expect("writer");

    let expected = payload((PREFIX_BYTES + DROPPED_BYTES) as u64, REST_BYTES - DROPPED_BYTES);
    assert_same_bytes(&received, &expected, "the rest after the dropped bytes");
    let stats = proxy.stats();
    let (dropped, other) = match direction {
        Direction::ToTarget => (stats.to_target.dropped_bytes, stats.from_target.dropped_bytes),
        _ => (stats.from_target.dropped_bytes, stats.to_target.dropped_bytes),
    };
    assert_eq!((dropped, other), (DROPPED_BYTES as u64, 0));
}

#[test]
fn drop_bytes_removes_exactly_that_many_bytes_towards_the_target() {
    assert_drop_bytes_removes_exactly_that_many(Direction::ToTarget);
}

#[test]
fn drop_bytes_removes_exactly_that_many_bytes_from_the_target() {
    assert_drop_bytes_removes_exactly_that_many(Direction::FromTarget);
}

#[test]
fn reset_releases_held_bytes_and_forwards_plainly_again() {
    const HELD_BYTES: usize = 10_000;
    let (target, proxy, mut client, mut server) = proxy_and_connection();
    proxy.pause(Direction::Both);
    proxy.delay(Direction::Both, Duration::from_secs(3_600));
    proxy.throttle(Direction::Both, Some(1)).expect("throttle");
    client.write_all(&payload(0, HELD_BYTES)).expect("write");
    wait_until("the proxy holds the bytes", || proxy.stats().to_target.buffered_bytes == HELD_BYTES as u64);

    proxy.reset();
    assert_eq!(read_exactly(&mut server, HELD_BYTES), payload(0, HELD_BYTES), "held bytes are released at once");

    proxy.drop_bytes(Direction::Both, 1_000);
    proxy.refuse(true);
    proxy.reset();
    server.write_all(b"intact").expect("server writes");
    assert_eq!(read_exactly(&mut client, 6), b"intact", "no bytes dropped after reset");
    let (mut second_client, mut second_server) = connect_through(&proxy, &target);
    second_client.write_all(b"welcome").expect("write");
    assert_eq!(read_exactly(&mut second_server, 7), b"welcome", "new connections are accepted after reset");
}
