//! The proxy handle: starts the proxy's thread, takes commands, reports counters, and stops
//! everything when dropped.
//!
//! The handle keeps the sending side of the fault settings' watch channel; commands change the
//! settings in place and every connection sees the change at once. The proxy's thread runs a
//! current-thread runtime that accepts clients and serves each connection in a task; stopping the
//! proxy ends the accept loop and drops the runtime, which drops every connection's task and so
//! closes every socket. The listener is bound before `start` returns, so a client may connect as
//! soon as it has the address.

use std::fmt;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::connection::{serve_connection, AcceptedClient};
use crate::error::ChaosError;
use crate::faults::{Direction, DropBudget, FaultSettings};
use crate::limits::ACCEPT_RETRY_DELAY;
use crate::stats::{ProxyCounters, ProxyStats};

/// A TCP proxy on loopback that forwards to one target and injects faults on command.
///
/// Every command applies at once to live connections (bytes already buffered included) and to
/// later ones, until changed or [`reset`](ChaosProxy::reset). Dropping the proxy closes its
/// listener and every connection.
pub struct ChaosProxy {
    listen_addr: SocketAddr,
    target: SocketAddr,
    faults: watch::Sender<FaultSettings>,
    shared: Arc<ProxyShared>,
    /// Dropped to stop the proxy's thread.
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the handle and the proxy's thread share besides the fault settings.
#[derive(Debug, Default)]
pub(crate) struct ProxyShared {
    pub(crate) counters: ProxyCounters,
    pub(crate) drop_budget: DropBudget,
    last_connect_error: Mutex<Option<ChaosError>>,
}

impl ProxyShared {
    /// Keeps `error` for [`ChaosProxy::take_connect_error`], replacing an older one.
    pub(crate) fn record_connect_error(&self, error: ChaosError) {
        *self.last_connect_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

impl ChaosProxy {
    /// Starts a proxy to `target` on an ephemeral port of 127.0.0.1; see [`addr`](ChaosProxy::addr).
    pub fn start(target: SocketAddr) -> Result<ChaosProxy, ChaosError> {
        ChaosProxy::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), target)
    }

    /// Starts a proxy to `target` listening on `listen`.
    pub fn start_on(listen: SocketAddr, target: SocketAddr) -> Result<ChaosProxy, ChaosError> {
        let bind_error = |source| ChaosError::Bind { listen, source };
        let std_listener = StdTcpListener::bind(listen).map_err(bind_error)?;
        let listen_addr = std_listener.local_addr().map_err(bind_error)?;
        if listen_addr == target {
            return Err(ChaosError::TargetIsProxy { target });
        }
        std_listener.set_nonblocking(true).map_err(bind_error)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| ChaosError::StartRuntime { source })?;
        let listener = {
            let _in_runtime = runtime.enter();
            TcpListener::from_std(std_listener).map_err(bind_error)?
        };

