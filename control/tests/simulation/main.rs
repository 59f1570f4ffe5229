//! Seeded simulations of the control plane, on one thread with tokio's clock paused and
//! openraft's randomness seeded, so a seed replays its run; a failure names its seed.
//!
//! - `masters`: three masters on an in-memory network that loses and delays messages, crashed,
//!   restarted and cut off, under clients proposing the commands of a cluster's life;
//! - `cluster`: the same masters with their deployers, running jobs on modelled workers that
//!   crash and are cut off, with lossy, slow calls between masters and workers: scheduling,
//!   failover and reconciliation (a new leader adopting running attempts).
//!
//! `cargo test -p tethys-control --test simulation` runs `TETHYS_SIM_SEEDS` seeds of each
//! (default 200 and 100); `TETHYS_SIM_SEEDS=3000` is the long run; `TETHYS_SIM_SEED=<n>` replays
//! one seed; `TETHYS_SIM_VERBOSE=1` prints what each seed did.

mod cluster;
mod group;
mod masters;

/// Runs `run` for the seeds the environment asks for (`default` of them, from 0), naming the
/// first that fails.
pub fn for_each_seed(default: u64, run: fn(u64)) {
    if let Some(seed) = std::env::var("TETHYS_SIM_SEED").ok().and_then(|seed| seed.parse().ok()) {
        run(seed);
        return;
    }
    let seeds: u64 = std::env::var("TETHYS_SIM_SEEDS").ok().and_then(|seeds| seeds.parse().ok()).unwrap_or(default);
    for seed in 0..seeds {
        if std::panic::catch_unwind(|| run(seed)).is_err() {
            panic!("the simulation failed for seed {seed}; replay it with TETHYS_SIM_SEED={seed}");
        }
    }
}

/// Runs `simulate(seed)` on one thread, the clock paused.
pub fn on_paused_clock<F: std::future::Future<Output = ()>>(simulate: F) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    runtime.block_on(simulate);
}

/// Whether each seed's summary is printed.
pub fn verbose() -> bool {
    std::env::var_os("TETHYS_SIM_VERBOSE").is_some()
}
