//! Channel benchmarks: the credit protocol's bookkeeping per frame, and records moving between two
//! task actors on two slots through a rebalance channel (actor messages, credits, frame moves).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tethys_engine::channel::credit::{ChannelEvent, CreditSender, GateCredits};
use tethys_engine::frame::AnyFrame;
use tethys_engine::sink::discard::DiscardSink;
use tethys_engine::source::{ReaderStatus, Source, SourceReader};
use tethys_engine::UserError;
use tethys_engine::{EngineConfig, StreamEnvironment, SubtaskContext};

/// One frame through sender and gate: enqueue, send, arrive, consume, credit back.
fn credit_protocol(c: &mut Criterion) {
    let mut group = c.benchmark_group("credit_protocol");
    group.throughput(Throughput::Elements(1));
    group.bench_function("frame_round_trip", |b| {
        let mut sender = CreditSender::new(2);
        let mut gate = GateCredits::new(1, 2, 8);
        b.iter(|| {
            sender.enqueue(ChannelEvent::Frame(AnyFrame::new(Vec::<u64>::new())));
            let (event, backlog) = sender.next_sendable().expect("credit available");
            gate.on_frame(0, backlog);
            black_box(event);
            gate.on_consumed(0);
            for (_, credits) in gate.take_grants() {
                sender.add_credits(credits);
            }
        });
    });
    group.finish();
}

/// Counts up from the subtask index: the cheapest possible records, so the channel dominates.
struct Sequence(u64);

struct SequenceReader {
    next: u64,
    end: u64,
}

impl Source<u64> for Sequence {
    fn create_reader(&self, _context: &SubtaskContext) -> Result<Box<dyn SourceReader<u64>>, UserError> {
        Ok(Box::new(SequenceReader { next: 0, end: self.0 }))
    }
}

impl SourceReader<u64> for SequenceReader {
    fn poll_frame(&mut self, frame: &mut Vec<u64>, records_max: usize) -> Result<ReaderStatus, UserError> {
        let end = self.end.min(self.next + records_max as u64);
        frame.extend(self.next..end);
        self.next = end;
        Ok(if self.next == self.end { ReaderStatus::Finished } else { ReaderStatus::Ready })
    }
}

/// A source task and a sink task on two slots, joined by one rebalance channel.
fn actor_channel(c: &mut Criterion) {
    let records = 20_000_000u64;
    let mut group = c.benchmark_group("actor_channel");
    group.sample_size(10);
    group.throughput(Throughput::Elements(records));
    for frame_records_max in [256usize, 1024, 4096] {
        group.bench_with_input(BenchmarkId::new("records_across_slots", frame_records_max), &frame_records_max, |b, &frame_records_max| {
            b.iter(|| {
                let config = EngineConfig { slots: 2, parallelism: 1, frame_records_max, ..EngineConfig::default() };
                let env = StreamEnvironment::new(config);
                env.source("sequence", Sequence(records)).rebalance().sink("discard", DiscardSink::new());
                black_box(env.execute("channel-bench").expect("bench job runs"))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, credit_protocol, actor_channel);
criterion_main!(benches);
