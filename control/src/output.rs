//! A running job's live results: what its sinks wrote lately, sampled. Each sink subtask samples
//! a bounded number of rows a second (the engine's `OutputSampler`); workers send them to the
//! job's coordinator with the live figures; the leader takes the new ones in as it samples the
//! job (`JobLive::sample`) and keeps the newest [`ROWS_KEPT`] of each sink here, numbered in the
//! order they arrived, so a reader asks for those after the last it saw
//! (`GET /api/jobs/{id}/output?after=`, or streamed: `GET /api/jobs/{id}/output/stream`).
//!
//! Numbers are a leader's own: a new leader takes in again what the workers' boards hold and
//! numbers it from 1, under another `epoch`; a reader that sees the epoch change starts over.
//! A row is known by its run (the job's attempt as the masters count them: a rescale or a
//! redeploy is a new run), the engine's attempt within the run, its subtask and its position.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tethys_engine::OutputSample;

/// Rows kept per sink.
pub const ROWS_KEPT: usize = 2_000;
/// Rows one answer holds at most (the newest of those asked for).
pub const ROWS_PER_ANSWER_MAX: usize = 2_000;

/// One sampled row of a sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputRow {
    /// Its number in the order the leader took rows in (of every sink of the job): ask for those
    /// after it.
    pub n: u64,
    /// The sink subtask that wrote it.
    pub subtask: u32,
    /// The job's attempt (run) that wrote it, as the masters count them.
    pub attempt: u32,
    /// Its position in the subtask's output in its attempt (1 for the first row written).
    pub seq: u64,
    /// When it was written (milliseconds since the Unix epoch).
    pub written_at_ms: u64,
    /// The change it is: `+I`, `-U`, `+U` or `-D`.
    pub op: String,
    /// Its values, one per column: numbers, booleans and NULL as JSON's, times and text as
    /// strings, arrays and rows as arrays, maps as objects.
    #[schema(value_type = Vec<Object>)]
    pub values: Vec<serde_json::Value>,
}

/// A sink's sampled rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SinkOutputView {
    /// The sink (its table's name).
    pub sink: String,
    /// Its columns.
    pub columns: Vec<String>,
    /// Their SQL types (e.g. `BIGINT`, `TIMESTAMP(3)`).
    pub types: Vec<String>,
    /// Rows its subtasks wrote in their latest attempt, as they last said.
    pub written: u64,
    /// Rows sampled since the job started (kept or not).
    pub sampled: u64,
    /// The rows asked for (after the `after` asked), oldest first.
    pub rows: Vec<OutputRow>,
}

/// A job's sinks' sampled rows (`GET /api/jobs/{id}/output`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobOutputView {
    /// The job.
    pub job: u64,
    /// Whose numbering the rows are in (the leader's keeping of them): when it changes, rows are
    /// numbered anew and a reader starts over.
    pub epoch: u64,
    /// The number the next row taken in will get: ask for rows after `next - 1` to get only new
    /// ones.
    pub next: u64,
    /// Its sinks, by name.
    pub sinks: Vec<SinkOutputView>,
}

/// A run and the engine's attempt within it: which of two samples is newer.
type Attempt = (u32, u32);

#[derive(Debug, Default)]
struct SinkRows {
    columns: Vec<String>,
    types: Vec<String>,
    /// Per (task, subtask): its newest attempt, the newest seq taken in of it, and the count written.
    subtasks: BTreeMap<(u32, u32), (Attempt, u64, u64)>,
    sampled: u64,
    rows: VecDeque<OutputRow>,
}

#[derive(Debug, Default)]
struct Rows {
    next: u64,
    sinks: BTreeMap<String, SinkRows>,
}

/// What a master keeps of a job's sinks' sampled rows.
#[derive(Debug)]
pub struct JobOutputs {
    epoch: u64,
    rows: Mutex<Rows>,
}

