//! One proxied connection, from accept to close: connect to the target, forward both flows, and
//! close both sockets at once when told to cut.
//!
//! A connection lives in one task, and its sockets live in that task's future: when it ends for
//! any reason (both streams ended, a socket failed, a cut, the proxy shutting down), dropping the
//! future closes both sockets, so each peer sees the close as it would on a failing link. An error
//! in either flow ends both, as a reset link would; the flows otherwise end independently, so a
//! half-closed connection keeps forwarding the other way.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::error::ChaosError;
use crate::faults::{FaultSettings, Flow};
use crate::flow::forward_flow;
use crate::proxy::ProxyShared;

/// An accepted client and what it was accepted under.
#[derive(Debug)]
pub(crate) struct AcceptedClient {
    pub(crate) stream: TcpStream,
    pub(crate) addr: SocketAddr,
    /// The cut epoch when it was accepted: a later cut closes it.
    pub(crate) cut_epoch: u64,
}

/// Proxies `client` to `target` until the connection ends or is cut.
pub(crate) async fn serve_connection(
    client: AcceptedClient,
    target: SocketAddr,
    faults: watch::Receiver<FaultSettings>,
    shared: Arc<ProxyShared>,
) {
    let _open = shared.counters.open_connection();
    let mut cut_watch = faults.clone();
    let accepted_under = client.cut_epoch;
    tokio::select! {
        () = relay(client, target, faults, Arc::clone(&shared)) => {}
        // An error here means the proxy is shutting down, which closes the connection as well.
        _ = cut_watch.wait_for(|settings| settings.cut_epoch != accepted_under) => {}
    }
}

async fn relay(client: AcceptedClient, target: SocketAddr, faults: watch::Receiver<FaultSettings>, shared: Arc<ProxyShared>) {
    let target_stream = match TcpStream::connect(target).await {
        Ok(stream) => stream,
        Err(source) => {
            shared.counters.target_connect_failures.fetch_add(1, Ordering::AcqRel);
            shared.record_connect_error(ChaosError::Connect { client: client.addr, target, source });
            return;
        }
    };
    // The proxy adds no latency of its own: every chunk goes out as soon as the faults allow.
    if client.stream.set_nodelay(true).is_err() || target_stream.set_nodelay(true).is_err() {
        return;
    }
    let (client_read, client_write) = client.stream.into_split();
    let (target_read, target_write) = target_stream.into_split();
    // The error itself needs no report: the peers see the connection close, which is the fault.
    let _ = tokio::try_join!(
        forward_flow(Flow::ToTarget, client_read, target_write, faults.clone(), Arc::clone(&shared)),
        forward_flow(Flow::FromTarget, target_read, client_write, faults, shared),
    );
}
