//! [`Listener`]: the accepting side: a bound socket whose incoming connections are authenticated
//! before they become [`Connection`]s.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

use super::{Connection, ConnectionOptions, Inbound};
use crate::auth::{authenticate_acceptor, ClusterSecret};
use crate::error::NetError;
use crate::node::NodeId;

/// A listening socket for peers' connections.
#[derive(Debug)]
pub struct Listener {
    socket: TcpListener,
    local_addr: SocketAddr,
}

impl Listener {
    /// Listens on `addr` (port 0 picks a free port; see `local_addr`).
    pub async fn bind(addr: SocketAddr) -> Result<Listener, NetError> {
        let socket = TcpListener::bind(addr).await.map_err(|source| NetError::Bind { addr, source })?;
        let local_addr = socket.local_addr().map_err(|source| NetError::Bind { addr, source })?;
        Ok(Listener { socket, local_addr })
    }

    /// Listens on a socket already bound (e.g. to report its port before the mesh starts). Must be
    /// called on a tokio runtime.
    pub fn from_std(socket: std::net::TcpListener) -> Result<Listener, NetError> {
        let unknown: SocketAddr = ([0, 0, 0, 0], 0).into();
        let local_addr = socket.local_addr().map_err(|source| NetError::Bind { addr: unknown, source })?;
        socket.set_nonblocking(true).map_err(|source| NetError::Bind { addr: local_addr, source })?;
        let socket = TcpListener::from_std(socket).map_err(|source| NetError::Bind { addr: local_addr, source })?;
        Ok(Listener { socket, local_addr })
    }

    /// The address peers connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts the next connection, authenticates it as `me` (any node holding the secret is
    /// admitted), and starts it, delivering to `inbound`. A peer failing the handshake is an error
    /// here; call `accept` again for the next. The handshake runs inside this call, so a silent peer
    /// delays the next accept by up to `handshake_timeout` (`Mesh` admits each on its own task).
    pub async fn accept(
        &self,
        me: NodeId,
        secret: &ClusterSecret,
        inbound: Arc<dyn Inbound>,
        options: &ConnectionOptions,
    ) -> Result<Connection, NetError> {
        options.validate()?;
        let (stream, addr) = self.accept_tcp().await?;
        let tls = crate::tls::NetStream::accepted(stream, addr, options.tls.as_ref());
        let mut stream = tokio::time::timeout(options.handshake_timeout, tls)
            .await
            .map_err(|_| NetError::HandshakeTimeout { addr, timeout: options.handshake_timeout })??;
        let peer = authenticate_acceptor(&mut stream, addr, me, secret, options.handshake_timeout, &mut |_| Ok(())).await?;
        Connection::establish(stream, super::Side::Acceptor, peer, addr, inbound, options).await
    }

    /// The next TCP connection, Nagle off, not yet authenticated.
    pub(crate) async fn accept_tcp(&self) -> Result<(TcpStream, SocketAddr), NetError> {
        let (stream, addr) = self.socket.accept().await.map_err(|source| NetError::Accept { addr: self.local_addr, source })?;
        stream.set_nodelay(true).map_err(|source| NetError::Accept { addr: self.local_addr, source })?;
        Ok((stream, addr))
    }
}
