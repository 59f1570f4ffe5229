// A running job's live results: its sinks' sampled rows, streamed over SSE
// (/api/jobs/{id}/output/stream), in a virtualised table and as a live chart of one column over
// event time (or over the time rows were written), as a line or as bars.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { JobOutputView, OutputRow, SinkOutputView } from "../api/client";
import { clock } from "../format";
import { href } from "../router";

/** Rows kept in the page per sink (the newest). */
const ROWS_MAX = 5000;
/** The table's row height in pixels (fixed, so only the rows in view are drawn). */
const ROW_HEIGHT = 24;
/** The table's height in pixels. */
const TABLE_HEIGHT = 360;
/** Bars drawn at most (the newest). */
const BARS_MAX = 60;
const CHART = { width: 720, height: 220, left: 56, right: 12, top: 12, bottom: 28 };

interface SinkRows {
  sink: string;
  columns: string[];
  types: string[];
  written: number;
  sampled: number;
  rows: OutputRow[];
}

type Connection = "connecting" | "live" | "reconnecting";

const isNumeric = (type: string) => /^(TINYINT|SMALLINT|INT|INTEGER|BIGINT|FLOAT|DOUBLE|REAL|DECIMAL)\b/.test(type);
const isTime = (type: string) => /^(TIMESTAMP|DATE)\b/.test(type);

/** A time value as the API writes it (`2026-11-30 21:00:00.000` or `2026-11-30`, UTC) in milliseconds. */
function timeOf(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const text = /^\d{4}-\d\d-\d\d$/.test(value) ? `${value}T00:00:00` : value.replace(" ", "T");
  const ms = Date.parse(text + (/[zZ]|[+-]\d\d:?\d\d$/.test(text) ? "" : "Z"));
  return Number.isNaN(ms) ? undefined : ms;
}

