//! `tethys cluster`: what the masters say about the cluster: the leader and its term, the masters,
//! the workers with their slots. It asks each given master in turn until one answers.

use clap::Args;
use tethys_control::rpc::proto::control_client::ControlClient;
use tethys_control::rpc::proto::{ClusterReply, ClusterRequest};
use tethys_control::rpc::{AddSecret, GrpcTls, SecretAuth};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::CliError;

/// Arguments of `tethys cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    masters: super::MastersArgs,
}

/// A client of one master, with the cluster secret on every call.
pub type MasterClient = ControlClient<InterceptedService<Channel, AddSecret>>;

/// Makes `call` on the masters (`host:port,...`), in order, until one answers; a refusal (a
/// status other than unavailable) is the answer too, as the masters agree on it. Over mutual TLS
/// with `tls`.
pub async fn call_any<T, F, Fut>(masters: &str, secret: &str, tls: Option<&GrpcTls>, call: F) -> Result<T, CliError>
where
    F: FnMut(MasterClient) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    call_any_within(masters, secret, tls, std::time::Duration::from_secs(5), call).await
}

/// As [`call_any`], each call given `timeout` (an upload takes longer than a question).
pub async fn call_any_within<T, F, Fut>(
    masters: &str,
    secret: &str,
    tls: Option<&GrpcTls>,
    timeout: std::time::Duration,
    mut call: F,
) -> Result<T, CliError>
where
    F: FnMut(MasterClient) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let auth = SecretAuth::new(secret)?;
    let mut failures = Vec::new();
    for addr in masters.split(',').map(str::trim).filter(|addr| !addr.is_empty()) {
        let endpoint = tethys_control::rpc::endpoint(addr, tls, std::time::Duration::from_millis(500), timeout)
            .map_err(|e| format!("bad master address: {e}"))?;
        match endpoint.connect().await {
            Ok(channel) => match call(ControlClient::with_interceptor(channel, auth.add())).await {
                Ok(reply) => return Ok(reply.into_inner()),
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    failures.push(format!("{addr}: {}", tethys_control::rpc::status_reason(&status)))
                }
                Err(status) => return Err(format!("master {addr}: {}", tethys_control::rpc::status_reason(&status)).into()),
            },
            Err(error) => failures.push(format!("{addr}: {error}")),
        }
    }
    Err(format!("no master answered ({})", failures.join("; ")).into())
}

/// Asks the masters, in order, until one answers.
pub async fn ask_cluster(masters: &str, secret: &str, tls: Option<&GrpcTls>) -> Result<ClusterReply, CliError> {
    call_any(masters, secret, tls, |mut client| async move { client.cluster(ClusterRequest {}).await }).await
}

/// The reply as text for people.
pub fn describe(reply: &ClusterReply) -> String {
    let mut text = String::new();
    let leader = if reply.leader_addr.is_empty() {
        "none known".to_string()
    } else {
        format!("master {} at {}", reply.leader_id, reply.leader_addr)
    };
    text.push_str(&format!(
        "leader: {leader}, term {} (answered by master {}, applied up to entry {})\n",
        reply.term, reply.answered_by, reply.applied_index
    ));
    text.push_str("masters:\n");
    for master in &reply.masters {
        let role = if master.id == reply.leader_id { " (leader)" } else { "" };
        let health = match (master.reachable, master.seen_ms_ago) {
            (true, _) => format!("up, term {}, applied up to entry {}", master.term, master.applied_index),
            (false, Some(ago)) => format!("UNREACHABLE (last reached {:.1} s ago: {})", ago as f64 / 1000.0, master.error),
            (false, None) => format!("UNREACHABLE ({})", master.error),
        };
        text.push_str(&format!("  {} {}{role}: {health}\n", master.id, master.addr));
    }
    text.push_str(&format!("workers: {}\n", reply.workers.len()));
    for worker in &reply.workers {
        let health = if worker.alive { "alive" } else { "lost" };
        text.push_str(&format!("  {} {} {health}, {}/{} slots used\n", worker.id, worker.control_addr, worker.slots_used, worker.slots));
    }
    text
}

/// Prints what the masters say.
pub fn run(args: ClusterArgs) -> Result<(), CliError> {
    let args = args.masters;
    let secret = super::read_secret_text(args.secret_file.as_deref())?;
    let tls = args.tls.grpc()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start a runtime: {e}"))?;
    let reply = runtime.block_on(ask_cluster(&args.masters, &secret, tls.as_ref()))?;
    if args.json {
        let masters: Vec<serde_json::Value> = reply
            .masters
            .iter()
            .map(|m| serde_json::json!({"id": m.id, "addr": m.addr, "reachable": m.reachable, "seen_ms_ago": m.seen_ms_ago, "term": m.term, "knows_leader": m.leader_id, "applied_index": m.applied_index, "error": (!m.error.is_empty()).then_some(&m.error)}))
            .collect();
        let workers: Vec<serde_json::Value> = reply
            .workers
            .iter()
            .map(|w| serde_json::json!({"id": w.id, "control_addr": w.control_addr, "data_addr": w.data_addr, "slots": w.slots, "slots_used": w.slots_used, "alive": w.alive}))
            .collect();
        let leader = (!reply.leader_addr.is_empty()).then_some(reply.leader_id);
        let json = serde_json::json!({"leader": leader, "leader_addr": reply.leader_addr, "term": reply.term, "answered_by": reply.answered_by, "applied_index": reply.applied_index, "masters": masters, "workers": workers});
        println!("{json}");
    } else {
        print!("{}", describe(&reply));
    }
    Ok(())
}

