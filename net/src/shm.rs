//! Shared memory between two processes of one host: a connection's bytes through rings in a mapped
//! file instead of through the kernel's TCP stack.
//!
//! Right after the handshake, a dialer whose connection is plain TCP (not TLS) offers a file it
//! created in `/dev/shm` (or the temporary directory), named by a random token written inside it.
//! The acceptor maps it if it can (it is on the same host, the file is what the offer says, and its
//! own options allow it) and answers yes or no; the dialer then removes the file's name, so nothing
//! is left behind whatever happens later (and the file of a dialer killed before that is removed by
//! the next offer made on the host). With a yes, each direction's bytes go through its own
//! single-producer, single-consumer ring in that mapping (the dialer writes ring 0, the acceptor
//! ring 1), and the TCP connection stays to carry one-byte doorbells only: a reader that found its
//! ring empty (or a writer that found it full) says so in the mapping and sleeps; the other side,
//! after publishing bytes (or freeing space), sees that and rings. So a busy connection makes no
//! system call at all, and every byte is copied once into the ring and once out of it.
//!
//! Everything above is unchanged: the halves are an `AsyncBufRead` and an `AsyncWrite` under the
//! connection's reader and writer tasks, the wire format and the decoder's checks are the same, and
//! the engine's credits bound what is in flight. A peer process that ends for any reason has its
//! socket closed by the kernel, so a dead peer is seen as it is over TCP (what it had published is
//! still read; a message it was writing is a truncation). A peer can only write bytes into the ring
//! it owns: bytes the decoder checks like any others, and indices checked against the ring's size.

// The rings live in memory another process writes: raw pointers and atomics over a mapping.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use memmap2::MmapMut;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::conn::Side;
use crate::error::NetError;

/// What a dialer sends after the handshake when it offers no shared memory: its connection stays
/// on TCP. (A dialer always sends an offer, this or a mapping's, and the acceptor always reads one.)
pub const OFFER_TCP_ONLY: &[u8] = &[OFFER_NONE];

const OFFER_NONE: u8 = 0;
const OFFER_MAPPING: u8 = 1;
const ANSWER_DECLINED: u8 = 0;
const ANSWER_MAPPED: u8 = 1;
/// The longest path an offer may name.
const OFFER_PATH_BYTES_MAX: usize = 255;
const TOKEN_BYTES: usize = 16;

/// The doorbell that says "your inbound ring has bytes"; [`SPACE_BELL`]: "your outbound ring has room".
const DATA_BELL: u8 = b'D';
const SPACE_BELL: u8 = b'S';

/// The smallest and the largest ring a mapping may have (each a power of two).
pub const RING_BYTES_MIN: usize = 64 << 10;
/// See [`RING_BYTES_MIN`].
pub const RING_BYTES_MAX: usize = 1 << 30;
/// A reader is handed at most this much of its ring at a time, so space frees as it decodes.
const FILL_BYTES_MAX: usize = 256 << 10;

/// The mapping's layout: a header page, then ring 0's bytes, then ring 1's.
const FILE_MAGIC: [u8; 8] = *b"TETHYSHM";
const LAYOUT_VERSION: u32 = 1;
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 8;
const RING_BYTES_AT: usize = 16;
const TOKEN_AT: usize = 24;
/// Ring `i`'s control block starts at `CONTROL_AT[i]`; each field has a cache line of its own.
const CONTROL_AT: [usize; 2] = [1024, 2048];
const HEAD_AT: usize = 0;
const TAIL_AT: usize = 64;
const READER_PARKED_AT: usize = 128;
const WRITER_PARKED_AT: usize = 192;
const WRITER_CLOSED_AT: usize = 256;
const HEADER_PAGE_BYTES: usize = 4096;

/// The ring a side of the connection writes: the dialer (who created the mapping) ring 0, the
/// acceptor ring 1.
fn outbound_ring(side: Side) -> usize {
    match side {
        Side::Dialer => 0,
        Side::Acceptor => 1,
    }
}

/// A mapped file of two rings, shared with one peer process.
pub(crate) struct Mapping {
    /// Kept for its lifetime: `base` points into it.
    _map: MmapMut,
    base: *mut u8,
    ring_bytes: usize,
    side: Side,
}

// SAFETY: the mapping is only reached through atomics (indices and flags) and through byte copies
// into and out of ring regions whose ownership the indices hand over (see `Ring`); nothing in it is
// tied to a thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; concurrent use from two threads is the same as from two processes.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn file_bytes(ring_bytes: usize) -> usize {
        HEADER_PAGE_BYTES + 2 * ring_bytes
    }

    fn from_map(mut map: MmapMut, ring_bytes: usize, side: Side) -> Mapping {
        debug_assert_eq!(map.len(), Mapping::file_bytes(ring_bytes));
        let base = map.as_mut_ptr();
        Mapping { _map: map, base, ring_bytes, side }
    }

    /// Ring `index` (0 or 1).
    fn ring(&self, index: usize) -> Ring {
        assert!(index < 2);
        // SAFETY: both offsets lie inside the mapping (`file_bytes`), which `self` keeps alive.
        unsafe {
            Ring {
                control: self.base.add(CONTROL_AT[index]),
                data: self.base.add(HEADER_PAGE_BYTES + index * self.ring_bytes),
                capacity: self.ring_bytes,
            }
        }
    }
}

