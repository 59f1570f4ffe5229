//! The `tethys` binary: the platform with the jobs it has built in (the benchmark queries, their
//! digests and SQL scripts). A program of one's own is the same binary with more jobs
//! ([`tethys::Program`]).

fn main() {
    tethys::Program::new("tethys").main()
}
