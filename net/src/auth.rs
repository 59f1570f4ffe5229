//! Authentication of a connection with the cluster secret, before any message is exchanged.
//!
//! Right after the TCP connect both sides send a `Hello` (magic, version, node id, a fresh random
//! nonce), then each sends a proof: HMAC-SHA256 keyed with the cluster secret over a domain tag,
//! both nonces, both node ids (dialer's first) and the sender's role. Each verifies the other's
//! proof in constant time. The nonces make a recorded proof useless on another connection; the
//! role byte makes a proof useless reflected back at its sender. Finally the acceptor, now knowing
//! who dialed, admits or refuses the connection with a one-byte verdict, so a refused dialer learns
//! why. Everything is fixed-size and bounded by the handshake timeout, so a stranger can make us
//! neither allocate nor wait; nothing a stranger sends is ever delivered as a message.
//!
//! Without TLS the connection is authenticated, not encrypted; TLS will wrap the stream later.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::NetError;
use crate::node::NodeId;
use crate::wire::{MAGIC, PROTOCOL_VERSION};

type HmacSha256 = Hmac<Sha256>;

/// The domain tag at the start of every proof: a proof made for anything else never verifies here.
const DOMAIN_TAG: &[u8] = b"tethys-net/1";
/// The fourth byte of a Hello: no message kind uses it, so a peer that skipped the handshake is
/// told apart from one that speaks it.
const HELLO_MARKER: u8 = 0;
const NONCE_BYTES: usize = 32;
/// Magic, version and marker: the part of a Hello checked first.
const HELLO_PREFIX_BYTES: usize = 4;
const HELLO_BYTES: usize = HELLO_PREFIX_BYTES + 4 + NONCE_BYTES;
const PROOF_BYTES: usize = 32;
/// The acceptor's verdict byte that admits the connection.
const VERDICT_ADMITTED: u8 = 0;

/// The secret every process of a cluster holds; a connection is accepted only from a process that
/// proves it holds it. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ClusterSecret {
    /// The HMAC keyed with the secret (the raw secret is not kept).
    keyed: HmacSha256,
}

/// A secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    /// The secret is shorter than [`ClusterSecret::BYTES_MIN`].
    #[error("the cluster secret has {bytes} bytes; at least {bytes_min} are required")]
    TooShort {
        /// Its length.
        bytes: usize,
        /// The minimum.
        bytes_min: usize,
    },
}

impl ClusterSecret {
    /// The shortest secret accepted: shorter ones are guessable.
    pub const BYTES_MIN: usize = 16;

    /// A secret from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<ClusterSecret, SecretError> {
        if bytes.len() < Self::BYTES_MIN {
            return Err(SecretError::TooShort { bytes: bytes.len(), bytes_min: Self::BYTES_MIN });
        }
        // HMAC takes keys of any length; the error case of `new_from_slice` cannot happen.
        let keyed =
            HmacSha256::new_from_slice(bytes).map_err(|_| SecretError::TooShort { bytes: bytes.len(), bytes_min: Self::BYTES_MIN })?;
        Ok(ClusterSecret { keyed })
    }

    fn proof(&self, transcript: &Transcript, sender: Role) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(DOMAIN_TAG);
        mac.update(&transcript.dialer_nonce);
        mac.update(&transcript.acceptor_nonce);
        mac.update(&transcript.dialer.0.to_le_bytes());
        mac.update(&transcript.acceptor.0.to_le_bytes());
        mac.update(&[sender.code()]);
        mac
    }
}

impl FromStr for ClusterSecret {
    type Err = SecretError;