/// Creates a mapping for an offer: a new file of `ring_bytes` per ring, its header written.
fn create_mapping(ring_bytes: usize) -> io::Result<(Mapping, PathBuf, [u8; TOKEN_BYTES])> {
    let mut token = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut token).map_err(io::Error::other)?;
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    remove_files_of_dead_processes(&dir);
    let name: String = token.iter().map(|byte| format!("{byte:02x}")).collect();
    let path = dir.join(format!("{FILE_PREFIX}{}-{name}", std::process::id()));
    let mut open = OpenOptions::new();
    open.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let file = open.open(&path)?;
    let created = (|| {
        file.set_len(Mapping::file_bytes(ring_bytes) as u64)?;
        // SAFETY: a file this process just created under a fresh random name; the only other
        // process that maps it is the peer this offer goes to, which follows the ring protocol.
        let mut map = unsafe { MmapMut::map_mut(&file)? };
        map[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(&FILE_MAGIC);
        map[VERSION_AT..VERSION_AT + 4].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        map[RING_BYTES_AT..RING_BYTES_AT + 8].copy_from_slice(&(ring_bytes as u64).to_le_bytes());
        map[TOKEN_AT..TOKEN_AT + TOKEN_BYTES].copy_from_slice(&token);
        Ok(Mapping::from_map(map, ring_bytes, Side::Dialer))
    })();
    match created {
        Ok(mapping) => Ok((mapping, path, token)),
        Err(error) => {
            let _ = std::fs::remove_file(&path);
            Err(error)
        }
    }
}

/// The start of an offer file's name; then the creating process's id, `-`, the token.
const FILE_PREFIX: &str = "tethys-net-";

