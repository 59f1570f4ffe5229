//! Tethys chaos: a fault proxy for tests of the data plane.
//!
//! A [`ChaosProxy`] sits between two processes on loopback: clients connect to [`ChaosProxy::addr`]
//! instead of the real target, and the proxy opens a connection to the target for each one and
//! forwards bytes both ways. On command it delays, throttles, pauses or corrupts (drops bytes from)
//! either direction, cuts every live connection, or refuses new ones; each command takes effect at
//! once on live connections and on later ones. Tests use it to check that the engine copes with a
//! failing network: a throttled channel does not stall the others, a cut connection fails the job
//! cleanly, a corrupted frame is reported rather than decoded.
//!
//! The proxy runs on its own thread with its own runtime, so a caller needs no runtime of its own
//! and may block its thread while the proxy keeps forwarding. It never buffers without bound: each
//! direction of each connection holds at most [`CONNECTION_BUFFER_BYTES_MAX`] bytes, and past that
//! it stops reading, so TCP backpressure reaches the sender as it would on a slow link.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::{TcpListener, TcpStream};
//! use std::time::Duration;
//! use tethys_chaos::{ChaosProxy, Direction};
//!
//! let target = TcpListener::bind("127.0.0.1:0")?;
//! let proxy = ChaosProxy::start(target.local_addr()?)?;
//! proxy.delay(Direction::Both, Duration::from_millis(50));
//! proxy.throttle(Direction::ToTarget, Some(64 * 1024))?;
//!
//! let mut client = TcpStream::connect(proxy.addr())?;
//! let (mut server, _) = target.accept()?;
//! client.write_all(b"ping")?; // reaches the server 50 ms later, at no more than 64 KiB/s
//! let mut ping = [0; 4];
//! server.read_exact(&mut ping)?;
//!
//! println!("{:?}", proxy.stats()); // bytes forwarded, dropped and buffered; connections
//! proxy.cut(); // both `client` and `server` now read the end of the stream
//! assert_eq!(server.read(&mut ping)?, 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![deny(unsafe_code)]

mod connection;
mod error;
mod faults;
mod flow;
mod limits;
mod proxy;
mod stats;
mod token_bucket;

pub use error::ChaosError;
pub use faults::Direction;
pub use limits::{CONNECTION_BUFFER_BYTES_MAX, READ_CHUNK_BYTES};
pub use proxy::ChaosProxy;
pub use stats::{DirectionStats, ProxyStats};
