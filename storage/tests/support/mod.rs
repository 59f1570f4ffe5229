//! Shared by the integration tests: temporary directories, segment files, and the payloads the
//! tests write, each a function of its offset so a reader can check content independently.

#![allow(dead_code)] // each test binary uses a part

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A directory under `std::env::temp_dir()` with a unique name, removed when dropped.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(label: &str) -> TestDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("tethys-storage-{label}-{}-{n}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).expect("create test directory");
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The segment files of a log directory, oldest first (names sort by base offset).
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list log directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// The base offset a segment file's name carries (the format's naming rule, parsed independently).
pub fn base_offset_of(path: &Path) -> u64 {
    path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).expect("segment name is its base offset")
}

/// Copies every file of `from` into `to` (emptied first).
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    fs::create_dir_all(to).expect("create copy");
    for file in segment_files(from) {
        fs::copy(&file, to.join(file.file_name().expect("name"))).expect("copy segment");
    }
}

/// The payload written at `offset`: its length and bytes follow from the offset alone.
pub fn payload_for(offset: u64) -> Vec<u8> {
    let len = (offset.wrapping_mul(2_654_435_761) % 97) as usize;
    (0..len).map(|i| (offset as u8).wrapping_mul(31).wrapping_add(i as u8)).collect()
}
