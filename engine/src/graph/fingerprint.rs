//! The graph fingerprint: what the processes running one job compare, before any of them starts a
//! subtask, to know that they all built the same job.
//!
//! A job's behaviour is code, so it does not travel: every process runs the same program and
//! rebuilds the graph itself (see ARCHITECTURE.md, "How a job reaches its workers"). A process
//! that runs another build, or whose program built another graph (other arguments, another
//! parallelism, a changed window), would exchange frames its peers cannot read or keep state where
//! they do not look for it. The fingerprint lists, per operator, everything that must agree: its
//! stable id, name, kind, parallelism, parameters (what the API recorded, such as a window's size),
//! side outputs and, per input, the producing operator, its output, the partitioning and the
//! record type on the edge (the codec that reads its frames); and for the job, the max parallelism
//! and the program's build identity (a hash of the running executable). Comparing two fingerprints
//! names the first operator that differs and what differs about it.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::logical::{JobGraph, OperatorKind};
use crate::base::key::KeyHasher;

/// What must agree between the processes running one job (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphFingerprint {
    /// The program's build identity ([`build_id`]).
    pub build: String,
    /// Number of key groups.
    pub max_parallelism: usize,
    /// Every operator, in node order.
    pub operators: Vec<OperatorFingerprint>,
}

/// What must agree about one operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorFingerprint {
    /// Its stable id (the user's `uid`, or derived).
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it does.
    pub kind: OperatorKind,
    /// The parallelism it runs with.
    pub parallelism: usize,
    /// Whether it keeps keyed state.
    pub keyed: bool,
    /// The parameters the API recorded (e.g. a window's assigner and allowed lateness).
    pub params: String,
    /// Its side outputs' names.
    pub side_outputs: Vec<String>,
    /// For a source: its idle timeout and watermark alignment, as the graph has them.
    pub source_settings: String,
    /// Its inputs, in edge order.
    pub inputs: Vec<InputFingerprint>,
}

/// One input edge of an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFingerprint {
    /// The producing operator's stable id.
    pub from: String,
    /// Which output of the producer (0: main, k: side output k).
    pub output: usize,
    /// How records are spread over the consumer's subtasks.
    pub partitioning: String,
    /// The Rust type of the records on the edge.
    pub record_type: String,
}

/// Why a peer's graph is not this process's.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FingerprintMismatch {
    /// The peer runs another build of the program.
    #[error("{peer} runs another build of the program (build {theirs}, here {ours}): every process of a job runs the same program")]
    Build {
        /// The peer.
        peer: String,
        /// This process's build.
        ours: String,
        /// The peer's build.
        theirs: String,
    },
    /// The peer's job has another number of key groups.
    #[error("{peer} built the job with max parallelism {theirs}, here {ours}")]
    MaxParallelism {
        /// The peer.
        peer: String,
        /// Here.
        ours: usize,
        /// There.
        theirs: usize,
    },
    /// An operator differs.
    #[error("operator '{operator}' (node {node}, id {id}) differs on {peer}: its {what} is {theirs} there and {ours} here")]
    Operator {
        /// The peer.
        peer: String,
        /// The operator's node id.
        node: usize,
        /// Its name (here).
        operator: String,
        /// Its stable id (here).
        id: String,
        /// What differs.
        what: &'static str,
        /// The value here.
        ours: String,
        /// The value there.
        theirs: String,
    },
    /// The peer's graph has more or fewer operators, and all those both have agree.
    #[error("{peer} built {theirs} operators, here {ours}; the first one only one side has is '{extra}'")]
    OperatorCount {
        /// The peer.
        peer: String,
        /// Operators here.
        ours: usize,
        /// Operators there.
        theirs: usize,
        /// The first operator only one side has.
        extra: String,
    },
}

impl GraphFingerprint {
    /// The fingerprint of `graph` as built by this program.
    pub fn of(graph: &JobGraph) -> GraphFingerprint {
        GraphFingerprint::with_build(graph, build_id())
    }