/// Removes the offer files left by processes no longer running (a dialer killed between creating
/// its file and the answer, when the name is removed). Needs `/proc` to tell; without, keeps all.
fn remove_files_of_dead_processes(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|name| name.strip_prefix(FILE_PREFIX)).and_then(|rest| rest.split_once('-')).map(|(pid, _)| pid);
        if let Some(pid) = pid.filter(|pid| pid.parse::<u32>().is_ok()) {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Maps the file an offer names, if it is what the offer says.
fn open_mapping(path: &Path, token: &[u8; TOKEN_BYTES]) -> io::Result<Mapping> {
    let invalid = |problem: String| io::Error::new(io::ErrorKind::InvalidData, problem);
    let file = File::options().read(true).write(true).open(path)?;
    let file_bytes = file.metadata()?.len();
    if file_bytes < HEADER_PAGE_BYTES as u64 {
        return Err(invalid(format!("{} has {file_bytes} bytes, less than a header", path.display())));
    }
    // SAFETY: the file the authenticated peer created for this connection; it follows the ring
    // protocol, and whatever it writes is checked before use (indices) or decoded (bytes).
    let map = unsafe { MmapMut::map_mut(&file)? };
    let read_u64 = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
    if map[MAGIC_AT..MAGIC_AT + 8] != FILE_MAGIC {
        return Err(invalid(format!("{} is not a Tethys mapping", path.display())));
    }
    let version = u32::from_le_bytes(map[VERSION_AT..VERSION_AT + 4].try_into().expect("4 bytes"));
    if version != LAYOUT_VERSION {
        return Err(invalid(format!("{} has layout {version}, this program {LAYOUT_VERSION}", path.display())));
    }
    if map[TOKEN_AT..TOKEN_AT + TOKEN_BYTES] != token[..] {
        return Err(invalid(format!("{} carries another token than the offer", path.display())));
    }
    let ring_bytes = read_u64(RING_BYTES_AT);
    let ring_ok = ring_bytes.is_power_of_two() && (RING_BYTES_MIN as u64..=RING_BYTES_MAX as u64).contains(&ring_bytes);
    if !ring_ok || file_bytes != Mapping::file_bytes(ring_bytes as usize) as u64 {
        return Err(invalid(format!("{} has rings of {ring_bytes} bytes in {file_bytes} bytes", path.display())));
    }
    Ok(Mapping::from_map(map, ring_bytes as usize, Side::Acceptor))
}

/// The dialer's side of the offer, right after the handshake: offers a mapping of `ring_bytes` per
/// ring (none when 0, or when the file cannot be made) and returns it if the acceptor mapped it.
/// The file's name is removed before returning, whatever the answer.
pub(crate) async fn offer(
    stream: &mut TcpStream,
    addr: SocketAddr,
    ring_bytes: usize,
    timeout: Duration,
) -> Result<Option<Mapping>, NetError> {
    let created = match ring_bytes {
        0 => None,
        _ => match create_mapping(ring_bytes) {
            Ok(created) => Some(created),
            Err(error) => {
                tracing::debug!(%addr, %error, "no shared memory for this connection: cannot create its file");
                None
            }
        },
    };
    let Some((mapping, path, token)) = created else {
        write_all(stream, addr, OFFER_TCP_ONLY, timeout).await?;
        return Ok(None);
    };
    let answered = async {
        let path_text = path.to_string_lossy();
        let path_bytes = path_text.as_bytes();
        debug_assert!(path_bytes.len() <= OFFER_PATH_BYTES_MAX, "the temporary directory's path is short");
        let mut message = Vec::with_capacity(2 + TOKEN_BYTES + path_bytes.len());
        message.push(OFFER_MAPPING);
        message.extend_from_slice(&token);
        message.push(path_bytes.len().min(OFFER_PATH_BYTES_MAX) as u8);
        message.extend_from_slice(&path_bytes[..path_bytes.len().min(OFFER_PATH_BYTES_MAX)]);
        write_all(stream, addr, &message, timeout).await?;
        let mut answer = [0u8; 1];
        read_exact(stream, addr, &mut answer, timeout).await?;
        Ok::<u8, NetError>(answer[0])
    }
    .await;
    let _ = std::fs::remove_file(&path);
    match answered? {
        ANSWER_MAPPED => Ok(Some(mapping)),
        ANSWER_DECLINED => Ok(None),
        code => Err(NetError::SharedMemory { addr, problem: format!("the acceptor answered the offer with {code}, neither yes nor no") }),
    }
}

/// The acceptor's side: reads the dialer's offer and maps it when `enabled` and possible.
pub(crate) async fn answer(
    stream: &mut TcpStream,
    addr: SocketAddr,
    enabled: bool,
    timeout: Duration,
) -> Result<Option<Mapping>, NetError> {
    let mut kind = [0u8; 1];
    read_exact(stream, addr, &mut kind, timeout).await?;
    match kind[0] {
        OFFER_NONE => return Ok(None),
        OFFER_MAPPING => {}
        other => {
            let problem = format!("the dialer's first byte after the handshake is {other}, not a transport offer");
            return Err(NetError::SharedMemory { addr, problem });
        }
    }
    let mut token = [0u8; TOKEN_BYTES];
    read_exact(stream, addr, &mut token, timeout).await?;
    let mut path_len = [0u8; 1];
    read_exact(stream, addr, &mut path_len, timeout).await?;
    let mut path = vec![0u8; path_len[0] as usize];
    read_exact(stream, addr, &mut path, timeout).await?;
    let mapping = match (enabled, String::from_utf8(path)) {
        (false, _) => None,
        (true, Err(_)) => {
            tracing::debug!(%addr, "declined shared memory: the offered path is not UTF-8");
            None
        }
        (true, Ok(path)) => match open_mapping(Path::new(&path), &token) {
            Ok(mapping) => Some(mapping),
            Err(error) => {
                // Usually another host: the file is not here.
                tracing::debug!(%addr, %error, "declined shared memory");
                None
            }
        },
    };
    let answer = if mapping.is_some() { ANSWER_MAPPED } else { ANSWER_DECLINED };
    write_all(stream, addr, &[answer], timeout).await?;
    Ok(mapping)
}

async fn write_all(stream: &mut TcpStream, addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Result<(), NetError> {
    match tokio::time::timeout(timeout, stream.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(NetError::HandshakeIo { addr, source }),
        Err(_) => Err(NetError::HandshakeTimeout { addr, timeout }),
    }
}

async fn read_exact(stream: &mut TcpStream, addr: SocketAddr, bytes: &mut [u8], timeout: Duration) -> Result<(), NetError> {
    match tokio::time::timeout(timeout, stream.read_exact(bytes)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(NetError::HandshakeIo { addr, source }),
        Err(_) => Err(NetError::HandshakeTimeout { addr, timeout }),
    }
}

/// One ring of a mapping: `capacity` bytes (a power of two) and its control block. `head` and
/// `tail` count bytes ever written and read; the writer owns `[head, tail + capacity)`, the reader
/// `[tail, head)`, and each hands a region over by storing its index (release) after copying.
#[derive(Clone, Copy)]
struct Ring {
    control: *mut u8,
    data: *mut u8,
    capacity: usize,
}

impl Ring {
    fn u64_at(&self, at: usize) -> &AtomicU64 {
        // SAFETY: `at` is a 64-byte-aligned offset in the control block of a page-aligned mapping,
        // alive as long as the `Link` holding this ring; other processes use it only atomically.
        unsafe { &*(self.control.add(at) as *const AtomicU64) }
    }

    fn u32_at(&self, at: usize) -> &AtomicU32 {
        // SAFETY: as in `u64_at`.
        unsafe { &*(self.control.add(at) as *const AtomicU32) }
    }

    fn head(&self) -> &AtomicU64 {
        self.u64_at(HEAD_AT)
    }

    fn tail(&self) -> &AtomicU64 {
        self.u64_at(TAIL_AT)
    }

    fn reader_parked(&self) -> &AtomicU32 {
        self.u32_at(READER_PARKED_AT)
    }

    fn writer_parked(&self) -> &AtomicU32 {
        self.u32_at(WRITER_PARKED_AT)
    }

    fn writer_closed(&self) -> &AtomicU32 {
        self.u32_at(WRITER_CLOSED_AT)
    }

    /// Bytes between `tail` and `head`, checked against the capacity (the peer writes one of them).
    fn filled(&self, head: u64, tail: u64) -> io::Result<usize> {
        let filled = head.wrapping_sub(tail);
        if filled > self.capacity as u64 {
            let problem = format!("shared-memory ring corrupt: head {head} and tail {tail} are more than {} bytes apart", self.capacity);
            return Err(io::Error::new(io::ErrorKind::InvalidData, problem));
        }
        Ok(filled as usize)
    }
}

/// A parked task's waker.
#[derive(Default)]
struct WakerSlot(Mutex<Option<Waker>>);

impl WakerSlot {
    fn register(&self, waker: &Waker) {
        let mut slot = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match slot.as_ref() {
            Some(registered) if registered.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn wake(&self) {
        let waker = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// This process's side of a connection through shared memory.
struct Link {
    mapping: Mapping,
    outbound: Ring,
    inbound: Ring,
    /// The connection's socket: doorbells both ways; its end is the peer's.
    socket: TcpStream,
    /// The doorbell socket ended: the peer process closed the connection or is gone.
    peer_gone: AtomicBool,
    /// Our reader, parked on an empty inbound ring.
    reader_waker: WakerSlot,
    /// Our writer, parked on a full outbound ring.
    writer_waker: WakerSlot,
    /// Halves not dropped yet; the last one stops the pump, which closes the socket.
    halves: AtomicUsize,
    stop_pump: Notify,
    /// The connection's runtime (a doorbell may be rung from any thread).
    runtime: tokio::runtime::Handle,
    /// How long the reader watches an empty ring before it parks.
    reader_poll: Duration,
}

// SAFETY: `Ring`'s pointers point into `mapping`, which the link owns (see `Mapping`).
unsafe impl Send for Link {}
// SAFETY: as above.
unsafe impl Sync for Link {}

impl Link {
    /// Rings the peer's doorbell. A full socket buffer means the peer has doorbells to read
    /// already; the byte is then sent once there is room, so none is lost.
    fn ring(self: &Arc<Self>, bell: u8) {
        match self.socket.try_write(&[bell]) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                let link = Arc::clone(self);
                self.runtime.spawn(async move {
                    while link.socket.writable().await.is_ok() {
                        match link.socket.try_write(&[bell]) {
                            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                            _ => break,
                        }
                    }
                });
            }
            // The peer is gone: the pump sees the socket's end.
            Err(_) => {}
        }
    }

    /// Tells a parked peer (per `parked`) after making something visible to it.
    fn wake_peer(self: &Arc<Self>, parked: &AtomicU32, bell: u8) {
        // Pairs with the peer's fence between setting `parked` and checking again: either it sees
        // what was published, or this sees it parked.
        fence(Ordering::SeqCst);
        if parked.load(Ordering::Relaxed) != 0 && parked.swap(0, Ordering::AcqRel) != 0 {
            self.ring(bell);
        }
    }

    fn half_dropped(&self) {
        if self.halves.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.stop_pump.notify_one();
        }
    }
}

/// Reads doorbells until the socket ends (the peer is gone) or both halves are dropped.
async fn pump(link: Arc<Link>) {
    let mut bells = [0u8; 256];
    loop {
        let readable = tokio::select! {
            biased;
            () = link.stop_pump.notified() => return,
            readable = link.socket.readable() => readable,
        };
        if readable.is_err() {
            break;
        }
        match link.socket.try_read(&mut bells) {
            Ok(0) => break,
            Ok(read) => {
                let (data, space) = (bells[..read].contains(&DATA_BELL), bells[..read].contains(&SPACE_BELL));
                // Anything else is not a doorbell of ours: wake both, they only look again.
                let other = bells[..read].iter().any(|bell| *bell != DATA_BELL && *bell != SPACE_BELL);
                if data || other {
                    link.reader_waker.wake();
                }
                if space || other {
                    link.writer_waker.wake();
                }
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    link.peer_gone.store(true, Ordering::Release);
    link.reader_waker.wake();
    link.writer_waker.wake();
}

/// Starts a connection's use of `mapping` over its `socket`: the halves for its reader and writer
/// tasks (and a doorbell pump on the current runtime). The reader watches an empty ring for up to
/// `reader_poll` before it parks.
pub(crate) fn split(socket: TcpStream, mapping: Mapping, reader_poll: Duration) -> (ShmReadHalf, ShmWriter) {
    let outbound = mapping.ring(outbound_ring(mapping.side));
    let inbound = mapping.ring(1 - outbound_ring(mapping.side));
    let link = Arc::new(Link {
        mapping,
        outbound,
        inbound,
        socket,
        peer_gone: AtomicBool::new(false),
        reader_waker: WakerSlot::default(),
        writer_waker: WakerSlot::default(),
        halves: AtomicUsize::new(2),
        stop_pump: Notify::new(),
        runtime: tokio::runtime::Handle::current(),
        reader_poll,
    });
    debug_assert_eq!(link.mapping.ring_bytes, link.inbound.capacity);
    tokio::spawn(pump(Arc::clone(&link)));
    // A fresh mapping starts at zero; an index already moved would be a peer's corruption, which
    // `filled` reports on first use.
    let tail = link.inbound.tail().load(Ordering::Acquire);
    let head = link.outbound.head().load(Ordering::Acquire);
    let writer = ShmWriteHalf { link: Arc::clone(&link), head, closed: false };
    (ShmReadHalf { link, tail, gaps: EmptyGaps::new() }, ShmWriter(Arc::new(Mutex::new(writer))))
}

/// Watches the ring's head for up to `poll` before the reader parks: true if it moved. Between
/// looks the thread yields, so a runnable thread of this core goes first.
fn poll_for_head(ring: &Ring, tail: u64, poll: Duration) -> bool {
    if poll.is_zero() {
        return false;
    }
    let until = std::time::Instant::now() + poll;
    while std::time::Instant::now() < until {
        for _ in 0..64 {
            if ring.head().load(Ordering::Acquire) != tail {
                return true;
            }
            std::hint::spin_loop();
        }
        std::thread::yield_now();
    }
    false
}

/// The reading half: bytes of the inbound ring, read in place.
pub(crate) struct ShmReadHalf {
    link: Arc<Link>,
    /// Our copy of the inbound ring's tail (only we move it).
    tail: u64,
    gaps: EmptyGaps,
}

/// How long the inbound ring stays empty between bursts: watching it pays only when bytes come
/// back sooner than the watch lasts (a busy data channel), not on a connection that carries a
/// credit now and then or frames far apart.
struct EmptyGaps {
    /// When the reader last found the ring empty, if it has not had bytes since.
    empty_since: Option<std::time::Instant>,
    /// A moving average of the gaps (starts long: no watching until gaps were seen short).
    typical: Duration,
}

impl EmptyGaps {
    const START: Duration = Duration::from_millis(1);

    fn new() -> EmptyGaps {
        EmptyGaps { empty_since: None, typical: Self::START }
    }

    fn on_bytes(&mut self) {
        if let Some(since) = self.empty_since.take() {
            self.typical = (self.typical * 7 + since.elapsed()) / 8;
        }
    }

    /// How long to watch the empty ring now, within `budget`: twice the typical gap if that fits.
    fn watch(&mut self, budget: Duration) -> Duration {
        self.empty_since.get_or_insert_with(std::time::Instant::now);
        if self.typical.saturating_mul(2) <= budget {
            self.typical * 2
        } else if self.typical <= budget {
            budget
        } else {
            Duration::ZERO
        }
    }
}

impl AsyncBufRead for ShmReadHalf {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        let ring = this.link.inbound;
        loop {
            // The end first, then the head: bytes published before the end are never missed.
            let ended = this.link.peer_gone.load(Ordering::Acquire) || ring.writer_closed().load(Ordering::Acquire) != 0;
            let head = ring.head().load(Ordering::Acquire);
            let filled = match ring.filled(head, this.tail) {
                Ok(filled) => filled,
                Err(error) => return Poll::Ready(Err(error)),
            };
            if filled > 0 {
                this.gaps.on_bytes();
                let start = (this.tail as usize) & (ring.capacity - 1);
                let len = filled.min(ring.capacity - start).min(FILL_BYTES_MAX);
                // SAFETY: `[tail, tail + filled)` was published by the writer (the acquire load of
                // `head`) and is ours until we move `tail` in `consume`; the writer does not touch
                // it meanwhile, and `start + len` stays inside the ring.
                let bytes = unsafe { std::slice::from_raw_parts(ring.data.add(start), len) };
                return Poll::Ready(Ok(bytes));
            }
            if ended {
                return Poll::Ready(Ok(&[]));
            }
            let watch = this.gaps.watch(this.link.reader_poll);
            if poll_for_head(&ring, this.tail, watch) {
                continue;
            }
            this.link.reader_waker.register(cx.waker());
            ring.reader_parked().store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            let moved = ring.head().load(Ordering::SeqCst) != this.tail
                || this.link.peer_gone.load(Ordering::SeqCst)
                || ring.writer_closed().load(Ordering::SeqCst) != 0;
            if !moved {
                return Poll::Pending;
            }
            ring.reader_parked().store(0, Ordering::Relaxed);
        }
    }

    fn consume(self: Pin<&mut Self>, amount: usize) {
        let this = self.get_mut();
        if amount == 0 {
            return;
        }
        this.tail += amount as u64;
        let ring = this.link.inbound;
        ring.tail().store(this.tail, Ordering::Release);
        this.link.wake_peer(ring.writer_parked(), SPACE_BELL);
    }
}

impl AsyncRead for ShmReadHalf {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let copied = match self.as_mut().poll_fill_buf(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Ready(Ok(bytes)) => {
                let copied = bytes.len().min(buf.remaining());
                buf.put_slice(&bytes[..copied]);
                copied
            }
        };
        self.consume(copied);
        Poll::Ready(Ok(()))
    }
}

impl Drop for ShmReadHalf {
    fn drop(&mut self) {
        self.link.half_dropped();
    }
}

/// The writing half, owned by the connection's writer task: an `AsyncWrite` over the ring that
/// also lends the ring to `send`s made while nothing is queued ([`ShmWriter::direct`]). Dropping it
/// shuts the ring down, as dropping a TCP write half does.
pub(crate) struct ShmWriter(Arc<Mutex<ShmWriteHalf>>);

impl ShmWriter {
    /// The ring, for a sender that writes a whole message itself when the writer task has nothing
    /// queued (so it cannot overtake a queued message): one copy into the ring from the sending
    /// thread, and no wake-up of the writer task. Gone once the writer task ends.
    pub(crate) fn direct(&self) -> Weak<Mutex<ShmWriteHalf>> {
        Arc::downgrade(&self.0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ShmWriteHalf> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl AsyncWrite for ShmWriter {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.lock().poll_write_parts(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.lock().poll_write_parts(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.lock().close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for ShmWriter {
    fn drop(&mut self) {
        let mut half = self.lock();
        half.close();
        half.link.half_dropped();
    }
}

/// The ring's writing end: bytes copied into the outbound ring.
pub(crate) struct ShmWriteHalf {
    link: Arc<Link>,
    /// Our copy of the outbound ring's head (only we move it).
    head: u64,
    closed: bool,
}

impl ShmWriteHalf {
    /// Writes `parts` (one message) whole if the ring has room for all of it now, and tells a
    /// parked reader; false, and nothing written, if not (or the ring is shut down or the peer gone).
    pub(crate) fn try_write_whole(&mut self, parts: &[&[u8]]) -> bool {
        let ring = self.link.outbound;
        if self.closed || self.link.peer_gone.load(Ordering::Acquire) {
            return false;
        }
        let tail = ring.tail().load(Ordering::Acquire);
        let Ok(filled) = ring.filled(self.head, tail) else { return false };
        let total: usize = parts.iter().map(|part| part.len()).sum();
        if total > ring.capacity - filled {
            return false;
        }
        let mut at = self.head;
        for part in parts {
            self.copy_in(at, part);
            at += part.len() as u64;
        }
        self.publish(at);
        true
    }

    /// Copies `bytes` into the ring at index `at`, wrapping at its end.
    fn copy_in(&self, at: u64, mut bytes: &[u8]) {
        let ring = self.link.outbound;
        let mut at = at;
        while !bytes.is_empty() {
            let start = (at as usize) & (ring.capacity - 1);
            let run = bytes.len().min(ring.capacity - start);
            // SAFETY: callers copy only into `[head, tail + capacity)`, which is ours (an acquire
            // load of `tail` saw the reader done with it), and `start + run` stays inside the ring.
            unsafe { copy_to_ring(bytes.as_ptr(), ring.data.add(start), run) };
            bytes = &bytes[run..];
            at += run as u64;
        }
    }

    /// Hands the bytes up to `head` to the reader, and rings it if it sleeps.
    fn publish(&mut self, head: u64) {
        // The copies' streaming stores are ordered before the release of `head` that hands them
        // over (they are not ordered by the release store alone).
        store_fence();
        let ring = self.link.outbound;
        self.head = head;
        ring.head().store(head, Ordering::Release);
        self.link.wake_peer(ring.reader_parked(), DATA_BELL);
    }

    /// Marks the ring closed for the peer's reader (as a TCP shutdown would), once.
    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            let ring = self.link.outbound;
            ring.writer_closed().store(1, Ordering::Release);
            self.link.wake_peer(ring.reader_parked(), DATA_BELL);
        }
    }

    /// Copies as much of `bufs` as the ring has room for; parks the writer on a full ring.
    fn poll_write_parts(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let ring = self.link.outbound;
        if self.closed {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the shared-memory ring was shut down")));
        }
        loop {
            if self.link.peer_gone.load(Ordering::Acquire) {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "the peer process closed the connection")));
            }
            let tail = ring.tail().load(Ordering::Acquire);
            let free = match ring.filled(self.head, tail) {
                Ok(filled) => ring.capacity - filled,
                Err(error) => return Poll::Ready(Err(error)),
            };
            if free > 0 {
                let mut at = self.head;
                for buf in bufs {
                    let take = buf.len().min(free - (at - self.head) as usize);
                    self.copy_in(at, &buf[..take]);
                    at += take as u64;
                }
                let written = (at - self.head) as usize;
                if written > 0 {
                    self.publish(at);
                }
                return Poll::Ready(Ok(written));
            }
            self.link.writer_waker.register(cx.waker());
            ring.writer_parked().store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if ring.tail().load(Ordering::SeqCst) == tail && !self.link.peer_gone.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
            ring.writer_parked().store(0, Ordering::Relaxed);
        }
    }
}

/// Runs at least this long are copied into a ring with streaming stores.
const STREAMING_COPY_BYTES_MIN: usize = 4096;

/// Copies `len` bytes from `from` into the ring at `to`. A long run (a frame's records) goes with
/// streaming stores on x86-64: the ring's lines were last read by the peer's core, so ordinary
/// stores would first fetch each line back from it to write it (and fill this core's cache with
/// lines it will not read). `store_fence` must run before the bytes are handed over.
///
/// # Safety
/// `from` must be readable and `to` writable for `len` bytes, and the two must not overlap.
unsafe fn copy_to_ring(from: *const u8, to: *mut u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if len >= STREAMING_COPY_BYTES_MIN {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        // Up to 16-byte alignment of the destination with an ordinary copy, then 64 bytes a
        // step with SSE2's streaming store (every x86-64 has it), then the tail.
        let head = to.align_offset(16).min(len);
        std::ptr::copy_nonoverlapping(from, to, head);
        let mut at = head;
        while at + 64 <= len {
            let (source, target) = (from.add(at) as *const __m128i, to.add(at) as *mut __m128i);
            let words =
                [_mm_loadu_si128(source), _mm_loadu_si128(source.add(1)), _mm_loadu_si128(source.add(2)), _mm_loadu_si128(source.add(3))];
            for (n, word) in words.into_iter().enumerate() {
                _mm_stream_si128(target.add(n), word);
            }
            at += 64;
        }
        std::ptr::copy_nonoverlapping(from.add(at), to.add(at), len - at);
        return;
    }
    std::ptr::copy_nonoverlapping(from, to, len);
}

/// Orders the streaming stores of `copy_to_ring` before the stores that follow.
fn store_fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 (every x86-64 has it); a fence has no other effect.
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const TIMEOUT: Duration = Duration::from_secs(10);

    /// A dialer and an acceptor that went through the offer over a real socket pair.
    async fn linked_pair(ring_bytes: usize, accept: bool) -> (Option<Mapping>, Option<Mapping>, TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (mut dialed, (mut accepted, _)) = (dialed.unwrap(), accepted.unwrap());
        let (offered, answered) = tokio::join!(offer(&mut dialed, addr, ring_bytes, TIMEOUT), answer(&mut accepted, addr, accept, TIMEOUT));
        (offered.unwrap(), answered.unwrap(), dialed, accepted)
    }

    #[test]
    fn the_reader_watches_only_after_short_gaps_and_never_beyond_its_budget() {
        let budget = Duration::from_micros(100);
        let mut gaps = EmptyGaps::new();
        assert_eq!(gaps.watch(budget), Duration::ZERO, "no watching before a short gap was seen");
        for _ in 0..64 {
            gaps.empty_since = Some(std::time::Instant::now());
            gaps.on_bytes();
        }
        let watch = gaps.watch(budget);
        assert!(watch > Duration::ZERO && watch <= budget, "short gaps: watch {watch:?} within the budget");
        gaps.empty_since = Some(std::time::Instant::now() - Duration::from_secs(10));
        gaps.on_bytes();
        assert_eq!(gaps.watch(budget), Duration::ZERO, "after a long gap it sleeps at once");
        assert_eq!(EmptyGaps::new().watch(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn an_accepted_offer_maps_the_file_on_both_sides_and_removes_its_name() {
        let (dialer, acceptor, _, _) = linked_pair(RING_BYTES_MIN, true).await;
        let (dialer, acceptor) = (dialer.expect("mapped"), acceptor.expect("mapped"));
        assert_eq!((dialer.ring_bytes, acceptor.ring_bytes), (RING_BYTES_MIN, RING_BYTES_MIN));
        let leftovers = std::fs::read_dir("/dev/shm")
            .map(|dir| {
                dir.flatten()
                    .filter(|entry| entry.file_name().to_string_lossy().contains(&format!("{FILE_PREFIX}{}-", std::process::id())))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(leftovers, 0, "the offer's file has no name left once answered");
    }

    #[test]
    fn files_left_by_dead_processes_are_removed_and_others_kept() {
        let dir = std::env::temp_dir().join(format!("tethys-shm-leftovers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // No process has id 4294967295 (above any pid limit); this test's process is alive.
        let dead = dir.join(format!("{FILE_PREFIX}4294967295-00ff"));
        let alive = dir.join(format!("{FILE_PREFIX}{}-00ff", std::process::id()));
        let other = dir.join("someone-elses-file");
        for file in [&dead, &alive, &other] {
            std::fs::write(file, b"x").unwrap();
        }
        remove_files_of_dead_processes(&dir);
        assert_eq!((dead.exists(), alive.exists(), other.exists()), (false, true, true));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_declined_offer_and_no_offer_leave_both_sides_on_tcp() {
        let (dialer, acceptor, _, _) = linked_pair(RING_BYTES_MIN, false).await;
        assert!(dialer.is_none() && acceptor.is_none());
        let (dialer, acceptor, _, _) = linked_pair(0, true).await;
        assert!(dialer.is_none() && acceptor.is_none());
    }

    #[tokio::test]
    async fn an_offer_naming_a_missing_or_foreign_file_is_declined() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (mut dialed, (mut accepted, _)) = (dialed.unwrap(), accepted.unwrap());
        let foreign = std::env::temp_dir().join(format!("tethys-net-foreign-{}", std::process::id()));
        std::fs::write(&foreign, vec![7u8; HEADER_PAGE_BYTES + 2 * RING_BYTES_MIN]).unwrap();
        for path in [foreign.to_string_lossy().into_owned(), "/nonexistent/tethys".to_string()] {
            let mut message = vec![OFFER_MAPPING];
            message.extend_from_slice(&[1u8; TOKEN_BYTES]);
            message.push(path.len() as u8);
            message.extend_from_slice(path.as_bytes());
            dialed.write_all(&message).await.unwrap();
            let mapping = answer(&mut accepted, addr, true, TIMEOUT).await.unwrap();
            assert!(mapping.is_none(), "{path} is declined");
            let mut reply = [9u8; 1];
            dialed.read_exact(&mut reply).await.unwrap();
            assert_eq!(reply[0], ANSWER_DECLINED);
        }
        std::fs::remove_file(&foreign).unwrap();
        dialed.write_all(&[42]).await.unwrap();
        let error = answer(&mut accepted, addr, true, TIMEOUT).await.err().expect("not an offer");
        assert!(error.to_string().contains("not a transport offer"), "{error}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_cross_in_order_through_a_small_ring_with_wraparound_and_parking() {
        let (dialer, acceptor, dialed, accepted) = linked_pair(RING_BYTES_MIN, true).await;
        let (_dialer_read, mut dialer_write) = split(dialed, dialer.unwrap(), Duration::ZERO);
        let (mut acceptor_read, _acceptor_write) = split(accepted, acceptor.unwrap(), Duration::ZERO);
        // 40 ring sizes of a pattern, in writes of odd sizes: the writer waits for room, the
        // reader for bytes, and every run crosses the ring's end somewhere.
        let total = 40 * RING_BYTES_MIN;
        let pattern = |at: usize| (at.wrapping_mul(31) ^ (at >> 7)) as u8;
        let writing = tokio::spawn(async move {
            let mut at = 0;
            let mut size = 1;
            while at < total {
                let chunk: Vec<u8> = (at..(at + size).min(total)).map(pattern).collect();
                let (first, second) = chunk.split_at(chunk.len() / 2);
                let mut slices = [IoSlice::new(first), IoSlice::new(second)];
                let mut remaining = &mut slices[..];
                while !remaining.is_empty() {
                    let written = dialer_write.write_vectored(remaining).await.unwrap();
                    IoSlice::advance_slices(&mut remaining, written);
                }
                at += chunk.len();
                size = (size * 7 + 13) % 50_000 + 1;
            }
            dialer_write.shutdown().await.unwrap();
            dialer_write
        });
        let mut received = 0;
        loop {
            let bytes = acceptor_read.fill_buf().await.unwrap();
            if bytes.is_empty() {
                break;
            }
            for (offset, byte) in bytes.iter().enumerate() {
                assert_eq!(*byte, pattern(received + offset), "byte {}", received + offset);
            }
            let read = bytes.len();
            received += read;
            acceptor_read.consume(read);
        }
        assert_eq!(received, total, "the shutdown ends the stream after the last byte");
        drop(writing.await.unwrap());
    }

    #[test]
    fn a_copy_into_the_ring_is_exact_at_every_length_and_alignment() {
        let source: Vec<u8> = (0..STREAMING_COPY_BYTES_MIN * 3).map(|n| (n * 7 + n / 251) as u8).collect();
        for len in [0, 1, 15, 16, 17, 63, 64, 65, STREAMING_COPY_BYTES_MIN - 1, STREAMING_COPY_BYTES_MIN, STREAMING_COPY_BYTES_MIN + 77] {
            for (from_offset, to_offset) in [(0, 0), (1, 0), (0, 1), (3, 9), (8, 15), (16, 16)] {
                let mut target = vec![0xAAu8; len + 64];
                // SAFETY: both ranges lie inside their vectors, which do not overlap.
                unsafe { copy_to_ring(source.as_ptr().add(from_offset), target.as_mut_ptr().add(to_offset), len) };
                store_fence();
                assert_eq!(&target[to_offset..to_offset + len], &source[from_offset..from_offset + len], "{len} bytes at +{to_offset}");
                assert!(target[..to_offset].iter().chain(&target[to_offset + len..]).all(|&byte| byte == 0xAA), "nothing else written");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_that_dies_ends_the_stream_after_what_it_published_and_fails_the_writer() {
        let (dialer, acceptor, dialed, accepted) = linked_pair(RING_BYTES_MIN, true).await;
        let dialer = dialer.unwrap();
        // The dialer publishes some bytes, then its process "dies": mapping and socket go without
        // the ring ever being marked closed.
        let ring = dialer.ring(0);
        let words = b"last words";
        // SAFETY: the start of ring 0, which the dialer owns before publishing it.
        unsafe { std::ptr::copy_nonoverlapping(words.as_ptr(), ring.data, words.len()) };
        ring.head().store(words.len() as u64, Ordering::Release);
        drop(dialer);
        drop(dialed);
        let (mut acceptor_read, mut acceptor_write) = split(accepted, acceptor.unwrap(), Duration::ZERO);
        let mut received = Vec::new();
        tokio::time::timeout(TIMEOUT, acceptor_read.read_to_end(&mut received)).await.expect("ends").expect("an end, as a hang-up");
        assert_eq!(received, words);
        let error = tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Err(error) = acceptor_write.write_all(&[0u8; 4096]).await {
                    return error;
                }
            }
        })
        .await
        .expect("the writer fails once it sees the peer gone");
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_corrupt_index_is_an_error_not_a_read_outside_the_ring() {
        let (dialer, acceptor, dialed, accepted) = linked_pair(RING_BYTES_MIN, true).await;
        let dialer = dialer.unwrap();
        // The dialer claims far more bytes than its ring holds.
        dialer.ring(0).head().store(10 * RING_BYTES_MIN as u64, Ordering::Release);
        let (mut acceptor_read, _acceptor_write) = split(accepted, acceptor.unwrap(), Duration::ZERO);
        let error = acceptor_read.fill_buf().await.expect_err("a corrupt ring");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("corrupt"), "{error}");
        drop((dialer, dialed));
    }
}
