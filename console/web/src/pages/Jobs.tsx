import { useState } from "preact/hooks";
import { api, hasEnded, type JobView } from "../api/client";
import { duration } from "../format";
import { useLive } from "../live";
import { href, navigate } from "../router";

const STATUSES = ["all", "running", "created", "restarting", "failing", "finished", "failed", "cancelled"];

/** Every job, live: filter, search, and act on several at once. */
export function JobsPage() {
  const { snapshot, receivedAt } = useLive();
  const [search, setSearch] = useState("");
  const [status, setStatus] = useState("all");
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [outcome, setOutcome] = useState<string>();
  if (!snapshot) return <p>Waiting for the jobs…</p>;
  const needle = search.trim().toLowerCase();
  const jobs = snapshot.jobs
    .filter((job) => status === "all" || job.status === status)
    .filter((job) => needle === "" || `${job.id} ${job.name} ${job.args.join(" ")}`.toLowerCase().includes(needle))
    .reverse();
  const toggle = (id: number) => {
    const next = new Set(selected);
    if (!next.delete(id)) next.add(id);
    setSelected(next);
  };
  const chosen = snapshot.jobs.filter((job) => selected.has(job.id));
  const act = async (what: string, action: (job: JobView) => Promise<unknown>) => {
    const results = await Promise.allSettled(chosen.map(action));
    const failed = results.flatMap((result, i) => (result.status === "rejected" ? [`job ${chosen[i].id}: ${(result.reason as Error).message}`] : []));
    setOutcome(failed.length === 0 ? `${what}: ${chosen.map((job) => job.id).join(", ")}` : `${what} failed for ${failed.join("; ")}`);
    setSelected(new Set());
  };
  return (
    <section>
      <div class="toolbar">
        <h1>Jobs</h1>
        <input id="search" type="search" placeholder="Search by id, name or arguments" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
        <select id="status-filter" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          {STATUSES.map((s) => (
            <option value={s}>{s}</option>
          ))}
        </select>
        <button id="deploy-a-job" onClick={() => navigate("/deploy")}>Deploy a job</button>
      </div>
      <div class="toolbar">
        <span>{selected.size} selected</span>
        <button disabled={chosen.length === 0} onClick={() => act("savepoint taken", (job) => api.savepoint(job.id, { stop: false }))}>
          Savepoint
        </button>
        <button disabled={chosen.length === 0} onClick={() => act("stopped with a savepoint", (job) => api.savepoint(job.id, { stop: true }))}>
          Stop with savepoint
        </button>
        <button class="danger" disabled={chosen.length === 0} onClick={() => act("cancelled", (job) => api.cancel(job.id))}>
          Cancel
        </button>
      </div>
      {outcome && <p class="outcome" role="status">{outcome}</p>}
      <table id="jobs">
        <thead>
          <tr>
            <th></th><th>id</th><th>job</th><th>status</th><th>uptime</th><th>parallelism</th><th>attempt</th><th>last checkpoint</th><th></th>
          </tr>
        </thead>
        <tbody>
          {jobs.map((job) => (
            <tr key={job.id} data-job={job.id}>
              <td>
                <input type="checkbox" aria-label={`select job ${job.id}`} checked={selected.has(job.id)} disabled={hasEnded(job)} onChange={() => toggle(job.id)} />
              </td>
              <td><a {...href(`/jobs/${job.id}`)}>{job.id}</a></td>
              <td><a {...href(`/jobs/${job.id}`)}>{job.name}</a> <span class="muted">{job.args.join(" ")}</span></td>
              <td><span class={`badge ${job.status}`}>{job.status}</span></td>
              <td>{hasEnded(job) ? "—" : duration(receivedAt - job.submitted_at_ms)}</td>
              <td>{job.parallelism}</td>
              <td>{job.attempt}</td>
              <td>{job.last_checkpoint ? `#${job.last_checkpoint} (${job.checkpoints_completed} in all)` : "none yet"}</td>
              <td><a {...href(`/deploy?copy=${job.id}`)}>copy</a></td>
            </tr>
          ))}
        </tbody>
      </table>
      {jobs.length === 0 && <p class="muted">No jobs{status !== "all" || needle ? " match" : " yet"}.</p>}
    </section>
  );
}
