//! Partitioner benchmarks: routing one frame of bids by key group (hash) over several channel
//! counts, and whole-frame rebalance, per record.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use tethys_engine::channel::partitioner::{ErasedPartitioner, FrameDispatch, HashPartitioner, RoundRobinPartitioner};
use tethys_engine::frame::AnyFrame;
use tethys_engine::source::bids::{Bid, BidsSource};

const FRAME_RECORDS: usize = 1024;

/// Drops routed frames after touching them.
struct Drain(u64);

impl FrameDispatch for Drain {
    fn dispatch(&mut self, channel: usize, frame: AnyFrame) {
        self.0 += (channel + frame.len()) as u64;
        black_box(frame);
    }
}

fn frame() -> Vec<Bid> {
    let source = BidsSource::new(FRAME_RECORDS as u64, 42);
    (1..=FRAME_RECORDS as u64).map(|id| source.bid(id)).collect()
}

fn hash(c: &mut Criterion) {
    let bids = frame();
    let mut group = c.benchmark_group("hash_partitioner");
    group.throughput(Throughput::Elements(FRAME_RECORDS as u64));
    for channels in [2usize, 4, 16] {
        group.bench_with_input(BenchmarkId::new("route_frame_by_auction", channels), &channels, |b, &channels| {
            let mut partitioner = HashPartitioner::new(channels, 128, FRAME_RECORDS, |bid: &Bid| bid.auction);
            let mut out = Drain(0);
            b.iter_batched(
                || AnyFrame::new(bids.clone()),
                |frame| {
                    partitioner.route(frame, &mut out);
                    partitioner.flush(&mut out);
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn rebalance(c: &mut Criterion) {
    let bids = frame();
    let mut group = c.benchmark_group("rebalance_partitioner");
    group.throughput(Throughput::Elements(FRAME_RECORDS as u64));
    group.bench_function("route_full_frames", |b| {
        let mut partitioner = RoundRobinPartitioner::<Bid>::new(4, 0, FRAME_RECORDS);
        let mut out = Drain(0);
        b.iter_batched(|| AnyFrame::new(bids.clone()), |frame| partitioner.route(frame, &mut out), BatchSize::SmallInput);
    });
    group.finish();
}

criterion_group!(benches, hash, rebalance);
criterion_main!(benches);
