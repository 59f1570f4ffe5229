// A worker's recent log, searched on the server (text and level): the newest matching lines,
// followed every two seconds while "follow" is on.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, type LogLineView } from "../api/client";
import { useLive } from "../live";
import { navigate } from "../router";

const LEVELS = ["", "error", "warn", "info", "debug"];
/** Lines shown at most: older ones leave the table as new ones come. */
const SHOWN = 2000;

export function LogsPage({ worker, q }: { worker: string | null; q: string }) {
  const { snapshot } = useLive();
  const workers = snapshot?.cluster.workers ?? [];
  const chosen = worker === null ? workers[0]?.id : Number(worker);
  const [text, setText] = useState(q);
  const [search, setSearch] = useState(q);
  const [level, setLevel] = useState("");
  const [follow, setFollow] = useState(true);
  const [lines, setLines] = useState<LogLineView[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [kept, setKept] = useState(true);
  const next = useRef(0);

  // A new search starts over; following asks only for lines after the last one seen.
  useEffect(() => {
    if (chosen === undefined) return;
    let stopped = false;
    next.current = 0;
    setLines([]);
    const fetchLines = async () => {
      try {
        const after = next.current > 0 ? next.current - 1 : undefined;
        const view = await api.logs(chosen, { q: search, level, after, limit: after === undefined ? 500 : SHOWN });
        if (stopped) return;
        next.current = view.next_seq;
        setKept(view.kept);
        setError(null);
        if (view.lines.length > 0) setLines((old) => [...old, ...view.lines].slice(-SHOWN));
      } catch (caught) {
        if (!stopped) setError(caught instanceof ApiError ? `${caught.status} ${caught.message}` : String(caught));
      }
    };
    void fetchLines();
    const timer = follow ? setInterval(fetchLines, 2000) : undefined;
    return () => {
      stopped = true;
      if (timer !== undefined) clearInterval(timer);
    };
  }, [chosen, search, level, follow]);

  const pick = (id: string) => navigate(`/logs?worker=${id}${search ? `&q=${encodeURIComponent(search)}` : ""}`);
  return (
    <section>
      <h1>Logs</h1>
      <form
        class="toolbar"
        onSubmit={(event) => {
          event.preventDefault();
          setSearch(text.trim());
        }}
      >
        <label>
          worker{" "}
          <select id="log-worker" value={chosen === undefined ? "" : String(chosen)} onChange={(event) => pick(event.currentTarget.value)}>
            {workers.map((candidate) => (
              <option key={candidate.id} value={String(candidate.id)}>
                worker {candidate.id} ({candidate.control_addr}){candidate.alive ? "" : " — lost"}
              </option>
            ))}
          </select>
        </label>
        <input id="log-search" placeholder="search: text, module, job=3…" value={text} onInput={(event) => setText(event.currentTarget.value)} />
        <select id="log-level" value={level} onChange={(event) => setLevel(event.currentTarget.value)}>
          {LEVELS.map((name) => (
            <option key={name} value={name}>{name === "" ? "every level" : `${name} and worse`}</option>
          ))}
        </select>
        <button type="submit">Search</button>
        <label>
          <input type="checkbox" checked={follow} onChange={(event) => setFollow(event.currentTarget.checked)} /> follow
        </label>
      </form>
      {chosen === undefined && <p>No worker has registered yet.</p>}
      {error && <p class="error" id="log-error">{error}</p>}
      {!kept && <p>This worker's process keeps no log.</p>}
      <p class="summary" id="log-count">
        {lines.length} line{lines.length === 1 ? "" : "s"}
        {search ? ` holding “${search}”` : ""}
        {chosen === undefined ? "" : ` from worker ${chosen}`}
      </p>
      <table id="logs" class="logs">
        <thead>
          <tr><th>time</th><th>level</th><th>module</th><th>message</th></tr>
        </thead>
        <tbody>
          {lines.map((line) => (
            <tr key={line.seq} class={`level-${line.level.toLowerCase()}`}>
              <td class="time">{new Date(line.time_ms).toLocaleTimeString()}</td>
              <td>{line.level}</td>
              <td class="target">{line.target}</td>
              <td>
                {line.message}
                {line.fields && <span class="fields"> {line.fields}</span>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
