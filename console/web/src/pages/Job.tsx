import { useState } from "preact/hooks";
import { api, hasEnded, type ClusterView, type JobView } from "../api/client";
import { clock, duration } from "../format";
import { useLive } from "../live";
import { href, navigate } from "../router";
import { JobGraph } from "./JobGraph";

/** Slots free on live workers, plus those `job` holds now (a rescale gives them back first). */
export function capacityFor(cluster: ClusterView, job?: JobView): number {
  const free = cluster.workers.filter((worker) => worker.alive).reduce((sum, worker) => sum + worker.slots - worker.slots_used, 0);
  return free + (job && !hasEnded(job) ? job.slots : 0);
}

/** One job: its state, where it runs, what happened to it, and its actions. */
export function JobPage({ id }: { id: number }) {
  const { snapshot, timeline, receivedAt } = useLive();
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string }>();
  const [parallelism, setParallelism] = useState<string>("");
  if (!snapshot) return <p>Waiting for the job…</p>;
  const job = snapshot.jobs.find((candidate) => candidate.id === id);
  if (!job) {
    return (
      <section>
        <h1>Job {id}</h1>
        <p class="error">No such job. <a {...href("/jobs")}>All jobs</a></p>
      </section>
    );
  }
  const act = async (text: string, action: () => Promise<unknown>) => {
    setBusy(true);
    try {
      const result = await action();
      const path = (result as { path?: string } | undefined)?.path;
      setOutcome({ ok: true, text: path ? `${text}: ${path}` : text });
    } catch (e) {
      setOutcome({ ok: false, text: `${text} failed: ${(e as Error).message}` });
    } finally {
      setBusy(false);
    }
  };
  const capacity = capacityFor(snapshot.cluster, job);
  const wanted = Number(parallelism);
  const rescaleProblem =
    parallelism === ""
      ? "Give the new parallelism."
      : !Number.isInteger(wanted) || wanted < 1
        ? "The parallelism is a whole number, at least 1."
        : wanted === job.parallelism
          ? `It runs at ${wanted} already.`
          : wanted > capacity
            ? `The cluster has ${capacity} slots for it (free slots and its own ${job.slots}); ${wanted} do not fit.`
            : undefined;
  const ended = hasEnded(job);
  const workers = new Map(snapshot.cluster.workers.map((worker) => [worker.id, worker]));
  return (
    <section>
      <div class="toolbar">
        <h1>
          Job {job.id}: {job.name} <span class="muted">{job.args.join(" ")}</span>
        </h1>
        <span id="job-status" class={`badge ${job.status}`}>{job.status}</span>
      </div>
      {job.reason && <p class="error">{job.reason}</p>}
      <dl class="facts">
        <dt>Uptime</dt><dd>{ended ? "ended" : duration(receivedAt - job.submitted_at_ms)}</dd>
        <dt>Submitted</dt><dd>{clock(job.submitted_at_ms)}</dd>
        <dt>Parallelism</dt><dd id="job-parallelism">{job.parallelism}</dd>
        <dt>Slots</dt><dd>{job.slots}</dd>
        <dt>Attempt</dt><dd>{job.attempt}</dd>
        <dt>Checkpoints</dt><dd>{job.checkpoints_completed} completed{job.last_checkpoint ? `, last #${job.last_checkpoint} (attempt ${job.last_checkpoint_attempt})` : ""}</dd>
        <dt>Last savepoint</dt><dd id="last-savepoint">{job.last_savepoint ?? "none"}</dd>
        <dt>Adopted by new leaders</dt><dd>{job.adoptions} times</dd>
        <dt>Program</dt><dd id="job-program" class="muted">{job.program ?? "tethys (the cluster's own)"}</dd>
        <dt>Build</dt><dd class="muted">{job.build_id}</dd>
      </dl>
      <h2>Actions</h2>
      <div class="toolbar">
        <button id="savepoint" disabled={busy || ended} onClick={() => act("savepoint taken", () => api.savepoint(job.id, { stop: false }))}>Savepoint</button>
        <button id="stop-with-savepoint" disabled={busy || ended} onClick={() => act("stopped with a savepoint", () => api.savepoint(job.id, { stop: true }))}>Stop with savepoint</button>
        <button id="cancel" class="danger" disabled={busy || ended} onClick={() => act("cancelled", () => api.cancel(job.id))}>Cancel</button>
        <button onClick={() => navigate(`/deploy?copy=${job.id}`)}>Copy</button>
        <a id="live-results" {...href(`/jobs/${job.id}/results`)}>Live results</a>
      </div>
      <form
        class="toolbar"
        onSubmit={(event) => {
          event.preventDefault();
          if (!rescaleProblem) act(`rescaled to ${wanted}`, () => api.rescale(job.id, { parallelism: wanted }));
        }}
      >
        <label>
          Rescale to
          <input id="rescale-parallelism" type="number" min={1} value={parallelism} onInput={(e) => setParallelism(e.currentTarget.value)} disabled={ended} />
        </label>
        <button id="rescale" type="submit" disabled={busy || ended || rescaleProblem !== undefined}>Rescale through a savepoint</button>
        {parallelism !== "" && rescaleProblem && <span class="error">{rescaleProblem}</span>}
      </form>
      {outcome && <p id="outcome" class={outcome.ok ? "outcome" : "error"} role="status">{outcome.text}</p>}
      <h2>Graph</h2>
      <JobGraph id={job.id} running={job.status === "running"} />
      <h2>Where it runs</h2>
      <table>
        <thead><tr><th>plan slot</th><th>worker</th><th>worker slot</th><th>worker health</th></tr></thead>
        <tbody>
          {job.placements.map((placement, slot) => (
            <tr key={slot}>
              <td>{slot}</td>
              <td>{placement.worker} · <a {...href(`/logs?worker=${placement.worker}&q=${encodeURIComponent(`job=${job.id}`)}`)}>logs</a></td>
              <td>{placement.slot}</td>
              <td>{workers.get(placement.worker)?.alive === false ? <span class="badge failed">lost</span> : "alive"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {job.placements.length === 0 && <p class="muted">Not deployed.</p>}
      <h2>Exceptions</h2>
      {job.failures.length === 0 ? (
        <p class="muted">No attempt failed.</p>
      ) : (
        <table id="exceptions">
          <thead>
            <tr><th>attempt</th><th>what failed (operator and subtask, and the error)</th></tr>
          </thead>
          <tbody>
            {[...job.failures].reverse().map((failure) => (
              <tr>
                <td>{failure.attempt}</td>
                <td class="reason">{failure.reason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Timeline</h2>
      <ul class="timeline">
        {timeline.filter((entry) => entry.job === job.id || entry.job === undefined).map((entry) => (
          <li>
            <time>{clock(entry.at)}</time> {entry.text}
          </li>
        ))}
      </ul>
    </section>
  );
}