    /// A secret from the UTF-8 bytes of a string (as read from configuration).
    fn from_str(secret: &str) -> Result<ClusterSecret, SecretError> {
        ClusterSecret::from_bytes(secret.as_bytes())
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

/// Why the handshake did not authenticate the peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthFailure {
    /// The peer's first bytes are not a Tethys Hello.
    #[error("the peer does not speak the Tethys protocol (its first bytes are {found:02x?})")]
    NotTethys {
        /// The first four bytes received.
        found: [u8; 4],
    },
    /// The peer speaks another protocol version.
    #[error("the peer speaks protocol version {theirs}, this build version {ours}")]
    VersionMismatch {
        /// This build's version.
        ours: u8,
        /// The peer's.
        theirs: u8,
    },
    /// The peer's proof does not verify: it does not hold the cluster secret.
    #[error("wrong cluster secret (the peer's proof does not verify)")]
    WrongSecret,
    /// The peer claims this process's own node id.
    #[error("the peer claims this process's own id, {0}")]
    SameNodeId(NodeId),
    /// The peer sent back this side's nonce: a reflection attempt.
    #[error("the peer sent back this side's nonce")]
    ReflectedNonce,
    /// The peer closed the connection during the handshake (usually: it refused our proof).
    #[error("the peer closed the connection during the handshake (it may not hold the same cluster secret)")]
    PeerHungUp,
    /// The acceptor's verdict byte is none this build knows.
    #[error("unknown verdict {0} from the acceptor")]
    UnknownVerdict(u8),
}

/// Why an acceptor refuses an authenticated dialer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The dialer is not one of this process's peers.
    #[error("the node is not a peer of this process")]
    UnknownNode,
    /// This process already has an open connection with the dialer.
    #[error("a connection with the node is already open")]
    DuplicateConnection,
    /// The dialer should have been dialed instead (the lower id dials).
    #[error("the node should accept this process's connection, not dial it (the lower id dials)")]
    WrongDirection,
}

impl Refusal {
    fn code(self) -> u8 {
        match self {
            Refusal::UnknownNode => 1,
            Refusal::DuplicateConnection => 2,
            Refusal::WrongDirection => 3,
        }
    }

    fn from_code(code: u8) -> Option<Refusal> {
        [Refusal::UnknownNode, Refusal::DuplicateConnection, Refusal::WrongDirection].into_iter().find(|refusal| refusal.code() == code)
    }
}

/// Which side of the connection a process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Dialer,
    Acceptor,
}

impl Role {
    fn code(self) -> u8 {
        match self {
            Role::Dialer => b'D',
            Role::Acceptor => b'A',
        }
    }

    fn other(self) -> Role {
        match self {
            Role::Dialer => Role::Acceptor,
            Role::Acceptor => Role::Dialer,
        }
    }
}

/// The first message of each side.
#[derive(Debug, Clone, Copy)]
struct Hello {
    node: NodeId,
    nonce: [u8; NONCE_BYTES],
}

impl Hello {
    fn encode(&self) -> [u8; HELLO_BYTES] {
        let mut bytes = [0u8; HELLO_BYTES];
        bytes[0..2].copy_from_slice(&MAGIC);
        bytes[2] = PROTOCOL_VERSION;
        bytes[3] = HELLO_MARKER;
        bytes[4..8].copy_from_slice(&self.node.0.to_le_bytes());
        bytes[8..].copy_from_slice(&self.nonce);
        bytes
    }

    /// Checks the first four bytes of a Hello, so a stranger is refused before it sends a whole one.
    fn check_prefix(bytes: &[u8; HELLO_PREFIX_BYTES]) -> Result<(), AuthFailure> {
        if bytes[0..2] != MAGIC || bytes[3] != HELLO_MARKER {
            return Err(AuthFailure::NotTethys { found: *bytes });
        }
        if bytes[2] != PROTOCOL_VERSION {
            return Err(AuthFailure::VersionMismatch { ours: PROTOCOL_VERSION, theirs: bytes[2] });
        }
        Ok(())
    }

    fn decode(bytes: &[u8; HELLO_BYTES]) -> Result<Hello, AuthFailure> {
        let mut prefix = [0u8; HELLO_PREFIX_BYTES];
        prefix.copy_from_slice(&bytes[..HELLO_PREFIX_BYTES]);
        Hello::check_prefix(&prefix)?;
        let mut nonce = [0u8; NONCE_BYTES];
        nonce.copy_from_slice(&bytes[8..]);
        Ok(Hello { node: NodeId(u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])), nonce })
    }
}

/// What both proofs cover, in the dialer-first order.
struct Transcript {
    dialer: NodeId,
    acceptor: NodeId,
    dialer_nonce: [u8; NONCE_BYTES],
    acceptor_nonce: [u8; NONCE_BYTES],
}

/// Authenticates the connection `stream` to `addr` as its dialer; `expected_peer`, when given, is
/// the node that must answer. Returns the authenticated, admitting peer.
pub async fn authenticate_dialer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: SocketAddr,
    me: NodeId,
    expected_peer: Option<NodeId>,
    secret: &ClusterSecret,
    timeout: Duration,
) -> Result<NodeId, NetError> {
    let handshake = async {
        let peer = exchange_proofs(stream, addr, me, Role::Dialer, secret).await?;
        if let Some(expected) = expected_peer.filter(|expected| *expected != peer) {
            return Err(NetError::UnexpectedPeer { addr, expected, found: peer });
        }
        let mut verdict = [0u8; 1];
        read_exact(stream, addr, &mut verdict).await?;
        match verdict[0] {
            VERDICT_ADMITTED => Ok(peer),
            code => match Refusal::from_code(code) {
                Some(refusal) => Err(NetError::RefusedByPeer { addr, peer, refusal }),
                None => Err(NetError::Authentication { addr, failure: AuthFailure::UnknownVerdict(code) }),
            },
        }
    };
    tokio::time::timeout(timeout, handshake).await.map_err(|_| NetError::HandshakeTimeout { addr, timeout })?
}

