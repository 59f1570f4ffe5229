//! Codec candidates for records, keys and state values (issue 11: "measure before deciding"), on
//! a frame of 1024 bids of the bids workload (five `i64`, strings of 8 and 24 bytes kept inline):
//! - rkyv 0.8: serialize into a reused aligned buffer; validated access reading every field (what
//!   a receiver does with a frame from the network, in place); full deserialize to owned values;
//! - postcard (serde, varint binary): serialize into a reused buffer; deserialize to owned values.
//! Run: `cargo bench -p tethys-bench --bench codec`. Figures and the decision: bench/RESULTS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rkyv::rancor::Error as RkyvError;
use rkyv::util::AlignedVec;
use serde::{Deserialize, Serialize};

/// A bid with its strings inline, as the engine's `Bid` keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Bid {
    auction: i64,
    bidder: i64,
    price: i64,
    channel: [u8; 8],
    channel_len: u8,
    url: [u8; 24],
    url_len: u8,
    id: i64,
    ts: i64,
}

const FRAME_RECORDS: usize = 1024;

fn frame() -> Vec<Bid> {
    (0..FRAME_RECORDS as i64)
        .map(|i| Bid {
            auction: i % 10_000,
            bidder: (i * 7919) % 100_000,
            price: 1 + (i * 104_729) % 100_000,
            channel: *b"channel0",
            channel_len: 8,
            url: *b"https://example.com/a/bc",
            url_len: 24,
            id: i + 1,
            ts: i + 1,
        })
        .collect()
}

fn rkyv_codec(c: &mut Criterion) {
    let frame = frame();
    let mut group = c.benchmark_group("codec_rkyv");
    group.throughput(Throughput::Elements(FRAME_RECORDS as u64));
    let mut buffer = AlignedVec::<16>::with_capacity(128 << 10);
    group.bench_function("serialize_frame", |b| {
        b.iter(|| {
            buffer.clear();
            buffer = rkyv::api::high::to_bytes_in::<_, RkyvError>(&frame, std::mem::take(&mut buffer)).unwrap();
            black_box(buffer.len());
        })
    });
    let bytes = rkyv::to_bytes::<RkyvError>(&frame).unwrap();
    group.bench_function("access_validated_read_fields", |b| {
        b.iter(|| {
            let archived = rkyv::access::<rkyv::Archived<Vec<Bid>>, RkyvError>(&bytes).unwrap();
            let sum: i64 = archived.iter().map(|bid| bid.auction.to_native() + bid.price.to_native() + bid.url[3] as i64).sum();
            black_box(sum)
        })
    });
    group.bench_function("deserialize_frame", |b| b.iter(|| black_box(rkyv::from_bytes::<Vec<Bid>, RkyvError>(&bytes).unwrap())));
    group.finish();
    println!("rkyv: {} bytes per frame ({} per record)", bytes.len(), bytes.len() / FRAME_RECORDS);
}

fn postcard_codec(c: &mut Criterion) {
    let frame = frame();
    let mut group = c.benchmark_group("codec_postcard");
    group.throughput(Throughput::Elements(FRAME_RECORDS as u64));
    let mut buffer = Vec::with_capacity(128 << 10);
    group.bench_function("serialize_frame", |b| {
        b.iter(|| {
            buffer.clear();
            buffer = postcard::to_extend(&frame, std::mem::take(&mut buffer)).unwrap();
            black_box(buffer.len());
        })
    });
    let bytes = postcard::to_allocvec(&frame).unwrap();
    group.bench_function("deserialize_frame", |b| b.iter(|| black_box(postcard::from_bytes::<Vec<Bid>>(&bytes).unwrap())));
    group.finish();
    println!("postcard: {} bytes per frame ({} per record)", bytes.len(), bytes.len() / FRAME_RECORDS);
}

criterion_group!(benches, rkyv_codec, postcard_codec);
criterion_main!(benches);