impl Default for JobOutputs {
    fn default() -> Self {
        // Distinct per keeping: the clock's nanoseconds and a count.
        static KEPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_nanos() as u64);
        // Within 53 bits: JavaScript reads it exactly.
        let epoch = (nanos ^ KEPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).rotate_left(40)) & ((1 << 53) - 1);
        JobOutputs { epoch, rows: Mutex::new(Rows { next: 1, sinks: BTreeMap::new() }) }
    }
}

impl JobOutputs {
    /// Takes in the rows of `samples` (a board's, in run `run`) not taken in before: of a newer
    /// attempt than a subtask's last, or after its newest row.
    pub fn absorb(&self, run: u32, samples: Vec<OutputSample>) {
        let mut rows = self.rows.lock().expect("the outputs' lock is not poisoned");
        let Rows { next, sinks } = &mut *rows;
        for sample in samples {
            let sink = sinks.entry(sample.sink.clone()).or_default();
            if sink.columns.is_empty() {
                (sink.columns, sink.types) = (sample.columns.clone(), sample.types.clone());
            }
            let attempt = (run, sample.attempt);
            let seen = sink.subtasks.entry((sample.task, sample.subtask)).or_insert((attempt, 0, 0));
            if attempt < seen.0 {
                continue;
            }
            if attempt > seen.0 {
                *seen = (attempt, 0, 0);
            }
            seen.2 = seen.2.max(sample.written);
            let newest = seen.1;
            for record in sample.records.into_iter().filter(|record| record.seq > newest) {
                seen.1 = record.seq;
                let (op, values) = parse_sample(&record.json);
                sink.rows.push_back(OutputRow {
                    n: *next,
                    subtask: sample.subtask,
                    attempt: run,
                    seq: record.seq,
                    written_at_ms: record.written_at_ms,
                    op,
                    values,
                });
                *next += 1;
                sink.sampled += 1;
                if sink.rows.len() > ROWS_KEPT {
                    sink.rows.pop_front();
                }
            }
        }
    }

    /// The rows numbered after `after` (the newest [`ROWS_PER_ANSWER_MAX`] of them, or of
    /// `limit`), of sink `sink` or of all.
    pub fn view(&self, job: u64, after: u64, sink: Option<&str>, limit: Option<usize>) -> JobOutputView {
        let limit = limit.unwrap_or(ROWS_PER_ANSWER_MAX).min(ROWS_PER_ANSWER_MAX);
        let rows = self.rows.lock().expect("the outputs' lock is not poisoned");
        let sinks = rows
            .sinks
            .iter()
            .filter(|(name, _)| sink.is_none_or(|wanted| wanted == name.as_str()))
            .map(|(name, kept)| {
                let newer = kept.rows.iter().filter(|row| row.n > after).count();
                let rows = kept.rows.iter().filter(|row| row.n > after).skip(newer.saturating_sub(limit)).cloned().collect();
                let newest = kept.subtasks.values().map(|(attempt, _, _)| *attempt).max().unwrap_or_default();
                let written = kept.subtasks.values().filter(|(attempt, _, _)| *attempt == newest).map(|(_, _, written)| written).sum();
                SinkOutputView {
                    sink: name.clone(),
                    columns: kept.columns.clone(),
                    types: kept.types.clone(),
                    written,
                    sampled: kept.sampled,
                    rows,
                }
            })
            .collect();
        JobOutputView { job, epoch: self.epoch, next: rows.next, sinks }
    }

    /// The names of the sinks seen so far.
    pub fn sinks(&self) -> Vec<String> {
        self.rows.lock().expect("the outputs' lock is not poisoned").sinks.keys().cloned().collect()
    }
}

