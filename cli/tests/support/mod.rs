//! What the end-to-end tests of the binary share.
// Each test file uses some of these.
#![allow(dead_code)]

pub mod cluster;

use std::path::Path;

/// The digests the `digest` job committed into `dir`'s part files (hidden in-progress files left
/// out), sorted.
pub fn digests(dir: &Path) -> Vec<u64> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("part-") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            all.extend(text.lines().map(|line| line.parse::<u64>().unwrap()));
        }
    }
    all.sort_unstable();
    all
}