/// Authenticates the connection `stream` from `addr` as its acceptor, then asks `admit` whether
/// the authenticated peer may connect and tells the dialer. Returns the admitted peer.
pub async fn authenticate_acceptor<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: SocketAddr,
    me: NodeId,
    secret: &ClusterSecret,
    timeout: Duration,
    admit: &mut (dyn FnMut(NodeId) -> Result<(), Refusal> + Send),
) -> Result<NodeId, NetError> {
    let handshake = async {
        let peer = exchange_proofs(stream, addr, me, Role::Acceptor, secret).await?;
        let admission = admit(peer);
        let verdict = match admission {
            Ok(()) => VERDICT_ADMITTED,
            Err(refusal) => refusal.code(),
        };
        write_all(stream, addr, &[verdict]).await?;
        match admission {
            Ok(()) => Ok(peer),
            Err(refusal) => Err(NetError::NotAdmitted { addr, peer, refusal }),
        }
    };
    tokio::time::timeout(timeout, handshake).await.map_err(|_| NetError::HandshakeTimeout { addr, timeout })?
}

/// Hellos and proofs, the same on both sides: returns the peer once its proof verified.
async fn exchange_proofs<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: SocketAddr,
    me: NodeId,
    role: Role,
    secret: &ClusterSecret,
) -> Result<NodeId, NetError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|error| NetError::HandshakeIo { addr, source: io::Error::other(error) })?;
    let mine = Hello { node: me, nonce };
    write_all(stream, addr, &mine.encode()).await?;
    let mut theirs = [0u8; HELLO_BYTES];
    read_exact(stream, addr, &mut theirs[..HELLO_PREFIX_BYTES]).await?;
    let mut prefix = [0u8; HELLO_PREFIX_BYTES];
    prefix.copy_from_slice(&theirs[..HELLO_PREFIX_BYTES]);
    Hello::check_prefix(&prefix).map_err(|failure| NetError::Authentication { addr, failure })?;
    read_exact(stream, addr, &mut theirs[HELLO_PREFIX_BYTES..]).await?;
    let theirs = Hello::decode(&theirs).map_err(|failure| NetError::Authentication { addr, failure })?;
    if theirs.node == me {
        return Err(NetError::Authentication { addr, failure: AuthFailure::SameNodeId(me) });
    }
    if theirs.nonce == mine.nonce {
        return Err(NetError::Authentication { addr, failure: AuthFailure::ReflectedNonce });
    }
    let (dialer, acceptor) = match role {
        Role::Dialer => (mine, theirs),
        Role::Acceptor => (theirs, mine),
    };
    let transcript =
        Transcript { dialer: dialer.node, acceptor: acceptor.node, dialer_nonce: dialer.nonce, acceptor_nonce: acceptor.nonce };
    let my_proof = secret.proof(&transcript, role).finalize().into_bytes();
    write_all(stream, addr, &my_proof).await?;
    let mut their_proof = [0u8; PROOF_BYTES];
    read_exact(stream, addr, &mut their_proof).await?;
    secret
        .proof(&transcript, role.other())
        .verify_slice(&their_proof)
        .map_err(|_| NetError::Authentication { addr, failure: AuthFailure::WrongSecret })?;
    Ok(theirs.node)
}

async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, addr: SocketAddr, bytes: &[u8]) -> Result<(), NetError> {
    stream.write_all(bytes).await.map_err(|source| NetError::HandshakeIo { addr, source })?;
    stream.flush().await.map_err(|source| NetError::HandshakeIo { addr, source })
}