    /// The fingerprint of `graph` as built by the program with build identity `build`.
    pub fn with_build(graph: &JobGraph, build: &str) -> GraphFingerprint {
        let ids = graph.operator_ids();
        let operators = graph
            .nodes
            .iter()
            .map(|node| OperatorFingerprint {
                id: ids[node.id].clone(),
                name: node.name.clone(),
                kind: node.kind,
                parallelism: graph.parallelism_of(node.id),
                keyed: node.keyed,
                params: node.params.clone(),
                side_outputs: node.side_outputs.clone(),
                source_settings: format!("idle timeout {:?} ms, alignment {:?}", node.idle_timeout_ms, node.watermark_alignment),
                inputs: graph
                    .inputs_of(node.id)
                    .map(|edge| InputFingerprint {
                        from: ids[edge.from].clone(),
                        output: edge.output,
                        partitioning: format!("{:?}", edge.partitioning),
                        record_type: edge.record_type.clone(),
                    })
                    .collect(),
            })
            .collect();
        GraphFingerprint { build: build.to_string(), max_parallelism: graph.max_parallelism, operators }
    }

    /// A short digest of the whole fingerprint (the engine's key hash over its JSON form), for
    /// logs; equal fingerprints have equal digests.
    pub fn digest(&self) -> String {
        let mut hasher = KeyHasher::default();
        hasher.write_bytes(serde_json::to_string(self).expect("a fingerprint always serializes").as_bytes());
        format!("{:016x}", hasher.finish())
    }

    /// Checks that `theirs`, the fingerprint `peer` (a name for messages, e.g. "worker 2")
    /// built, is this one; otherwise says what differs first: the build, the max parallelism,
    /// or the first operator, in node order, that differs, and how.
    // The error is large (it names the operator and both values) and returned once, when a job is
    // refused: boxing it would only make the callers' matching noisier.
    #[allow(clippy::result_large_err)]
    pub fn check_same(&self, theirs: &GraphFingerprint, peer: &str) -> Result<(), FingerprintMismatch> {
        let peer = peer.to_string();
        if self.build != theirs.build {
            return Err(FingerprintMismatch::Build { peer, ours: self.build.clone(), theirs: theirs.build.clone() });
        }
        if self.max_parallelism != theirs.max_parallelism {
            return Err(FingerprintMismatch::MaxParallelism { peer, ours: self.max_parallelism, theirs: theirs.max_parallelism });
        }
        for (node, (ours, other)) in self.operators.iter().zip(&theirs.operators).enumerate() {
            if let Some((what, ours_value, theirs_value)) = first_difference(ours, other) {
                return Err(FingerprintMismatch::Operator {
                    peer,
                    node,
                    operator: ours.name.clone(),
                    id: ours.id.clone(),
                    what,
                    ours: ours_value,
                    theirs: theirs_value,
                });
            }
        }
        if self.operators.len() != theirs.operators.len() {
            let shorter = self.operators.len().min(theirs.operators.len());
            let extra = self.operators.get(shorter).or(theirs.operators.get(shorter)).map(|o| o.name.clone()).unwrap_or_default();
            return Err(FingerprintMismatch::OperatorCount { peer, ours: self.operators.len(), theirs: theirs.operators.len(), extra });
        }
        debug_assert_eq!(self, theirs, "every field is compared above");
        Ok(())
    }
}

