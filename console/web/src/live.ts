// Live data: one EventSource on /api/events for the whole app, its latest snapshot, and a
// timeline of what changed between snapshots (leader changes, job status, attempts, adoptions,
// checkpoints), kept while the page is open.
import { useEffect, useState } from "preact/hooks";
import { api, type JobView, type Snapshot } from "./api/client";

export type Connection = "connecting" | "live" | "reconnecting";

/** Something that changed, as seen between two snapshots. */
export interface TimelineEntry {
  at: number;
  job?: number;
  text: string;
}

interface LiveState {
  snapshot?: Snapshot;
  connection: Connection;
  timeline: TimelineEntry[];
  receivedAt: number;
}

const TIMELINE_MAX = 500;
let state: LiveState = { connection: "connecting", timeline: [], receivedAt: 0 };
const listeners = new Set<(state: LiveState) => void>();
let source: EventSource | undefined;

function publish(next: LiveState) {
  state = next;
  listeners.forEach((listener) => listener(state));
}

function changes(before: Snapshot | undefined, after: Snapshot, at: number): TimelineEntry[] {
  const entries: TimelineEntry[] = [];
  if (before && before.cluster.leader !== after.cluster.leader) {
    const leader = after.cluster.leader ?? "none";
    entries.push({ at, text: `leader is now master ${leader} (term ${after.cluster.term})` });
  }
  const previous = new Map<number, JobView>((before?.jobs ?? []).map((job) => [job.id, job]));
  for (const job of after.jobs) {
    const was = previous.get(job.id);
    if (!was) {
      if (before) entries.push({ at, job: job.id, text: `job ${job.id} (${job.name}) submitted` });
      continue;
    }
    if (was.status !== job.status) {
      entries.push({ at, job: job.id, text: `job ${job.id} ${job.status}${job.reason ? `: ${job.reason}` : ""}` });
    }
    if (was.attempt !== job.attempt && job.attempt > 1) {
      entries.push({ at, job: job.id, text: `job ${job.id} restarted: attempt ${job.attempt}` });
    }
    if (was.parallelism !== job.parallelism) {
      entries.push({ at, job: job.id, text: `job ${job.id} rescaled from ${was.parallelism} to ${job.parallelism}` });
    }
    if (was.adoptions !== job.adoptions) {
      entries.push({ at, job: job.id, text: `job ${job.id} reconciled: the new leader adopted its running attempt` });
    }
    if (was.last_savepoint !== job.last_savepoint && job.last_savepoint) {
      entries.push({ at, job: job.id, text: `job ${job.id} savepoint ${job.last_savepoint}` });
    }
  }
  return entries;
}

function connect() {
  if (source) return;
  source = new EventSource("/api/events", { withCredentials: true });
  source.addEventListener("snapshot", (event) => {
    const snapshot = JSON.parse((event as MessageEvent<string>).data) as Snapshot;
    const now = Date.now();
    const timeline = [...changes(state.snapshot, snapshot, now), ...state.timeline].slice(0, TIMELINE_MAX);
    publish({ snapshot, connection: "live", timeline, receivedAt: now });
  });
  source.addEventListener("error", () => {
    // The browser reconnects by itself (to this master; it answers from its own state and
    // follows the new leader after a failover). An EventSource does not say why it failed: a
    // plain call does, and a 401 there ends the session (`whenUnauthorized`).
    publish({ ...state, connection: "reconnecting" });
    api.cluster().catch(() => {});
  });
}

/** Closes the stream (on logout). */
export function disconnect() {
  source?.close();
  source = undefined;
  publish({ connection: "connecting", timeline: [], receivedAt: 0 });
}

/** The live state; re-renders the caller on every snapshot. */
export function useLive(): LiveState {
  const [current, setCurrent] = useState(state);
  useEffect(() => {
    connect();
    listeners.add(setCurrent);
    setCurrent(state);
    return () => {
      listeners.delete(setCurrent);
    };
  }, []);
  return current;
}
