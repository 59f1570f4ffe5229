//! Pooled, 16-byte-aligned buffers for received payloads, and for frames being sent.
//!
//! Every payload the decoder delivers lives in a [`PooledBuf`] whose bytes start at a 16-byte
//! boundary, so the engine can validate and read rkyv archives in place, without copying them into
//! an aligned buffer first. Dropping a `PooledBuf` (on whatever thread the consumer runs) hands its
//! allocation back to its [`BufferPool`], so steady-state traffic allocates nothing. The pool keeps
//! at most `buffers_kept_max` buffers, and none larger than `buffer_bytes_kept_max` (one rare 64 MiB
//! frame must not pin 64 MiB forever); the rest are freed.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};

use rkyv::util::AlignedVec;

/// The alignment of every payload buffer: rkyv's archive alignment.
pub const PAYLOAD_ALIGNMENT: usize = 16;

/// The allocation of one payload.
type AlignedBytes = AlignedVec<PAYLOAD_ALIGNMENT>;

/// The empty payload, at an aligned address (an empty `AlignedVec` points at a dangling, unaligned
/// address, and callers may check the alignment of every payload).
#[repr(align(16))]
struct AlignedEmpty([u8; 0]);
static ALIGNED_EMPTY: AlignedEmpty = AlignedEmpty([]);

/// A thread-safe pool of aligned payload buffers. Cloning it shares the pool.
#[derive(Clone)]
pub struct BufferPool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    free: Mutex<Vec<AlignedBytes>>,
    buffers_kept_max: usize,
    buffer_bytes_kept_max: usize,
}

impl BufferPool {
    /// Default of `buffers_kept_max`.
    pub const BUFFERS_KEPT_MAX_DEFAULT: usize = 1024;
    /// Default of `buffer_bytes_kept_max`: buffers up to 1 MiB are kept for reuse.
    pub const BUFFER_BYTES_KEPT_MAX_DEFAULT: usize = 1 << 20;
    /// How many of the newest free buffers `take` looks at for one large enough.
    const BUFFERS_SEARCHED_MAX: usize = 8;

    /// A pool that keeps at most `buffers_kept_max` free buffers, each of at most
    /// `buffer_bytes_kept_max` bytes of capacity.
    pub fn new(buffers_kept_max: usize, buffer_bytes_kept_max: usize) -> Self {
        BufferPool { shared: Arc::new(PoolShared { free: Mutex::new(Vec::new()), buffers_kept_max, buffer_bytes_kept_max }) }
    }

    /// An empty buffer with room for `capacity_bytes` bytes, reusing a free allocation when one is
    /// large enough. The caller has checked `capacity_bytes` against its limit.
    pub fn take(&self, capacity_bytes: usize) -> PooledBuf {
        if capacity_bytes == 0 {
            return PooledBuf { bytes: AlignedBytes::new(), pool: None };
        }
        let reused = {
            let mut free = self.shared.lock_free();
            // The most recently returned buffers are the likeliest to be in cache; only the newest few
            // are searched so the lock is held for a bounded time.
            let searched_from = free.len().saturating_sub(Self::BUFFERS_SEARCHED_MAX);
            let found = free[searched_from..].iter().rposition(|bytes| bytes.capacity() >= capacity_bytes);
            found.map(|position| free.swap_remove(searched_from + position))
        };
        let bytes = match reused {
            Some(mut bytes) => {
                bytes.clear();
                bytes
            }
            None => AlignedBytes::with_capacity(capacity_bytes),
        };
        debug_assert!(bytes.capacity() >= capacity_bytes);
        PooledBuf { bytes, pool: Some(Arc::clone(&self.shared)) }
    }

    /// An empty aligned vector to write a payload into (e.g. a frame rkyv encodes), taken from the
    /// pool when a free one has room for `capacity_bytes`; give it back with [`BufferPool::adopt`]
    /// when handing it to a connection, and it returns once written.
    pub fn take_vec(&self, capacity_bytes: usize) -> AlignedVec {
        let mut buf = self.take(capacity_bytes.max(1));
        std::mem::take(&mut buf.bytes)
    }

    /// `bytes` as a pooled payload: its allocation comes back to this pool when it is dropped.
    pub fn adopt(&self, bytes: AlignedVec) -> PooledBuf {
        PooledBuf { bytes, pool: Some(Arc::clone(&self.shared)) }
    }

    /// A pooled copy of `bytes` (tests, and callers that need an aligned copy).
    pub fn copy_from_slice(&self, bytes: &[u8]) -> PooledBuf {
        let mut buf = self.take(bytes.len());
        buf.extend_from_slice(bytes);
        buf
    }

    /// How many free buffers the pool holds now.
    pub fn free_buffers(&self) -> usize {
        self.shared.lock_free().len()
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        BufferPool::new(Self::BUFFERS_KEPT_MAX_DEFAULT, Self::BUFFER_BYTES_KEPT_MAX_DEFAULT)
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("free_buffers", &self.free_buffers())
            .field("buffers_kept_max", &self.shared.buffers_kept_max)
            .field("buffer_bytes_kept_max", &self.shared.buffer_bytes_kept_max)
            .finish()
    }
}

