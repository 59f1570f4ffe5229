//! A temporary directory for tests (this crate's and those of crates above it), removed when dropped: a unique name under
//! `std::env::temp_dir()` (process id, a counter, the clock), so parallel tests never share one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A directory that exists for the life of the value.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates a fresh empty directory whose name starts with `label`.
    pub fn new(label: &str) -> TestDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("tethys-storage-{label}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create test directory");
        TestDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