/// A sample's change and values (`{"op":"+I","values":[...]}`, as the SQL sinks describe rows);
/// a record described otherwise is one value, its JSON.
fn parse_sample(json: &str) -> (String, Vec<serde_json::Value>) {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(mut object)) if object.contains_key("values") => {
            let op = object.get("op").and_then(|op| op.as_str()).unwrap_or("+I").to_string();
            match object.remove("values") {
                Some(serde_json::Value::Array(values)) => (op, values),
                Some(other) => (op, vec![other]),
                None => (op, Vec::new()),
            }
        }
        Ok(other) => ("+I".into(), vec![other]),
        Err(_) => ("+I".into(), vec![serde_json::Value::String(json.to_string())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tethys_engine::SampledRecord;

    fn sample(subtask: u32, attempt: u32, seqs: &[u64]) -> OutputSample {
        OutputSample {
            task: 3,
            subtask,
            attempt,
            sink: "out".into(),
            columns: vec!["k".into(), "n".into()],
            types: vec!["STRING".into(), "BIGINT".into()],
            written: seqs.last().copied().unwrap_or(0) + 10,
            records: seqs
                .iter()
                .map(|&seq| SampledRecord { seq, written_at_ms: 1, json: format!(r#"{{"op":"+U","values":["a",{seq}]}}"#) })
                .collect(),
        }
    }

    #[test]
    fn rows_are_taken_in_once_in_arrival_order_and_asked_for_after_the_last_seen() {
        let outputs = JobOutputs::default();
        outputs.absorb(1, vec![sample(0, 0, &[1, 5]), sample(1, 0, &[2])]);
        // The board sends its ring again with one new row: only that one is new.
        outputs.absorb(1, vec![sample(0, 0, &[1, 5, 9])]);
        let view = outputs.view(7, 0, None, None);
        let rows = &view.sinks[0].rows;
        assert_eq!(rows.iter().map(|r| (r.n, r.subtask, r.seq)).collect::<Vec<_>>(), [(1, 0, 1), (2, 0, 5), (3, 1, 2), (4, 0, 9)]);
        assert_eq!((rows[3].op.as_str(), &rows[3].values), ("+U", &vec![serde_json::json!("a"), serde_json::json!(9)]));
        assert_eq!((view.next, view.sinks[0].written, view.sinks[0].sampled), (5, 19 + 12, 4));
        assert_eq!(outputs.view(7, 3, None, None).sinks[0].rows.len(), 1, "after the third, only the fourth");
        assert_eq!(outputs.view(7, 0, None, Some(2)).sinks[0].rows.iter().map(|r| r.n).collect::<Vec<_>>(), [3, 4], "the newest");
        assert!(outputs.view(7, 0, Some("other"), None).sinks.is_empty());
        // A restarted attempt's rows start again from seq 1; an older attempt's are ignored.
        outputs.absorb(1, vec![sample(0, 1, &[1])]);
        outputs.absorb(1, vec![sample(0, 0, &[20])]);
        let rows = outputs.view(7, 4, None, None).sinks.remove(0).rows;
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1]);
        // A new run (a rescale) numbers its engine attempts from the start again: still newer.
        outputs.absorb(2, vec![sample(0, 0, &[1, 2])]);
        let view = outputs.view(7, 5, None, None);
        assert_eq!(view.sinks[0].rows.iter().map(|r| (r.attempt, r.seq)).collect::<Vec<_>>(), [(2, 1), (2, 2)]);
        assert_eq!(view.sinks[0].written, 12, "only the newest run's subtasks count");
        assert_ne!(JobOutputs::default().view(7, 0, None, None).epoch, view.epoch, "each keeping numbers on its own");
    }

    #[test]
    fn the_newest_rows_are_kept() {
        let outputs = JobOutputs::default();
        let seqs: Vec<u64> = (1..=(ROWS_KEPT as u64 + 5)).collect();
        outputs.absorb(1, vec![sample(0, 0, &seqs)]);
        let view = outputs.view(1, 0, None, None);
        assert_eq!(view.sinks[0].rows.len(), ROWS_KEPT);
        assert_eq!(view.sinks[0].rows[0].seq, 6);
        assert_eq!(view.sinks[0].sampled, ROWS_KEPT as u64 + 5);
    }

    #[test]
    fn a_record_not_described_as_a_row_is_one_value() {
        assert_eq!(parse_sample("[1,2]"), ("+I".to_string(), vec![serde_json::json!([1, 2])]));
        assert_eq!(parse_sample("not json"), ("+I".to_string(), vec![serde_json::json!("not json")]));
    }
}
