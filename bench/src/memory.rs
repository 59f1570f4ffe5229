//! Peak resident memory of this process, read from the kernel (`VmHWM` in /proc/self/status).
//! Linux only; elsewhere the figure is reported as unknown.

/// Peak resident set size of this process in bytes, if the platform reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn peak_rss_is_reported_on_linux() {
        assert!(super::peak_rss_bytes().unwrap() > 0);
    }
}