async fn read_exact<S: AsyncRead + Unpin>(stream: &mut S, addr: SocketAddr, bytes: &mut [u8]) -> Result<(), NetError> {
    match stream.read_exact(bytes).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            Err(NetError::Authentication { addr, failure: AuthFailure::PeerHungUp })
        }
        Err(source) => Err(NetError::HandshakeIo { addr, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    fn secret(text: &str) -> ClusterSecret {
        text.parse().expect("long enough")
    }

    async fn handshake(
        dialer_secret: &ClusterSecret,
        acceptor_secret: &ClusterSecret,
        admission: Result<(), Refusal>,
    ) -> (Result<NodeId, NetError>, Result<NodeId, NetError>) {
        let (mut dialer_end, mut acceptor_end) = tokio::io::duplex(1024);
        let dialer = authenticate_dialer(&mut dialer_end, addr(), NodeId(1), None, dialer_secret, TIMEOUT);
        let acceptor = async {
            let result = authenticate_acceptor(&mut acceptor_end, addr(), NodeId(2), acceptor_secret, TIMEOUT, &mut |_| admission).await;
            // A refusing acceptor closes the stream.
            drop(acceptor_end);
            result
        };
        tokio::join!(dialer, acceptor)
    }

    #[tokio::test]
    async fn same_secret_authenticates_both_sides() {
        let shared = secret("correct horse battery staple");
        let (dialer, acceptor) = handshake(&shared, &shared, Ok(())).await;
        assert_eq!(dialer.expect("dialer authenticated"), NodeId(2));
        assert_eq!(acceptor.expect("acceptor authenticated"), NodeId(1));
    }

    #[tokio::test]
    async fn wrong_secret_fails_on_both_sides() {
        let (dialer, acceptor) = handshake(&secret("correct horse battery staple"), &secret("incorrect horse battery"), Ok(())).await;
        for result in [dialer, acceptor] {
            assert!(matches!(result, Err(NetError::Authentication { failure: AuthFailure::WrongSecret, .. })), "{result:?}");
        }
    }

    #[tokio::test]
    async fn refusal_reaches_the_dialer() {
        let shared = secret("correct horse battery staple");
        let (dialer, acceptor) = handshake(&shared, &shared, Err(Refusal::DuplicateConnection)).await;
        assert!(
            matches!(dialer, Err(NetError::RefusedByPeer { peer: NodeId(2), refusal: Refusal::DuplicateConnection, .. })),
            "{dialer:?}"
        );
        assert!(
            matches!(acceptor, Err(NetError::NotAdmitted { peer: NodeId(1), refusal: Refusal::DuplicateConnection, .. })),
            "{acceptor:?}"
        );
    }

    #[tokio::test]
    async fn non_tethys_peer_is_named_by_its_first_bytes() {
        let (mut dialer_end, mut stranger) = tokio::io::duplex(1024);
        let shared = secret("correct horse battery staple");
        let dialer = authenticate_dialer(&mut dialer_end, addr(), NodeId(1), None, &shared, TIMEOUT);
        let stranger = async {
            stranger.write_all(&[b'S'; HELLO_BYTES]).await.expect("duplex write");
            stranger
        };
        let (result, _stranger) = tokio::join!(dialer, stranger);
        assert!(matches!(
            result,
            Err(NetError::Authentication { failure: AuthFailure::NotTethys { found: [b'S', b'S', b'S', b'S'] }, .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peer_times_out() {
        let (mut dialer_end, _silent) = tokio::io::duplex(1024);
        let shared = secret("correct horse battery staple");
        let result = authenticate_dialer(&mut dialer_end, addr(), NodeId(1), None, &shared, TIMEOUT).await;
        assert!(matches!(result, Err(NetError::HandshakeTimeout { timeout: TIMEOUT, .. })), "{result:?}");
    }

    #[test]
    fn short_secret_is_refused_and_debug_hides_the_secret() {
        assert_eq!(ClusterSecret::from_str("short").err(), Some(SecretError::TooShort { bytes: 5, bytes_min: 16 }));
        let printed = format!("{:?}", secret("correct horse battery staple"));
        assert!(!printed.contains("horse"), "{printed}");
    }

    #[test]
    fn proofs_differ_by_role_and_by_nonce() {
        let shared = secret("correct horse battery staple");
        let transcript = Transcript { dialer: NodeId(1), acceptor: NodeId(2), dialer_nonce: [1; 32], acceptor_nonce: [2; 32] };
        let dialer_proof = shared.proof(&transcript, Role::Dialer).finalize().into_bytes();
        let acceptor_proof = shared.proof(&transcript, Role::Acceptor).finalize().into_bytes();
        assert_ne!(dialer_proof, acceptor_proof, "a proof reflected back at its sender does not verify");
        let other = Transcript { dialer_nonce: [3; 32], ..transcript };
        assert_ne!(shared.proof(&other, Role::Dialer).finalize().into_bytes(), dialer_proof);
    }
}
