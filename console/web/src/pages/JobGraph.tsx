// A running job's graph: its tasks (chains of operators) left to right by depth, with live
// figures, edges coloured where the producer waits for credit, the bottleneck marked, and a
// virtualised table of the chosen task's subtasks (it stays fast at thousands of subtasks).
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, type CheckpointDetails, type JobLiveView, type SubtaskView, type TaskView } from "../api/client";

const WIDTH = 250;
const HEIGHT = 118;
const GAP_X = 100;
const GAP_Y = 30;

/** The live view of job `id`, polled every second while `running`. */
function useJobLive(id: number, running: boolean) {
  const [view, setView] = useState<JobLiveView>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    if (!running) return;
    let stopped = false;
    const poll = async () => {
      try {
        const next = await api.live(id);
        if (!stopped) {
          setView(next);
          setError(undefined);
        }
      } catch (e) {
        if (!stopped) setError(e instanceof ApiError && e.status === 409 ? undefined : (e as Error).message);
      }
    };
    poll();
    const timer = setInterval(poll, 1000);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [id, running]);
  return { view, error };
}

function rate(perSecond: number): string {
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M/s`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(1)}K/s`;
  return `${perSecond.toFixed(0)}/s`;
}

function percent(share: number): string {
  return `${Math.round(share * 100)}%`;
}

/** Each task's column: its longest distance from a source. */
function depths(view: JobLiveView): number[] {
  const depth = view.tasks.map(() => 0);
  // Tasks are in topological order, so one pass in order settles every depth.
  for (const task of view.tasks) {
    for (const edge of view.edges.filter((e) => e.to === task.id)) depth[task.id] = Math.max(depth[task.id], depth[edge.from] + 1);
  }
  return depth;
}

function Sparkline({ task }: { task: TaskView }) {
  const points = task.history.slice(-60);
  if (points.length < 2) return null;
  const max = Math.max(1, ...points.map((p) => p.records_in_per_s));
  const path = points.map((p, i) => `${(i / (points.length - 1)) * (WIDTH - 20)},${20 - (p.records_in_per_s / max) * 18}`).join(" ");
  return <polyline points={path} fill="none" stroke="#2556c4" stroke-width="1.2" transform={`translate(10, ${HEIGHT - 26})`} />;
}

/** The graph, the bottleneck and the chosen task's subtasks. */
export function JobGraph({ id, running }: { id: number; running: boolean }) {
  const { view, error } = useJobLive(id, running);
  const [chosen, setChosen] = useState<number>();
  if (!running) return <p class="muted">The graph and its live figures show while the job runs.</p>;
  if (error) return <p class="error">{error}</p>;
  if (!view) return <p class="muted">Waiting for the first figures…</p>;
  const depth = depths(view);
  const rows: number[] = [];
  const place = view.tasks.map((task) => {
    const column = depth[task.id];
    const row = rows[column] ?? 0;
    rows[column] = row + 1;
    return { x: 20 + column * (WIDTH + GAP_X), y: 20 + row * (HEIGHT + GAP_Y) };
  });
  const width = 40 + (Math.max(...depth) + 1) * (WIDTH + GAP_X) - GAP_X;
  const height = 40 + Math.max(...rows) * (HEIGHT + GAP_Y) - GAP_Y;
  const bottleneck = view.bottleneck ?? undefined;
  const selected = view.tasks.find((task) => task.id === (chosen ?? bottleneck ?? 0));
  return (
    <div id="job-graph">
      <p class="summary">
        {bottleneck !== undefined ? (
          <span id="bottleneck" class="error">
            Bottleneck: task {bottleneck} ({view.tasks[bottleneck].operators.join(" → ")}): busy {percent(view.tasks[bottleneck].busy)} while the tasks
            feeding it wait for its credit.
          </span>
        ) : (
          <span id="bottleneck" class="muted">No bottleneck: no task waits on another.</span>
        )}
      </p>
      <svg width={width} height={height} class="graph">
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#778" />
          </marker>
        </defs>
        {view.edges.map((edge) => {
          const from = place[edge.from];
          const to = place[edge.to];
          const [x1, y1, x2, y2] = [from.x + WIDTH, from.y + HEIGHT / 2, to.x, to.y + HEIGHT / 2];
          return (
            <g class={`edge${edge.starved ? " starved" : ""}`} data-from={edge.from} data-to={edge.to}>
              <line x1={x1} y1={y1} x2={x2} y2={y2} marker-end="url(#arrow)" />
              <text x={(x1 + x2) / 2} y={(y1 + y2) / 2 - 6} text-anchor="middle">
                {edge.partitioning}
              </text>
              <title>{edge.starved ? `task ${edge.from} waits for task ${edge.to}'s credit` : `${edge.partitioning}: task ${edge.from} to task ${edge.to}`}</title>
            </g>
          );
        })}
        {view.tasks.map((task) => {
          const { x, y } = place[task.id];
          const classes = ["vertex", task.busy >= 0.5 ? "busy" : "", task.backpressured >= 0.5 ? "backpressured" : "", task.id === bottleneck ? "bottleneck" : ""];
          return (
            <g class={classes.join(" ")} transform={`translate(${x}, ${y})`} data-task={task.id} onClick={() => setChosen(task.id)}>
              <rect width={WIDTH} height={HEIGHT} rx="6" />
              <text x="10" y="18" class="title">
                {task.operators.join(" → ").slice(0, 34)}
              </text>
              <text x="10" y="36">
                ×{task.parallelism} · in {rate(task.records_in_per_s)} · out {rate(task.records_out_per_s)}
              </text>
              <text x="10" y="54">
                busy {percent(task.busy)} · backpressured {percent(task.backpressured)}
              </text>
              <text x="10" y="72">
                {task.watermark_lag_ms !== null && task.watermark_lag_ms !== undefined
                  ? `watermark lag ${(task.watermark_lag_ms / 1000).toFixed(1)} s`
                  : task.watermark !== null && task.watermark !== undefined
                    ? `watermark ${(task.watermark / 1000).toFixed(1)} s`
                    : "no watermark"}
                {task.skew ? ` · skew ${task.skew.toFixed(2)}` : ""}
              </text>
              {task.id === bottleneck && (
                <text x={WIDTH - 10} y="18" text-anchor="end" class="mark">
                  BOTTLENECK
                </text>
              )}
              <Sparkline task={task} />
            </g>
          );
        })}
      </svg>
      <p class="legend muted">
        Tasks shaded red are busy; a dashed amber border: backpressured (waiting for credit); a red edge: its producer waits for the
        consumer's credit. Click a task for its subtasks.
      </p>
      {selected && <Subtasks task={selected} />}
      <Checkpoints view={view} />
    </div>
  );
}