/// Arguments of `tethys logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The worker whose log to search (its id, as `tethys cluster` lists it).
    #[arg(long)]
    worker: u64,
    /// Only lines holding this text (level, module, message or fields), ignoring case.
    #[arg(long)]
    grep: Option<String>,
    /// Only lines at this level or more severe: error, warn, info, debug, trace.
    #[arg(long)]
    level: Option<String>,
    /// At most this many of the newest matching lines.
    #[arg(long, default_value_t = tethys_control::logs::LOG_LINES_DEFAULT)]
    limit: u32,
    /// Keep printing new lines as they come, every second, until interrupted.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    masters: super::MastersArgs,
}

/// Prints a worker's recent log, as the masters fetch it from the worker.
pub fn logs(args: LogsArgs) -> Result<(), CliError> {
    use tethys_control::rpc::proto::{LogsRequest, WorkerLogsRequest};
    let secret = super::read_secret_text(args.masters.secret_file.as_deref())?;
    let tls = args.masters.tls.grpc()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start a runtime: {e}"))?;
    let mut after_seq = 0;
    loop {
        let query = LogsRequest {
            contains: args.grep.clone().unwrap_or_default(),
            min_level: args.level.clone().unwrap_or_default(),
            after_seq,
            limit: args.limit,
        };
        let request = WorkerLogsRequest { worker_id: args.worker, query: Some(query) };
        let reply = runtime.block_on(call_any(&args.masters.masters, &secret, tls.as_ref(), |mut client| {
            let request = request.clone();
            async move { client.worker_logs(request).await }
        }))?;
        if !reply.kept {
            return Err(format!("worker {}'s process keeps no log", args.worker).into());
        }
        for line in &reply.lines {
            if args.masters.json {
                let json = serde_json::json!({"seq": line.seq, "time_ms": line.time_ms, "level": line.level, "target": line.target, "message": line.message, "fields": line.fields});
                println!("{json}");
            } else {
                let fields = if line.fields.is_empty() { String::new() } else { format!(" {}", line.fields) };
                println!("{} {:>5} {}: {}{fields}", clock(line.time_ms), line.level, line.target, line.message);
            }
        }
        if !args.follow {
            return Ok(());
        }
        after_seq = reply.next_seq.saturating_sub(1);
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Arguments of `tethys output`.
#[derive(Args, Debug)]
pub struct OutputArgs {
    /// The running job whose sinks' sampled rows to show.
    #[arg(long)]
    job: u64,
    /// Only this sink's rows (its table's name).
    #[arg(long)]
    sink: Option<String>,
    /// At most this many of the newest rows per sink.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Keep printing new rows as they come, every second, until interrupted.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    masters: super::MastersArgs,
}

/// Prints a running job's sinks' sampled rows, as the leader keeps them (`+I[...]` lines, as
/// Flink's print sink writes them, under each sink's name and columns).
pub fn output(args: OutputArgs) -> Result<(), CliError> {
    use tethys_control::output::JobOutputView;
    use tethys_control::rpc::proto::JobOutputRequest;
    let secret = super::read_secret_text(args.masters.secret_file.as_deref())?;
    let tls = args.masters.tls.grpc()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start a runtime: {e}"))?;
    let (mut after, mut epoch, mut headed) = (0, None, std::collections::BTreeSet::new());
    loop {
        // The limit is the first answer's; following, every new row is shown.
        let limit = if epoch.is_none() { args.limit } else { 0 };
        let request = JobOutputRequest { job_id: args.job, after, sink: args.sink.clone().unwrap_or_default(), limit };
        let reply = runtime.block_on(call_any(&args.masters.masters, &secret, tls.as_ref(), |mut client| {
            let request = request.clone();
            async move { client.job_output(request).await }
        }))?;
        let view: JobOutputView = serde_json::from_str(&reply.json).map_err(|e| format!("the leader's rows do not parse: {e}"))?;
        if epoch.is_some_and(|epoch| epoch != view.epoch) && after > 0 {
            // Another leader numbers the rows anew: start over.
            (after, epoch) = (0, None);
            continue;
        }
        epoch = Some(view.epoch);
        for sink in &view.sinks {
            if args.masters.json {
                for row in &sink.rows {
                    let json = serde_json::json!({"sink": sink.sink, "n": row.n, "subtask": row.subtask, "written_at_ms": row.written_at_ms, "op": row.op, "values": row.values});
                    println!("{json}");
                }
                continue;
            }
            if headed.insert(sink.sink.clone()) {
                println!("{} ({}): {} rows written, {} sampled", sink.sink, sink.columns.join(", "), sink.written, sink.sampled);
            }
            for row in &sink.rows {
                let values: Vec<String> = row
                    .values
                    .iter()
                    .map(|value| match value {
                        serde_json::Value::Null => "NULL".to_string(),
                        serde_json::Value::String(text) => text.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                println!("{} {}[{}]", clock(row.written_at_ms), row.op, values.join(", "));
            }
        }
        if !args.follow {
            if view.sinks.is_empty() {
                println!("job {}: no sampled rows yet", args.job);
            }
            return Ok(());
        }
        after = view.next - 1;
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// `time_ms` (since the Unix epoch) as the UTC time of day, `HH:MM:SS.mmm`.
fn clock(time_ms: u64) -> String {
    let of_day = time_ms % 86_400_000;
    let (hours, minutes, seconds, millis) = (of_day / 3_600_000, of_day / 60_000 % 60, of_day / 1000 % 60, of_day % 1000);
    format!("{hours:02}:{minutes:02}:{seconds:02}.{millis:03}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_time_shows_as_its_utc_time_of_day() {
        assert_eq!(super::clock(0), "00:00:00.000");
        // 2026-12-01 17:50:45.123 UTC.
        assert_eq!(super::clock(1_796_147_445_123), "17:50:45.123");
    }
}