/// The first field of two operators' fingerprints that differs: (what, ours, theirs).
fn first_difference(ours: &OperatorFingerprint, theirs: &OperatorFingerprint) -> Option<(&'static str, String, String)> {
    let fields: [(&'static str, String, String); 8] = [
        ("id", ours.id.clone(), theirs.id.clone()),
        ("name", ours.name.clone(), theirs.name.clone()),
        ("kind", format!("{:?}", ours.kind), format!("{:?}", theirs.kind)),
        ("parallelism", ours.parallelism.to_string(), theirs.parallelism.to_string()),
        ("keyed", ours.keyed.to_string(), theirs.keyed.to_string()),
        ("parameters", ours.params.clone(), theirs.params.clone()),
        ("side outputs", format!("{:?}", ours.side_outputs), format!("{:?}", theirs.side_outputs)),
        ("source settings", ours.source_settings.clone(), theirs.source_settings.clone()),
    ];
    if let Some(field) = fields.into_iter().find(|(_, a, b)| a != b) {
        return Some(field);
    }
    if ours.inputs.len() != theirs.inputs.len() {
        return Some(("number of inputs", ours.inputs.len().to_string(), theirs.inputs.len().to_string()));
    }
    ours.inputs.iter().zip(&theirs.inputs).find(|(a, b)| a != b).map(|(a, b)| {
        if a.record_type != b.record_type {
            ("input record type", a.record_type.clone(), b.record_type.clone())
        } else {
            ("input", format!("{a:?}"), format!("{b:?}"))
        }
    })
}

/// The build identity of the running program, computed once: the GNU build id its linker wrote
/// into the executable (`gnu-` and the id: an ELF note near the file's start, so a few pages are
/// read), or else a hash of the executable's bytes (of a 200 MB binary: a fraction of a second
/// optimized, most of a second unoptimized, in every process of a cluster). Two processes with
/// equal build ids run the same code. If the executable cannot be read, the package version and
/// the target say what they can.
pub fn build_id() -> &'static str {
    static BUILD_ID: OnceLock<String> = OnceLock::new();
    BUILD_ID.get_or_init(|| match executable_identity() {
        Ok(identity) => identity,
        Err(error) => format!("tethys-engine {} ({}; executable unreadable: {error})", env!("CARGO_PKG_VERSION"), std::env::consts::ARCH),
    })
}

fn executable_identity() -> std::io::Result<String> {
    let path = std::env::current_exe()?;
    match gnu_build_id(&path)? {
        Some(id) => Ok(format!("gnu-{id}")),
        None => Ok(format!("{:016x}", hash_executable(&path)?)),
    }
}

/// The GNU build id (note `NT_GNU_BUILD_ID` of a `PT_NOTE` segment) of a 64-bit little-endian
/// ELF file, in hex; `None` for a file without one or of another kind.
fn gnu_build_id(path: &std::path::Path) -> std::io::Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    const PT_NOTE: u32 = 4;
    const NT_GNU_BUILD_ID: u32 = 3;
    let u16_at = |bytes: &[u8], at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let u32_at = |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let mut file = std::fs::File::open(path)?;
    let mut header = [0u8; 64];
    if file.read_exact(&mut header).is_err() || header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Ok(None);
    }
    let (table_at, entry_bytes, entries) = (u64_at(&header, 0x20), usize::from(u16_at(&header, 0x36)), usize::from(u16_at(&header, 0x38)));
    if entry_bytes < 56 {
        return Ok(None);
    }
    let mut table = vec![0u8; entry_bytes * entries];
    file.seek(SeekFrom::Start(table_at))?;
    if file.read_exact(&mut table).is_err() {
        return Ok(None);
    }
    for entry in table.chunks_exact(entry_bytes).filter(|entry| u32_at(entry, 0) == PT_NOTE) {
        let (offset, size, align) = (u64_at(entry, 8), u64_at(entry, 32), u64_at(entry, 48));
        if size > 1 << 16 {
            continue;
        }
        let align = if align == 8 { 8 } else { 4 };
        let mut notes = vec![0u8; size as usize];
        file.seek(SeekFrom::Start(offset))?;
        if file.read_exact(&mut notes).is_err() {
            continue;
        }
        let mut at = 0;
        while at + 12 <= notes.len() {
            let (name_bytes, desc_bytes, kind) = (u32_at(&notes, at) as usize, u32_at(&notes, at + 4) as usize, u32_at(&notes, at + 8));
            let name_at = at + 12;
            let desc_at = name_at + name_bytes.next_multiple_of(align);
            if desc_at + desc_bytes > notes.len() {
                break;
            }
            if kind == NT_GNU_BUILD_ID && notes[name_at..name_at + name_bytes] == *b"GNU\0" && desc_bytes > 0 {
                return Ok(Some(notes[desc_at..desc_at + desc_bytes].iter().map(|byte| format!("{byte:02x}")).collect()));
            }
            at = desc_at + desc_bytes.next_multiple_of(align);
        }
    }
    Ok(None)
}