impl PoolShared {
    fn lock_free(&self) -> MutexGuard<'_, Vec<AlignedBytes>> {
        // A panic while holding this lock leaves the free list intact (push and pop only), so a
        // poisoned lock is still usable.
        self.free.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn give_back(&self, bytes: AlignedBytes) {
        if bytes.capacity() == 0 || bytes.capacity() > self.buffer_bytes_kept_max {
            return;
        }
        let mut free = self.lock_free();
        if free.len() < self.buffers_kept_max {
            free.push(bytes);
        }
    }
}

/// A payload: bytes starting at a 16-byte boundary, whose allocation goes back to its pool on drop.
pub struct PooledBuf {
    bytes: AlignedBytes,
    pool: Option<Arc<PoolShared>>,
}

impl PooledBuf {
    /// The payload bytes (16-byte aligned, also when empty).
    pub fn as_slice(&self) -> &[u8] {
        let bytes = if self.bytes.is_empty() { &ALIGNED_EMPTY.0[..] } else { self.bytes.as_slice() };
        debug_assert_eq!(bytes.as_ptr() as usize % PAYLOAD_ALIGNMENT, 0);
        bytes
    }

    /// Room left before the buffer would grow.
    pub(crate) fn spare_capacity(&self) -> usize {
        self.bytes.capacity() - self.bytes.len()
    }

    /// Appends bytes within the capacity the buffer was taken with (it never reallocates, so the
    /// decoder's limit on allocation holds).
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        debug_assert!(bytes.len() <= self.spare_capacity(), "a pooled buffer grows past the capacity it was taken with");
        self.bytes.extend_from_slice(bytes);
    }
}

impl Deref for PooledBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.bytes));
        }
    }
}

impl fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PooledBuf({} bytes)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_vector_taken_to_write_into_comes_back_when_its_payload_is_dropped() {
        let pool = super::BufferPool::new(4, 1 << 20);
        let mut vec = pool.take_vec(1_000);
        vec.extend_from_slice(&[7u8; 3_000]);
        let allocation = vec.as_ptr();
        let payload = pool.adopt(vec);
        assert_eq!(payload.as_slice().len(), 3_000);
        assert_eq!(pool.free_buffers(), 0);
        drop(payload);
        assert_eq!(pool.free_buffers(), 1);
        let again = pool.take_vec(2_000);
        assert_eq!(again.as_ptr(), allocation, "the allocation is reused");
        assert!(again.is_empty());
    }

    use super::*;

    #[test]
    fn buffers_are_aligned_for_every_length() {
        let pool = BufferPool::default();
        for len in 0..300 {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let buf = pool.copy_from_slice(&payload);
            assert_eq!(buf.as_ptr() as usize % PAYLOAD_ALIGNMENT, 0, "length {len}");
            assert_eq!(&buf[..], &payload[..]);
        }
    }

    #[test]
    fn dropped_buffer_is_reused_by_the_next_take() {
        let pool = BufferPool::default();
        let first = pool.copy_from_slice(&[7; 100]);
        let address = first.as_ptr();
        drop(first);
        assert_eq!(pool.free_buffers(), 1);
        let mut second = pool.take(64);
        assert!(second.is_empty(), "a reused buffer starts empty");
        second.extend_from_slice(&[1]);
        assert_eq!(second.as_ptr(), address, "the returned allocation is handed out again");
        assert_eq!(pool.free_buffers(), 0);
    }

    #[test]
    fn pool_keeps_at_most_its_maximum_and_no_large_buffers() {
        let pool = BufferPool::new(2, 1024);
        let buffers: Vec<_> = (0..5).map(|_| pool.copy_from_slice(&[1; 10])).collect();
        drop(buffers);
        assert_eq!(pool.free_buffers(), 2);
        drop(pool.copy_from_slice(&[0; 4096]));
        assert_eq!(pool.free_buffers(), 2, "a buffer over buffer_bytes_kept_max is freed, not kept");
    }

    #[test]
    fn too_small_free_buffer_is_not_reused_for_a_larger_payload() {
        let pool = BufferPool::default();
        drop(pool.copy_from_slice(&[1; 16]));
        let large = pool.take(4096);
        assert!(large.spare_capacity() >= 4096);
        assert_eq!(pool.free_buffers(), 1, "the small buffer stays free");
    }

    #[test]
    fn buffers_dropped_on_other_threads_return_to_the_pool() {
        let pool = BufferPool::default();
        let buffers: Vec<_> = (0..8).map(|i| pool.copy_from_slice(&[i; 32])).collect();
        std::thread::scope(|scope| {
            for buf in buffers {
                scope.spawn(move || drop(buf));
            }
        });
        assert_eq!(pool.free_buffers(), 8);
    }
}