function bytes(count: number): string {
  if (count >= 1 << 30) return `${(count / (1 << 30)).toFixed(2)} GiB`;
  if (count >= 1 << 20) return `${(count / (1 << 20)).toFixed(1)} MiB`;
  if (count >= 1 << 10) return `${(count / (1 << 10)).toFixed(1)} KiB`;
  return `${count} B`;
}

/** The checkpoints the masters kept: durations as bars, the newest in a table; a chosen one's
 * subtasks on a timeline. */
function Checkpoints({ view }: { view: JobLiveView }) {
  const checkpoints = view.checkpoints;
  const [chosen, setChosen] = useState<number>();
  if (checkpoints.length === 0) return <p class="muted">No checkpoint completed yet (or the job takes none).</p>;
  const shown = chosen ?? checkpoints[checkpoints.length - 1].id;
  const longest = Math.max(1, ...checkpoints.map((c) => c.duration_ms));
  const bar = 8;
  return (
    <div id="checkpoints">
      <h3>Checkpoints ({checkpoints.length} kept)</h3>
      <svg width={checkpoints.length * (bar + 2) + 10} height={70} class="checkpoint-bars">
        {checkpoints.map((c, i) => {
          const height = Math.max(2, (c.duration_ms / longest) * 60);
          return (
            <rect x={5 + i * (bar + 2)} y={65 - height} width={bar} height={height}>
              <title>{`#${c.id}: ${c.duration_ms} ms, ${bytes(c.state_bytes)} of state, ${bytes(c.written_bytes)} written`}</title>
            </rect>
          );
        })}
      </svg>
      <table>
        <thead>
          <tr><th>id</th><th>attempt</th><th>completed</th><th>duration</th><th>alignment (max)</th><th>snapshot (max)</th><th>state</th><th>written</th></tr>
        </thead>
        <tbody>
          {checkpoints.slice(-8).reverse().map((c) => (
            <tr key={c.id} class={c.id === shown ? "chosen clickable" : "clickable"} data-checkpoint={c.id} onClick={() => setChosen(c.id)}>
              <td>{c.id}</td>
              <td>{c.attempt}</td>
              <td>{new Date(c.completed_at_ms).toLocaleTimeString()}</td>
              <td>{c.duration_ms} ms</td>
              <td>{(c.alignment_max_ms ?? 0).toFixed(1)} ms</td>
              <td>{(c.sync_max_ms ?? 0).toFixed(1)} ms</td>
              <td>{bytes(c.state_bytes)}</td>
              <td>{bytes(c.written_bytes)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <CheckpointTimeline job={view.job} checkpoint={shown} tasks={view.tasks} />
    </div>
  );
}

/** Rows a timeline draws at most: the slowest subtasks. */
const TIMELINE_ROWS = 400;
const TIMELINE_ROW = 14;

/** Checkpoint `checkpoint`'s subtasks on a timeline from its trigger: the barrier on its way
 * (grey), the alignment (orange) and the snapshot (blue), ending at the acknowledgement. */
function CheckpointTimeline({ job, checkpoint, tasks }: { job: number; checkpoint: number; tasks: TaskView[] }) {
  const [details, setDetails] = useState<CheckpointDetails>();
  const [error, setError] = useState<string>();
  useEffect(() => {
    let stopped = false;
    api.checkpoint(job, checkpoint).then(
      (found) => !stopped && (setDetails(found), setError(undefined)),
      (e) => !stopped && (setDetails(undefined), setError((e as Error).message)),
    );
    return () => {
      stopped = true;
    };
  }, [job, checkpoint]);
  if (error) return <p class="muted" id="checkpoint-timeline-missing">Checkpoint {checkpoint}: {error}</p>;
  if (!details || details.checkpoint.id !== checkpoint) return <p class="muted">Loading checkpoint {checkpoint}…</p>;
  const parts = [...details.subtasks].sort((a, b) => b.acknowledged_ms - a.acknowledged_ms).slice(0, TIMELINE_ROWS);
  parts.sort((a, b) => a.task - b.task || a.subtask - b.subtask);
  const end = Math.max(1, details.checkpoint.duration_ms, ...parts.map((part) => part.acknowledged_ms));
  const [label, width] = [170, 560];
  const x = (ms: number) => label + (Math.max(0, ms) / end) * width;
  const name = (task: number) => tasks[task]?.operators[0] ?? `task ${task}`;
  return (
    <div id="checkpoint-timeline">
      <h3>
        Checkpoint {checkpoint}: {details.subtasks.length} subtasks over {end.toFixed(1)} ms
        {details.subtasks.length > parts.length ? ` (the ${parts.length} slowest shown)` : ""}
      </h3>
      <div class="timeline-box">
        <svg width={label + width + 20} height={parts.length * TIMELINE_ROW + 24} class="timeline">
          {parts.map((part, row) => {
            const y = row * TIMELINE_ROW;
            const snapshotAt = part.acknowledged_ms - part.sync_ms;
            const alignedFrom = snapshotAt - part.alignment_ms;
            return (
              <g key={`${part.task}.${part.subtask}`} class="timeline-row">
                <text x={0} y={y + 11}>{`${name(part.task)} #${part.subtask}`.slice(0, 26)}</text>
                <rect class="transit" x={x(0)} y={y + 2} width={Math.max(0, x(alignedFrom) - x(0))} height={10} />
                <rect class="alignment" x={x(alignedFrom)} y={y + 2} width={Math.max(1, x(snapshotAt) - x(alignedFrom))} height={10} />
                <rect class="sync" x={x(snapshotAt)} y={y + 2} width={Math.max(1, x(part.acknowledged_ms) - x(snapshotAt))} height={10} />
                <title>{`task ${part.task} subtask ${part.subtask}: acknowledged at ${part.acknowledged_ms.toFixed(2)} ms, aligned ${part.alignment_ms.toFixed(2)} ms, snapshot ${part.sync_ms.toFixed(2)} ms, ${part.key_groups} key groups`}</title>
              </g>
            );
          })}
          <text x={label} y={parts.length * TIMELINE_ROW + 18}>0 ms</text>
          <text x={label + width} y={parts.length * TIMELINE_ROW + 18} text-anchor="end">{`${end.toFixed(1)} ms`}</text>
        </svg>
      </div>
      <p class="legend">
        <span class="swatch transit" /> barrier on its way <span class="swatch alignment" /> alignment <span class="swatch sync" /> snapshot
      </p>
    </div>
  );
}

const ROW = 28;
const VISIBLE = 12;

/** The subtasks of a task, only the rows in view rendered. */
function Subtasks({ task }: { task: TaskView }) {
  const [top, setTop] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const first = Math.max(0, Math.floor(top / ROW) - 2);
  const shown: SubtaskView[] = task.subtasks.slice(first, first + VISIBLE + 4);
  return (
    <div>
      <h3>
        Task {task.id}: {task.operators.join(" → ")} ({task.subtasks.length} subtasks)
      </h3>
      <div class="subtask-head">
        <span>subtask</span><span>in/s</span><span>out/s</span><span>busy</span><span>backpressured</span><span>watermark</span>
      </div>
      <div id="subtasks" ref={box} class="subtasks" style={{ height: `${Math.min(task.subtasks.length, VISIBLE) * ROW}px` }} onScroll={(e) => setTop(e.currentTarget.scrollTop)}>
        <div style={{ height: `${task.subtasks.length * ROW}px`, position: "relative" }}>
          {shown.map((subtask, i) => (
            <div class="subtask-row" style={{ top: `${(first + i) * ROW}px`, height: `${ROW}px` }}>
              <span>{subtask.subtask}</span>
              <span>{rate(subtask.records_in_per_s)}</span>
              <span>{rate(subtask.records_out_per_s)}</span>
              <span>{percent(subtask.busy)}</span>
              <span>{percent(subtask.backpressured)}</span>
              <span>{subtask.watermark ?? "—"}</span>
            </div>
          ))}
        </div>
      </div>
    </div>
  );
}