fn hash_executable(path: &std::path::Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = KeyHasher::default();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            return Ok(hasher.finish());
        }
        hasher.write_bytes(&buffer[..read]);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sink::discard::DiscardSink;
    use crate::{EngineConfig, StreamEnvironment, TumblingEventTimeWindows, WatermarkStrategy};

    /// A keyed tumbling-window count with a window of `window_ms`, the window at `parallelism`.
    fn job(window_ms: u64, parallelism: usize) -> JobGraph {
        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 1, ..EngineConfig::default() });
        env.from_collection(vec![(1u64, 10i64), (2, 20)])
            .assign_timestamps_and_watermarks(WatermarkStrategy::for_bounded_out_of_orderness(Duration::ZERO, |r: &(u64, i64)| r.1))
            .key_by(|r: &(u64, i64)| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(window_ms)), |r: &(u64, i64)| r.1)
            .count()
            .parallelism(parallelism)
            .sink("out", DiscardSink::new());
        env.job_graph()
    }

    #[test]
    fn the_same_job_built_twice_has_one_fingerprint() {
        let (a, b) = (GraphFingerprint::of(&job(100, 2)), GraphFingerprint::of(&job(100, 2)));
        assert_eq!(a, b);
        assert_eq!(a.digest(), b.digest());
        a.check_same(&b, "worker 1").unwrap();
    }

    #[test]
    fn a_changed_window_is_named_with_its_parameters() {
        let ours = GraphFingerprint::of(&job(100, 2));
        let error = ours.check_same(&GraphFingerprint::of(&job(200, 2)), "worker 1").unwrap_err();
        let FingerprintMismatch::Operator { operator, what, .. } = &error else { panic!("{error}") };
        assert_eq!((operator.as_str(), *what), ("Window", "parameters"), "{error}");
        assert!(error.to_string().contains("worker 1") && error.to_string().contains("100"), "{error}");
    }

    #[test]
    fn another_parallelism_is_named_at_the_operator_that_has_it() {
        let ours = GraphFingerprint::of(&job(100, 2));
        let error = ours.check_same(&GraphFingerprint::of(&job(100, 3)), "worker 2").unwrap_err();
        assert!(
            matches!(&error, FingerprintMismatch::Operator { what: "parallelism", ours, theirs, .. } if ours == "2" && theirs == "3"),
            "{error}"
        );
    }

    #[test]
    fn another_record_type_on_an_edge_is_named() {
        let build = |with_i32: bool| {
            let env = StreamEnvironment::new(EngineConfig { slots: 1, parallelism: 1, ..EngineConfig::default() });
            if with_i32 {
                env.from_collection(vec![1i32]).name("numbers").sink("out", DiscardSink::new());
            } else {
                env.from_collection(vec![1i64]).name("numbers").sink("out", DiscardSink::new());
            }
            GraphFingerprint::of(&env.job_graph())
        };
        let error = build(true).check_same(&build(false), "worker 1").unwrap_err();
        assert!(
            matches!(&error, FingerprintMismatch::Operator { what: "input record type", operator, .. } if operator == "Sink: out"),
            "{error}"
        );
    }

    #[test]
    fn another_build_or_a_missing_operator_is_refused() {
        let graph = job(100, 2);
        let error =
            GraphFingerprint::with_build(&graph, "a").check_same(&GraphFingerprint::with_build(&graph, "b"), "worker 1").unwrap_err();
        assert!(matches!(error, FingerprintMismatch::Build { .. }), "{error}");
        let mut shorter = GraphFingerprint::of(&graph);
        shorter.operators.pop();
        let error = GraphFingerprint::of(&graph).check_same(&shorter, "worker 1").unwrap_err();
        assert!(matches!(&error, FingerprintMismatch::OperatorCount { extra, .. } if extra == "Sink: out"), "{error}");
    }

    #[test]
    fn the_build_id_is_stable_within_a_process() {
        assert_eq!(build_id(), build_id());
        let id = build_id();
        // Linux toolchains link with a GNU build id; elsewhere the executable's hash stands in.
        if cfg!(target_os = "linux") {
            assert!(id.starts_with("gnu-") && id.len() > 4 + 16, "the executable's build id note is read: {id}");
        } else {
            assert_eq!(id.len(), 16, "the executable is readable in tests: {id}");
        }
        let hashed = hash_executable(&std::env::current_exe().unwrap()).unwrap();
        assert_eq!(hashed, hash_executable(&std::env::current_exe().unwrap()).unwrap());
    }
}
