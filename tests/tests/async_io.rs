//! Async I/O end to end: ordered mode keeps input order, unordered mode delivers every record once
//! and never moves a result across a watermark, capacity bounds the requests in flight and stops
//! the task taking input, timeouts go to the handler, failed attempts are retried, and end of
//! input waits for every request.
//!
//! The external service is simulated inside the user's futures with `tokio::time::sleep` of a
//! pseudo-random few milliseconds per record; every assertion is on what arrives, never on time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tethys_engine::sink::collect::CollectSink;
use tethys_engine::source::bids::{Bid, BidsSource};
use tethys_engine::UserError;
use tethys_engine::{
    AsyncFunction, AsyncIoError, AsyncOptions, AsyncOptionsError, BoxFuture, EngineConfig, FrameOperator, JobError, JobResult,
    OperatorFailure, Output, RequestTimedOut, RetryStrategy, StreamEnvironment, TumblingEventTimeWindows, WatermarkStrategy, WindowResult,
};
use tethys_tests::IdleUntilReleased;

/// Long enough that no simulated request comes near it (they take a few ms).
const GENEROUS_TIMEOUT: Duration = Duration::from_secs(60);

/// A pseudo-random delay of up to 3 ms per record (splitmix64): the simulated service's latency.
fn latency(record: u64) -> Duration {
    let mut z = record.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Duration::from_micros((z ^ (z >> 31)) % 3_000)
}

/// Answers `x` with `(x, 3x)` after the record's latency.
async fn triple(x: u64) -> Result<(u64, u64), UserError> {
    tokio::time::sleep(latency(x)).await;
    Ok((x, 3 * x))
}

/// Records 0..n with event time = value, a watermark after nearly every frame (the shortest
/// interval; zero is refused).
fn config(parallelism: usize, frame_records_max: usize) -> EngineConfig {
    EngineConfig { slots: 2, parallelism, frame_records_max, watermark_interval: Duration::from_micros(1), ..EngineConfig::default() }
}

/// Fails the job if a record arrives at or behind a watermark already seen (a result moved across
/// a watermark), and counts the watermarks it saw.
struct WatermarkCheck {
    watermark: i64,
    seen: Arc<AtomicU64>,
}