function numberOf(value: unknown): number | undefined {
  const n = typeof value === "number" ? value : typeof value === "string" ? Number(value) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

function show(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  return typeof value === "string" ? value : JSON.stringify(value);
}

interface Kept {
  /** The numbering the rows are in (another leader's starts over). */
  epoch?: number;
  sinks: Map<string, SinkRows>;
}

/** Takes in a `rows` event: new rows appended (each once), the newest `ROWS_MAX` kept; rows of
 * another numbering (a new leader's) replace those kept. */
function merge(kept: Kept, view: JobOutputView): Kept {
  const next = new Map(kept.epoch === view.epoch ? kept.sinks : []);
  for (const sink of view.sinks as SinkOutputView[]) {
    const before = next.get(sink.sink);
    const last = before?.rows[before.rows.length - 1]?.n ?? 0;
    const rows = !before ? [...sink.rows] : [...before.rows, ...sink.rows.filter((row) => row.n > last)];
    next.set(sink.sink, {
      sink: sink.sink,
      columns: sink.columns,
      types: sink.types,
      written: sink.written,
      sampled: sink.sampled,
      rows: rows.slice(Math.max(0, rows.length - ROWS_MAX)),
    });
  }
  return { epoch: view.epoch, sinks: next };
}

/** The rows of a sink, streamed while the page is open. */
function useOutput(id: number) {
  const [kept, setKept] = useState<Kept>({ sinks: new Map() });
  const [connection, setConnection] = useState<Connection>("connecting");
  const [error, setError] = useState<string>();
  useEffect(() => {
    const source = new EventSource(`/api/jobs/${id}/output/stream`, { withCredentials: true });
    source.addEventListener("rows", (event) => {
      const view = JSON.parse((event as MessageEvent<string>).data) as JobOutputView;
      setConnection("live");
      setError(undefined);
      setKept((before) => merge(before, view));
    });
    source.addEventListener("error", (event) => {
      const data = (event as MessageEvent<string>).data;
      if (data) setError((JSON.parse(data) as { error: string }).error);
      else setConnection("reconnecting");
    });
    return () => source.close();
  }, [id]);
  return { sinks: kept.sinks, connection, error };
}

/** Only the rows in view are drawn: the table stays fast with thousands of rows. */
function RowsTable({ sink }: { sink: SinkRows }) {
  const [scrollTop, setScrollTop] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const newestFirst = useMemo(() => [...sink.rows].reverse(), [sink.rows]);
  // Rows come in at the top: a reader scrolled down keeps the rows in view where they are.
  const shownNewest = useRef(newestFirst[0]?.n);
  useEffect(() => {
    const before = shownNewest.current;
    shownNewest.current = newestFirst[0]?.n;
    const element = box.current;
    if (!element || before === undefined || element.scrollTop === 0) return;
    const added = newestFirst.findIndex((row) => row.n === before);
    if (added > 0) element.scrollTop += added * ROW_HEIGHT;
  }, [newestFirst]);
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - 5);
  const count = Math.ceil(TABLE_HEIGHT / ROW_HEIGHT) + 10;
  const shown = newestFirst.slice(first, first + count);
  return (
    <div id="results-table" ref={box} class="virtual" style={{ height: `${TABLE_HEIGHT}px` }} onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}>
      <div style={{ height: `${(newestFirst.length + 1) * ROW_HEIGHT}px`, position: "relative" }}>
        <table style={{ position: "absolute", top: `${first * ROW_HEIGHT}px`, width: "100%" }}>
          <thead>
            <tr style={{ height: `${ROW_HEIGHT}px` }}><th>written</th><th>subtask</th><th>op</th>{sink.columns.map((column) => <th>{column}</th>)}</tr>
          </thead>
          <tbody>
            {shown.map((row) => (
              <tr key={row.n} class={row.op === "+I" || row.op === "+U" ? "row-add" : "row-retract"} style={{ height: `${ROW_HEIGHT}px` }}>
                <td class="muted">{clock(row.written_at_ms)}</td>
                <td class="muted">{row.subtask}</td>
                <td>{row.op}</td>
                {row.values.map((value) => <td>{show(value)}</td>)}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

interface Point {
  x: number;
  y: number;
}

/** The chart's points: column `y` over `x` (a time column, or when the row was written) of
 * the rows that add (`+I`, `+U`); as bars, one per distinct x, the sum of y there. */
function points(sink: SinkRows, x: string, y: string, kind: "line" | "bar"): Point[] {
  const yAt = sink.columns.indexOf(y);
  const xAt = sink.columns.indexOf(x);
  const raw: Point[] = [];
  for (const row of sink.rows) {
    if (row.op !== "+I" && row.op !== "+U") continue;
    const yValue = numberOf(row.values[yAt]);
    const xValue = xAt < 0 ? row.written_at_ms : timeOf(row.values[xAt]);
    if (yValue !== undefined && xValue !== undefined) raw.push({ x: xValue, y: yValue });
  }
  raw.sort((a, b) => a.x - b.x);
  if (kind === "line") return raw;
  const sums = new Map<number, number>();
  for (const point of raw) sums.set(point.x, (sums.get(point.x) ?? 0) + point.y);
  return [...sums.entries()].map(([px, py]) => ({ x: px, y: py })).slice(-BARS_MAX);
}

function Chart({ data, kind, label }: { data: Point[]; kind: "line" | "bar"; label: string }) {
  const { width, height, left, right, top, bottom } = CHART;
  if (data.length === 0) return <p id="results-chart-empty" class="muted">No numeric values to chart yet.</p>;
  const xs = data.map((p) => p.x);
  const ys = data.map((p) => p.y);
  const [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  const [yMin, yMax] = [Math.min(0, ...ys), Math.max(0, ...ys)];
  const sx = (x: number) => left + (xMax === xMin ? 0.5 : (x - xMin) / (xMax - xMin)) * (width - left - right);
  const sy = (y: number) => top + (yMax === yMin ? 0.5 : 1 - (y - yMin) / (yMax - yMin)) * (height - top - bottom);
  // Bars stand in bands of equal width, in x's order (one per distinct x).
  const band = (width - left - right) / data.length;
  const barWidth = Math.max(1, Math.min(band - 2, 40));
  return (
    <svg id="results-chart" data-points={data.length} data-last-x={xMax} width={width} height={height} role="img" aria-label={label}>
      <line class="axis" x1={left} y1={height - bottom} x2={width - right} y2={height - bottom} />
      <line class="axis" x1={left} y1={top} x2={left} y2={height - bottom} />
      <text class="tick" x={left - 4} y={top + 8} text-anchor="end">{yMax.toPrecision(4)}</text>
      <text class="tick" x={left - 4} y={height - bottom} text-anchor="end">{yMin.toPrecision(4)}</text>
      <text class="tick" x={left} y={height - 8}>{clock(xMin)}</text>
      <text class="tick" x={width - right} y={height - 8} text-anchor="end">{clock(xMax)}</text>
      {kind === "line" ? (
        <>
          <polyline class="series" fill="none" points={data.map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ")} />
          {data.length <= 60 && data.map((p) => <circle class="point" cx={sx(p.x)} cy={sy(p.y)} r={2.5}><title>{`${clock(p.x)}: ${p.y}`}</title></circle>)}
        </>
      ) : (
        data.map((p, i) => (
          <rect class="bar" x={left + (i + 0.5) * band - barWidth / 2} y={Math.min(sy(p.y), sy(0))} width={barWidth} height={Math.abs(sy(0) - sy(p.y))}>
            <title>{`${clock(p.x)}: ${p.y}`}</title>
          </rect>
        ))
      )}
    </svg>
  );
}

/** Job `id`'s live results. */
export function ResultsPage({ id }: { id: number }) {
  const { sinks, connection, error } = useOutput(id);
  const [chosen, setChosen] = useState<string>();
  const [yColumn, setYColumn] = useState<string>();
  const [xColumn, setXColumn] = useState<string>();
  const [kind, setKind] = useState<"line" | "bar">("line");
  const names = [...sinks.keys()];
  const sink = sinks.get(chosen ?? names[0] ?? "");
  const numeric = sink ? sink.columns.filter((_, i) => isNumeric(sink.types[i])) : [];
  const times = sink ? sink.columns.filter((_, i) => isTime(sink.types[i])) : [];
  const y = yColumn && numeric.includes(yColumn) ? yColumn : numeric[0];
  // Over event time by default when the sink has a time column; "" is when rows were written.
  const x = xColumn !== undefined && (xColumn === "" || times.includes(xColumn)) ? xColumn : (times[0] ?? "");
  const data = useMemo(() => (sink && y ? points(sink, x, y, kind) : []), [sink, x, y, kind]);
  const firstSeen = useRef(Date.now());
  return (
    <section>
      <div class="toolbar">
        <h1>Job {id}: live results</h1>
        <span id="results-connection" class={`connection ${connection}`}>{connection}</span>
        <a {...href(`/jobs/${id}`)}>the job</a>
      </div>
      {error && <p class="error">{error}</p>}
      {!sink ? (
        <p class="muted">
          {connection === "live"
            ? `No sampled rows yet (waiting since ${clock(firstSeen.current)}). A SQL job's sinks sample what they write, up to 50 rows a second per subtask.`
            : "Connecting…"}
        </p>
      ) : (
        <>
          <div class="toolbar">
            {names.length > 1 && (
              <label>
                Sink
                <select id="results-sink" value={sink.sink} onChange={(e) => setChosen(e.currentTarget.value)}>
                  {names.map((name) => <option value={name}>{name}</option>)}
                </select>
              </label>
            )}
            <span id="results-counts" class="muted">
              {sink.sink}: {sink.written} rows written, {sink.sampled} sampled, {sink.rows.length} here
            </span>
          </div>
          <h2>Chart</h2>
          {numeric.length === 0 ? (
            <p class="muted">The sink has no numeric column to chart.</p>
          ) : (
            <>
              <div class="toolbar">
                <label>
                  Column
                  <select id="chart-column" value={y} onChange={(e) => setYColumn(e.currentTarget.value)}>
                    {numeric.map((column) => <option value={column}>{column}</option>)}
                  </select>
                </label>
                <label>
                  over
                  <select id="chart-over" value={x} onChange={(e) => setXColumn(e.currentTarget.value)}>
                    {times.map((column) => <option value={column}>{column} (event time)</option>)}
                    <option value="">when written</option>
                  </select>
                </label>
                <label>
                  as
                  <select id="chart-kind" value={kind} onChange={(e) => setKind(e.currentTarget.value as "line" | "bar")}>
                    <option value="line">line</option>
                    <option value="bar">bars</option>
                  </select>
                </label>
              </div>
              <Chart data={data} kind={kind} label={`${y} over ${x || "time written"}`} />
            </>
          )}
          <h2>Rows (newest first)</h2>
          <RowsTable sink={sink} />
        </>
      )}
    </section>
  );
}
