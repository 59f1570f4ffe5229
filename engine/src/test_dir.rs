//! A temporary directory for unit tests, removed when dropped: a unique name under
//! `std::env::temp_dir()` (process id and a counter), so tests running in parallel never share one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh, empty directory that exists for the life of the value.
pub(crate) struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates the directory; its name contains `label`.
    pub(crate) fn new(label: &str) -> TestDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("tethys-engine-{label}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test directory");
        TestDir { path }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