        let (faults, faults_watch) = watch::channel(FaultSettings::default());
        let shared = Arc::new(ProxyShared::default());
        let (shutdown, shutdown_signal) = oneshot::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("tethys-chaos-{listen_addr}"))
            .spawn(move || {
                runtime.block_on(accept_clients(listener, target, faults_watch, thread_shared, shutdown_signal));
                // Dropping the runtime drops every connection's task, and so closes its sockets.
                drop(runtime);
            })
            .map_err(|source| ChaosError::StartRuntime { source })?;
        Ok(ChaosProxy { listen_addr, target, faults, shared, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// The address clients connect to instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// The address the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Holds every chunk read in `direction` for `delay` before forwarding it; order is kept.
    /// `Duration::ZERO` removes the delay. Buffered chunks count against the connection's buffer,
    /// so a delay also bounds a connection's throughput to about
    /// [`CONNECTION_BUFFER_BYTES_MAX`](crate::CONNECTION_BUFFER_BYTES_MAX) per `delay`.
    pub fn delay(&self, direction: Direction, delay: Duration) {
        self.faults.send_modify(|settings| settings.update(direction, |faults| faults.delay = delay));
    }

    /// Limits each connection in `direction` to `bytes_per_s` with a token bucket that starts
    /// empty; `None` removes the limit. A rate of 0 is refused: [`pause`](ChaosProxy::pause)
    /// stops a direction.
    pub fn throttle(&self, direction: Direction, bytes_per_s: Option<u64>) -> Result<(), ChaosError> {
        if bytes_per_s == Some(0) {
            return Err(ChaosError::ZeroThrottle { direction });
        }
        self.faults.send_modify(|settings| settings.update(direction, |faults| faults.throttle_bytes_per_s = bytes_per_s));
        Ok(())
    }

    /// Stops forwarding in `direction`. The proxy keeps reading until each connection's buffer is
    /// full, then the senders meet TCP backpressure.
    pub fn pause(&self, direction: Direction) {
        self.faults.send_modify(|settings| settings.update(direction, |faults| faults.paused = true));
    }

    /// Forwards again in `direction` after [`pause`](ChaosProxy::pause).
    pub fn resume(&self, direction: Direction) {
        self.faults.send_modify(|settings| settings.update(direction, |faults| faults.paused = false));
    }

    /// Silently discards the next `bytes` bytes the proxy reads in `direction` (in each direction
    /// for [`Direction::Both`]), from whichever connections read them first; adds to any bytes
    /// still to be discarded. Meant to corrupt a framed stream.
    pub fn drop_bytes(&self, direction: Direction, bytes: u64) {
        self.shared.drop_budget.add(direction, bytes);
    }

    /// Closes every current connection at once, with whatever it had buffered; both peers see the
    /// connection end. Later connections are not affected.
    pub fn cut(&self) {
        self.faults.send_modify(FaultSettings::cut);
    }

    /// While `refuse` is true, closes each new connection as soon as it is accepted, before
    /// connecting to the target.
    pub fn refuse(&self, refuse: bool) {
        self.faults.send_modify(|settings| settings.refuse_new = refuse);
    }

    /// Back to plain forwarding: no delay, throttle, pause, bytes to drop or refusal.
    pub fn reset(&self) {
        self.shared.drop_budget.clear();
        self.faults.send_modify(FaultSettings::reset);
    }

    /// The proxy's counters now.
    pub fn stats(&self) -> ProxyStats {
        self.shared.counters.snapshot()
    }

    /// The latest failure to connect a client to the target, if any since the last call.
    pub fn take_connect_error(&self) -> Option<ChaosError> {
        self.shared.last_connect_error.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl fmt::Debug for ChaosProxy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ChaosProxy")
            .field("addr", &self.listen_addr)
            .field("target", &self.target)
            .field("faults", &*self.faults.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        drop(self.shutdown.take());
        if let Some(thread) = self.thread.take() {
            // A panic on the proxy's thread is a bug in the proxy: surface it in the test.
            if let Err(panic) = thread.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}

/// Accepts clients until `shutdown` fires (or its sender is dropped), serving each in its own task.
async fn accept_clients(
    listener: TcpListener,
    target: SocketAddr,
    faults: watch::Receiver<FaultSettings>,
    shared: Arc<ProxyShared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of file descriptors, or a handshake the peer aborted: the listener stays
                // usable, so try again shortly rather than spin or stop.
                tokio::select! {
                    _ = &mut shutdown => return,
                    () = tokio::time::sleep(ACCEPT_RETRY_DELAY) => continue,
                }
            }
        };
        shared.counters.connections_accepted.fetch_add(1, Ordering::AcqRel);
        let (refuse_new, cut_epoch) = {
            let settings = faults.borrow();
            (settings.refuse_new, settings.cut_epoch)
        };
        if refuse_new {
            shared.counters.connections_refused.fetch_add(1, Ordering::AcqRel);
            drop(stream);
            continue;
        }
        let client = AcceptedClient { stream, addr, cut_epoch };
        tokio::spawn(serve_connection(client, target, faults.clone(), Arc::clone(&shared)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unused_target() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[test]
    fn a_proxy_can_be_shared_between_test_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ChaosProxy>();
    }

    #[test]
    fn start_listens_on_an_ephemeral_loopback_port() {
        let proxy = ChaosProxy::start(unused_target()).expect("start");
        assert!(proxy.addr().ip().is_loopback());
        assert_ne!(proxy.addr().port(), 0);
        assert_eq!(proxy.target(), unused_target());
    }

    #[test]
    fn a_listen_address_in_use_is_a_bind_error_naming_it() {
        let first = ChaosProxy::start(unused_target()).expect("start");
        let error = ChaosProxy::start_on(first.addr(), unused_target()).expect_err("the address is taken");
        assert!(matches!(error, ChaosError::Bind { listen, .. } if listen == first.addr()), "{error:?}");
        assert!(error.to_string().contains(&first.addr().to_string()));
    }

    #[test]
    fn a_proxy_to_itself_is_refused() {
        // Take a free port, then ask the proxy to listen on it and forward to it.
        let free = StdTcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("free port");
        let error = ChaosProxy::start_on(free, free).expect_err("a loop");
        assert!(matches!(error, ChaosError::TargetIsProxy { target } if target == free), "{error:?}");
    }

    #[test]
    fn a_zero_throttle_is_refused_and_changes_nothing() {
        let proxy = ChaosProxy::start(unused_target()).expect("start");
        let error = proxy.throttle(Direction::Both, Some(0)).expect_err("zero rate");
        assert!(matches!(error, ChaosError::ZeroThrottle { direction: Direction::Both }), "{error:?}");
        assert_eq!(*proxy.faults.borrow(), FaultSettings::default());
        proxy.throttle(Direction::ToTarget, Some(1)).expect("a positive rate");
    }

    #[test]
    fn commands_change_the_published_settings_and_reset_restores_them() {
        let proxy = ChaosProxy::start(unused_target()).expect("start");
        proxy.delay(Direction::FromTarget, Duration::from_millis(5));
        proxy.pause(Direction::Both);
        proxy.resume(Direction::ToTarget);
        proxy.refuse(true);
        proxy.cut();
        {
            let settings = proxy.faults.borrow();
            let from_target = settings.flow(crate::faults::Flow::FromTarget);
            assert_eq!(from_target.delay, Duration::from_millis(5));
            assert!(from_target.paused);
            assert!(!settings.flow(crate::faults::Flow::ToTarget).paused);
            assert!(settings.refuse_new);
            assert_eq!(settings.cut_epoch, 1);
        }
        proxy.reset();
        let mut expected = FaultSettings::default();
        expected.cut();
        assert_eq!(*proxy.faults.borrow(), expected);
    }
}