impl FrameOperator<(u64, u64), (u64, u64)> for WatermarkCheck {
    fn process(&mut self, frame: Vec<(u64, u64)>, out: &mut Output<'_, (u64, u64)>) -> Result<(), UserError> {
        if let Some(late) = frame.iter().find(|(x, _)| *x as i64 <= self.watermark) {
            return Err(format!("record {} arrived after watermark {}", late.0, self.watermark).into());
        }
        out.emit_frame(frame);
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, _out: &mut Output<'_, (u64, u64)>) -> Result<(), UserError> {
        self.watermark = watermark;
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Runs `0..records` through an async `triple` with `options` and the watermark check after it;
/// returns what the sink got, the job's result and the watermarks the checks saw. With `shuffle`
/// the async operator reads from an input gate instead of being chained to the source.
fn run_with_watermarks(parallelism: usize, shuffle: bool, records: u64, options: AsyncOptions) -> (Vec<(u64, u64)>, JobResult, u64) {
    let env = StreamEnvironment::new(config(parallelism, 16));
    let out = CollectSink::new();
    let seen = Arc::new(AtomicU64::new(0));
    let check_seen = Arc::clone(&seen);
    let stamped = env
        .from_collection((0..records).collect::<Vec<u64>>())
        .assign_timestamps_and_watermarks(WatermarkStrategy::for_monotonous_timestamps(|x: &u64| *x as i64));
    let stamped = if shuffle { stamped.rebalance() } else { stamped };
    stamped
        .async_map(triple, options)
        .name("lookup")
        .process("watermark-check", move |_| WatermarkCheck { watermark: i64::MIN, seen: Arc::clone(&check_seen) })
        .rebalance()
        .sink("out", out.clone())
        .parallelism(1);
    let result = env.execute("async").unwrap();
    (out.records(), result, seen.load(Ordering::Relaxed))
}

#[test]
fn ordered_mode_preserves_input_order_exactly() {
    for shuffle in [false, true] {
        let records = 3_000;
        let (out, result, watermarks) = run_with_watermarks(1, shuffle, records, AsyncOptions::ordered(GENEROUS_TIMEOUT).capacity(50));
        let expected: Vec<(u64, u64)> = (0..records).map(|x| (x, 3 * x)).collect();
        assert_eq!(out, expected, "shuffle={shuffle}");
        assert!(watermarks > 1, "shuffle={shuffle}: the check saw {watermarks} watermarks");
        assert_eq!(result.operator("lookup").map(|o| o.records_out), Some(records));
    }
}

#[test]
fn unordered_mode_delivers_every_record_once_and_never_across_a_watermark() {
    for (parallelism, shuffle) in [(1, false), (2, false), (2, true)] {
        let records = 3_000;
        let (mut out, _, watermarks) =
            run_with_watermarks(parallelism, shuffle, records, AsyncOptions::unordered(GENEROUS_TIMEOUT).capacity(40));
        assert!(watermarks > parallelism as u64, "p={parallelism} shuffle={shuffle}: the checks saw {watermarks} watermarks");
        out.sort_unstable();
        let expected: Vec<(u64, u64)> = (0..records).map(|x| (x, 3 * x)).collect();
        assert_eq!(out, expected, "p={parallelism} shuffle={shuffle}: every record exactly once");
    }
}

/// A service that completes requests in batches of `batch`: each waits until the whole batch it
/// belongs to has started. It only gets through if `batch` requests can be in flight at once, and
/// it records the most that ever were.
#[derive(Clone)]
struct BatchedService {
    batch: u64,
    records: u64,
    started: tokio::sync::watch::Sender<u64>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl AsyncFunction<u64, u64> for BatchedService {
    fn invoke(&self, x: u64) -> BoxFuture<Result<u64, UserError>> {
        let service = self.clone();
        Box::pin(async move {
            let now = service.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            service.peak.fetch_max(now, Ordering::SeqCst);
            service.started.send_modify(|started| *started += 1);
            let batch_end = ((x / service.batch + 1) * service.batch).min(service.records);
            let mut started = service.started.subscribe();
            let waited = started.wait_for(|started| *started >= batch_end).await.map(|_| ());
            tokio::time::sleep(latency(x)).await;
            service.in_flight.fetch_sub(1, Ordering::SeqCst);
            waited.map(|()| x).map_err(|e| e.into())
        })
    }
}

#[test]
fn capacity_requests_run_at_once_and_never_more() {
    let (capacity, records, frame) = (8, 2_000, 64);
    let service = BatchedService {
        batch: capacity as u64,
        records,
        started: tokio::sync::watch::Sender::new(0),
        in_flight: Arc::new(AtomicUsize::new(0)),
        peak: Arc::new(AtomicUsize::new(0)),
    };
    let env = StreamEnvironment::new(config(1, frame));
    let out = CollectSink::new();
    env.from_collection((0..records).collect::<Vec<u64>>())
        .async_map(service.clone(), AsyncOptions::ordered(GENEROUS_TIMEOUT).capacity(capacity))
        .name("batched")
        .sink("out", out.clone());
    let result = env.execute("capacity").unwrap();
    assert_eq!(out.records(), (0..records).collect::<Vec<_>>());
    // Every batch needed `capacity` requests in flight at once, and no more were ever started.
    assert_eq!(service.peak.load(Ordering::SeqCst), capacity);
    // The task stopped taking input while full: never more held than capacity plus one frame.
    let held_peak = result.operator("batched").map(|o| o.extra["async_held_peak"]).unwrap_or(0);
    assert!(held_peak >= capacity as u64 && held_peak < (capacity + frame) as u64, "held {held_peak}");
}

#[test]
fn unordered_requests_in_flight_never_exceed_capacity() {
    let capacity = 16;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (counter, peak_seen) = (Arc::clone(&in_flight), Arc::clone(&peak));
    let service = move |x: u64| {
        let (in_flight, peak) = (Arc::clone(&counter), Arc::clone(&peak_seen));
        async move {
            peak.fetch_max(in_flight.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            tokio::time::sleep(latency(x)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok::<u64, UserError>(x)
        }
    };
    let env = StreamEnvironment::new(config(1, 100));
    let out = CollectSink::new();
    let records = 5_000u64;
    env.from_collection((0..records).collect::<Vec<u64>>())
        .async_map(service, AsyncOptions::unordered(GENEROUS_TIMEOUT).capacity(capacity))
        .sink("out", out.clone());
    env.execute("unordered-capacity").unwrap();
    let mut got = out.records();
    got.sort_unstable();
    assert_eq!(got, (0..records).collect::<Vec<_>>());
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=capacity).contains(&peak), "{peak} requests in flight, capacity {capacity}");
    assert_eq!(in_flight.load(Ordering::SeqCst), 0, "end of input waited for every request");
}

/// Never answers multiples of 10 and answers the rest at once (a future ready on its first poll
/// never times out, however loaded the machine); the timeout handler answers the silent ones with
/// a fallback, an error, or (by default) the typed timeout error.
#[derive(Clone, Copy)]
enum OnTimeout {
    Fallback,
    Error,
    Default,
}

struct SometimesSilent(OnTimeout);

impl AsyncFunction<u64, u64> for SometimesSilent {
    fn invoke(&self, x: u64) -> BoxFuture<Result<u64, UserError>> {
        Box::pin(async move {
            if x.is_multiple_of(10) {
                std::future::pending::<()>().await;
            }
            Ok(x)
        })
    }

    fn timeout(&self, x: u64) -> Result<Option<u64>, UserError> {
        match self.0 {
            OnTimeout::Fallback => Ok(Some(1_000_000 + x)),
            OnTimeout::Error => Err(format!("no fallback for {x}").into()),
            OnTimeout::Default => Err(Box::new(RequestTimedOut)),
        }
    }
}

fn run_sometimes_silent(on_timeout: OnTimeout) -> (Result<JobResult, JobError>, Vec<u64>) {
    let env = StreamEnvironment::new(config(1, 32));
    let out = CollectSink::new();
    env.from_collection((0..200u64).collect::<Vec<u64>>())
        .async_map(SometimesSilent(on_timeout), AsyncOptions::ordered(Duration::from_millis(50)).capacity(64))
        .name("silent-lookup")
        .sink("out", out.clone());
    (env.execute("timeouts"), out.records())
}

fn async_failure(error: JobError) -> (String, OperatorFailure) {
    match error {
        JobError::OperatorFailed { operator, failure, .. } => (operator, failure),
        other => panic!("expected an operator failure, got {other}"),
    }
}

#[test]
fn timed_out_requests_go_to_the_handler_which_emits_a_fallback() {
    let (result, out) = run_sometimes_silent(OnTimeout::Fallback);
    let result = result.unwrap();
    let expected: Vec<u64> = (0..200).map(|x| if x % 10 == 0 { 1_000_000 + x } else { x }).collect();
    assert_eq!(out, expected, "fallbacks in their records' places");
    assert_eq!(result.operator("silent-lookup").map(|o| o.extra["async_timeouts"]), Some(20));
}

#[test]
fn a_failing_timeout_handler_fails_the_job_naming_the_operator() {
    let (result, _) = run_sometimes_silent(OnTimeout::Error);
    let (operator, failure) = async_failure(result.unwrap_err());
    assert_eq!(operator, "silent-lookup");
    let OperatorFailure::Failed(error) = &failure else { panic!("expected an error, got {failure}") };
    match error.downcast_ref::<AsyncIoError>() {
        Some(AsyncIoError::TimeoutHandlerFailed { operator, source }) => {
            assert_eq!(operator, "silent-lookup");
            assert!(source.to_string().starts_with("no fallback for"), "{source}");
        }
        other => panic!("expected a failed timeout handler, got {other:?}"),
    }

    let (result, _) = run_sometimes_silent(OnTimeout::Default);
    let (_, failure) = async_failure(result.unwrap_err());
    let OperatorFailure::Failed(error) = &failure else { panic!("expected an error, got {failure}") };
    assert!(
        matches!(error.downcast_ref::<AsyncIoError>(), Some(AsyncIoError::TimedOut { operator, timeout, .. }) if operator == "silent-lookup" && *timeout == Duration::from_millis(50)),
        "{error}"
    );
    assert!(error.to_string().contains("'silent-lookup': request timed out after 50ms"), "{error}");
}

/// Fails the first `failures` attempts of every record with `error`, then answers.
struct Flaky {
    failures: u32,
    error: &'static str,
    attempts: Attempts,
}

impl AsyncFunction<u64, u64> for Flaky {
    fn invoke(&self, x: u64) -> BoxFuture<Result<u64, UserError>> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
            let attempt = attempts.entry(x).or_insert(0);
            *attempt += 1;
            *attempt
        };
        let (failures, error) = (self.failures, self.error);
        Box::pin(async move {
            tokio::time::sleep(latency(x)).await;
            if attempt <= failures {
                return Err(format!("{error} (record {x}, attempt {attempt})").into());
            }
            Ok(x)
        })
    }
}

/// Attempts made per record.
type Attempts = Arc<Mutex<HashMap<u64, u32>>>;

fn run_flaky(error: &'static str, retry: RetryStrategy) -> (Result<JobResult, JobError>, Vec<u64>, Attempts) {
    let attempts = Arc::new(Mutex::new(HashMap::new()));
    let env = StreamEnvironment::new(config(1, 32));
    let out = CollectSink::new();
    env.from_collection((0..300u64).collect::<Vec<u64>>())
        .async_map(
            Flaky { failures: 2, error, attempts: Arc::clone(&attempts) },
            AsyncOptions::unordered(GENEROUS_TIMEOUT).capacity(32).retry(retry),
        )
        .name("flaky-lookup")
        .sink("out", out.clone());
    (env.execute("retries"), out.records(), attempts)
}

#[test]
fn a_request_failing_twice_succeeds_on_its_third_attempt() {
    for retry in [
        RetryStrategy::fixed_delay(3, Duration::from_millis(1)),
        RetryStrategy::exponential_backoff(3, Duration::from_millis(1), 2.0, Duration::from_millis(4)),
    ] {
        let (result, mut out, attempts) = run_flaky("transient", retry.clone());
        let result = result.unwrap();
        out.sort_unstable();
        assert_eq!(out, (0..300).collect::<Vec<_>>(), "{retry:?}");
        assert!(attempts.lock().unwrap_or_else(PoisonError::into_inner).values().all(|a| *a == 3), "{retry:?}");
        assert_eq!(result.operator("flaky-lookup").map(|o| o.extra["async_retries"]), Some(600), "{retry:?}");
    }
}

#[test]
fn a_request_failing_its_last_attempt_fails_the_job_naming_the_operator() {
    let (result, _, _) = run_flaky("transient", RetryStrategy::fixed_delay(2, Duration::from_millis(1)));
    let (operator, failure) = async_failure(result.unwrap_err());
    assert_eq!(operator, "flaky-lookup");
    let OperatorFailure::Failed(error) = &failure else { panic!("expected an error, got {failure}") };
    match error.downcast_ref::<AsyncIoError>() {
        Some(AsyncIoError::RequestFailed { operator, attempts, source }) => {
            assert_eq!((operator.as_str(), *attempts), ("flaky-lookup", 2));
            assert!(source.to_string().contains("attempt 2"), "{source}");
        }
        other => panic!("expected a failed request, got {other:?}"),
    }
}

#[test]
fn errors_the_predicate_rejects_are_not_retried() {
    let retry = RetryStrategy::fixed_delay(3, Duration::from_millis(1)).retry_if(|e| e.to_string().starts_with("transient"));
    let (result, _, _) = run_flaky("permanent", retry);
    let (_, failure) = async_failure(result.unwrap_err());
    let OperatorFailure::Failed(error) = &failure else { panic!("expected an error, got {failure}") };
    assert!(matches!(error.downcast_ref::<AsyncIoError>(), Some(AsyncIoError::RequestFailed { attempts: 1, .. })), "{error}");
}

#[test]
fn a_panicking_request_fails_the_job_as_a_panic_of_the_operator() {
    let env = StreamEnvironment::new(config(1, 32));
    let service = |x: u64| async move {
        tokio::time::sleep(latency(x)).await;
        assert!(x != 77, "the service choked on {x}");
        Ok::<u64, UserError>(x)
    };
    env.from_collection((0..200u64).collect::<Vec<u64>>())
        .async_map(service, AsyncOptions::unordered(GENEROUS_TIMEOUT))
        .name("choking-lookup")
        .sink("out", CollectSink::new());
    let (operator, failure) = async_failure(env.execute("panics").unwrap_err());
    assert_eq!(operator, "choking-lookup");
    assert!(matches!(&failure, OperatorFailure::Panicked(m) if m.contains("choked on 77")), "{failure}");
}

#[test]
fn invalid_options_fail_the_job_at_start_naming_the_operator() {
    let env = StreamEnvironment::new(config(1, 32));
    env.from_collection(vec![1u64, 2, 3])
        .async_map(|x: u64| async move { Ok::<u64, UserError>(x) }, AsyncOptions::ordered(GENEROUS_TIMEOUT).capacity(0))
        .name("zero-capacity")
        .sink("out", CollectSink::new());
    let (operator, failure) = async_failure(env.execute("invalid").unwrap_err());
    assert_eq!(operator, "zero-capacity");
    let OperatorFailure::Failed(error) = &failure else { panic!("expected an error, got {failure}") };
    assert!(
        matches!(
            error.downcast_ref::<AsyncIoError>(),
            Some(AsyncIoError::InvalidOptions { source: AsyncOptionsError::Capacity { capacity: 0, .. }, .. })
        ),
        "{error}"
    );
}

#[test]
fn idleness_passes_through_so_an_idle_input_holds_no_window_back() {
    // The quiet source ends only once a window has fired. If the async operator after it kept its
    // idleness from the union, its missing watermark would hold every window back forever.
    let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 1, ..EngineConfig::default() });
    let release = Arc::new(AtomicBool::new(false));
    let out = CollectSink::new();
    let busy = env.source("bids", BidsSource::new(20_000, 3));
    let quiet = env
        .source("quiet", IdleUntilReleased::<Bid>::new(Vec::new(), &release))
        .idle_timeout(Duration::from_millis(20))
        .async_map(|b: Bid| async move { Ok::<Bid, UserError>(b) }, AsyncOptions::unordered(GENEROUS_TIMEOUT));
    let released = Arc::clone(&release);
    busy.union([quiet])
        .key_by(|b: &Bid| b.auction % 10)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)), |b: &Bid| b.ts)
        .count()
        .map(move |r: WindowResult<i64, u64>| {
            released.store(true, Ordering::Relaxed);
            r
        })
        .sink("out", out.clone());
    env.execute("idle").unwrap();
    assert_eq!(out.records().iter().map(|r| r.value).sum::<u64>(), 20_000);
}

