//! The errors the proxy reports, each naming the addresses involved so a failing test says which
//! link it was setting up.

use std::io;
use std::net::SocketAddr;

use crate::faults::Direction;

/// What went wrong starting a [`ChaosProxy`](crate::ChaosProxy), commanding it, or connecting one
/// of its clients to the target.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The proxy could not listen on `listen`.
    #[error("chaos proxy could not listen on {listen}")]
    Bind {
        /// The address asked for.
        listen: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The proxy would listen on its own target, so each connection would open another without end.
    #[error("chaos proxy would listen on its own target {target}")]
    TargetIsProxy {
        /// The address both listened on and targeted.
        target: SocketAddr,
    },
    /// The proxy's thread or runtime could not be started.
    #[error("chaos proxy could not start its runtime thread")]
    StartRuntime {
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A throttle of 0 bytes per second, which would never forward anything: use `pause` for that.
    #[error("chaos proxy throttle of 0 bytes/s on {direction:?}: use pause to stop a direction")]
    ZeroThrottle {
        /// The direction the throttle was meant for.
        direction: Direction,
    },
    /// The proxy accepted `client` but could not connect to `target`; the client was closed.
    #[error("chaos proxy could not connect client {client} to target {target}")]
    Connect {
        /// The accepted client's address.
        client: SocketAddr,
        /// The proxy's target.
        target: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
}