/// A line server on 127.0.0.1: answers each line `n` with `n * 10`, one connection per thread.
fn start_times_ten_server() -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let address = listener.local_addr().expect("a bound address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().expect("a second handle on the connection");
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let n: u64 = line.trim().parse().expect("the client sends numbers");
                    if writeln!(writer, "{}", n * 10).is_err() {
                        break;
                    }
                }
            });
        }
    });
    address
}

/// Asks the server for `x * 10` over a fresh TCP connection.
async fn times_ten_over_tcp(address: std::net::SocketAddr, x: u64) -> Result<(u64, u64), UserError> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream.write_all(format!("{x}\n").as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(&mut stream).read_line(&mut answer).await?;
    Ok((x, answer.trim().parse()?))
}

#[test]
fn async_map_talks_to_a_real_tcp_server() {
    // The slot runtimes run tokio's I/O driver: without it, connecting fails the job.
    let address = start_times_ten_server();
    let env = StreamEnvironment::new(config(2, 16));
    let out = CollectSink::new();
    env.from_collection((0..200u64).collect::<Vec<_>>())
        .async_map(move |x: u64| times_ten_over_tcp(address, x), AsyncOptions::unordered(GENEROUS_TIMEOUT).capacity(8))
        .sink("out", out.clone());
    env.execute("tcp").unwrap();
    let mut answers = out.records();
    answers.sort_unstable();
    assert_eq!(answers, (0..200u64).map(|x| (x, x * 10)).collect::<Vec<_>>());
}
