import { useEffect, useRef, useState } from "preact/hooks";
import { api, type JobPreview, type ProgramView, type SubmitJob } from "../api/client";
import { useLive } from "../live";
import { DEPLOY_HANDOFF } from "./Workbench";
import { navigate } from "../router";
import { capacityFor } from "./Job";

/** A SQL job to start from: orders from a generator, totals per 5-second window. */
const EXAMPLE_SQL = `CREATE TABLE orders (
  id BIGINT,
  amount DOUBLE,
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'datagen', 'rows-per-second' = '2000', 'fields.amount.min' = '1', 'fields.amount.max' = '100');

CREATE TABLE totals (window_end TIMESTAMP(3), orders BIGINT, total DOUBLE) WITH ('connector' = 'blackhole');

INSERT INTO totals
SELECT window_end, COUNT(*), SUM(amount)
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND))
GROUP BY window_start, window_end;
`;

/** A program's size for people. */
function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** The programs uploaded to the masters: upload one (its executable), pick one, delete one. */
function Programs({
  programs,
  refresh,
  chosen,
  choose,
}: {
  programs?: ProgramView[];
  refresh: () => Promise<void>;
  chosen: string;
  choose: (id: string) => void;
}) {
  const [busy, setBusy] = useState<string>();
  const [error, setError] = useState<string>();
  const upload = async (file: File | undefined) => {
    if (!file) return;
    setBusy(`Uploading ${file.name} (${megabytes(file.size)})…`);
    setError(undefined);
    try {
      const program = await api.uploadProgram(file);
      await refresh();
      choose(program.id);
    } catch (e) {
      setError((e as Error).message);
    }
    setBusy(undefined);
  };
  const remove = async (id: string) => {
    setError(undefined);
    try {
      await api.deleteProgram(id);
      if (chosen === id) choose("");
      await refresh();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <div id="programs" class="resources">
      <h2>Program</h2>
      <label>
        The program whose job it is
        <select id="program-select" value={chosen} onChange={(e) => choose(e.currentTarget.value)}>
          <option value="">tethys (the cluster's own: bench, digest, sql)</option>
          {programs?.map((program) => (
            <option value={program.id} key={program.id}>
              {program.program} ({program.id.slice(0, 12)}, {megabytes(program.size)})
            </option>
          ))}
        </select>
      </label>
      <label>
        Upload a program (a binary built on the tethys library, for this cluster's machines)
        <input id="program-file" type="file" disabled={busy !== undefined} onChange={(e) => upload(e.currentTarget.files?.[0])} />
      </label>
      {busy && <p id="program-busy">{busy}</p>}
      {error && <pre id="program-error" class="error" role="alert">{error}</pre>}
      {chosen !== "" && (
        <p>
          <button type="button" id="delete-program" onClick={() => remove(chosen)}>
            Delete this program
          </button>{" "}
          <span class="hint">(refused while a job of it runs)</span>
        </p>
      )}
    </div>
  );
}

/** The jobs a program defines, to pick from, with what each takes. */
function ProgramJobs({ program, pick }: { program: ProgramView; pick: (name: string) => void }) {
  return (
    <ul id="program-jobs" class="hint">
      {program.jobs
        .filter((job) => !job.builtin)
        .map((job) => (
          <li key={job.name}>
            <button type="button" class="link" data-job={job.name} onClick={() => pick(job.name)}>
              {job.name}
            </button>
            : {job.about}
          </li>
        ))}
    </ul>
  );
}

/** Deploy a job: its name and arguments in the program (the cluster's own, or an uploaded one),
 * parallelism and options; the resources it takes are shown against the cluster's before
 * anything is submitted. */
export function DeployPage({ copy }: { copy?: number }) {
  const { snapshot } = useLive();
  const source = copy === undefined ? undefined : snapshot?.jobs.find((job) => job.id === copy);
  // A script handed over by the workbench's Deploy button, taken once.
  const [handed] = useState(() => {
    const script = sessionStorage.getItem(DEPLOY_HANDOFF) ?? undefined;
    sessionStorage.removeItem(DEPLOY_HANDOFF);
    return script;
  });
  const copiedSql = source?.name === "sql" ? source.args[0] : handed;
  const [mode, setMode] = useState<"program" | "sql">(copiedSql !== undefined ? "sql" : "program");
  const [sql, setSql] = useState(copiedSql ?? "");
  const [name, setName] = useState(copiedSql === undefined ? (source?.name ?? "") : "");
  const [args, setArgs] = useState(copiedSql === undefined ? (source?.args.join(" ") ?? "") : "");
  const [parallelism, setParallelism] = useState(String(source?.parallelism ?? 1));
  const [slots, setSlots] = useState("");
  const [checkpointMs, setCheckpointMs] = useState("1000");
  const [savepoint, setSavepoint] = useState(source?.last_savepoint ?? "");
  const [program, setProgram] = useState(source?.program ?? "");
  // The uploaded programs, asked once and again after an upload or a deletion.
  const [programs, setPrograms] = useState<ProgramView[]>();
  const [programsError, setProgramsError] = useState<string>();
  const refreshPrograms = () =>
    api.programs().then(
      (list) => (setPrograms(list.programs), setProgramsError(undefined)),
      (e: Error) => setProgramsError(e.message),
    );
  useEffect(() => {
    refreshPrograms();
  }, []);
  const programInfo = programs?.find((entry) => entry.id === program);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [preview, setPreview] = useState<JobPreview>();
  const [previewError, setPreviewError] = useState<string>();
  const asked = useRef(0);

  /** The job as the form describes it. */
  const jobOf = (): SubmitJob => ({
    name: mode === "sql" ? "sql" : name.trim(),
    args: mode === "sql" ? [sql] : args.trim() === "" ? [] : args.trim().split(/\s+/),
    parallelism: Number(parallelism),
    slots: slots === "" ? undefined : Number(slots),
    checkpoint_interval_ms: checkpointMs === "" ? undefined : Number(checkpointMs),
    restore_from: savepoint.trim() === "" ? undefined : savepoint.trim(),
    program: mode === "program" && program !== "" ? program : undefined,
  });
  // What the masters say the job would take, asked again (after a pause) whenever the form changes.
  useEffect(() => {
    const job = jobOf();
    const ready = job.name !== "" && (mode === "program" || sql.trim() !== "") && Number.isInteger(job.parallelism) && (job.parallelism ?? 0) >= 1;
    const ask = ++asked.current;
    if (!ready) {
      setPreview(undefined);
      setPreviewError(undefined);
      return;
    }
    const timer = setTimeout(() => {
      api.previewJob(job).then(
        (answer) => ask === asked.current && (setPreview(answer), setPreviewError(undefined)),
        (e: Error) => ask === asked.current && (setPreview(undefined), setPreviewError(e.message)),
      );
    }, 300);
    return () => clearTimeout(timer);
  }, [mode, name, args, sql, program, parallelism, slots, savepoint]);
  if (!snapshot) return <p>Waiting for the cluster…</p>;

  const p = Number(parallelism);
  const s = slots === "" ? p : Number(slots);
  const interval = checkpointMs === "" ? undefined : Number(checkpointMs);
  const capacity = capacityFor(snapshot.cluster);
  const alive = snapshot.cluster.workers.filter((worker) => worker.alive);
  // Workers filled in order of their free slots, as many as the job's slots need.
  const used: { worker: number; slots: number }[] = [];
  let left = s;
  for (const worker of [...alive].sort((a, b) => b.slots - b.slots_used - (a.slots - a.slots_used))) {
    const take = Math.min(left, worker.slots - worker.slots_used);
    if (take > 0) used.push({ worker: worker.id, slots: take });
    left -= take;
  }
  const problem =
    mode === "program" && name.trim() === ""
      ? "Name the job (a job the program defines, e.g. bench window 30000000 42: name bench, arguments window 30000000 42)."
      : mode === "sql" && sql.trim() === ""
        ? "Write the SQL script: its tables, then one INSERT INTO (or a statement set, or a SELECT)."
      : !Number.isInteger(p) || p < 1
        ? "The parallelism is a whole number, at least 1."
        : !Number.isInteger(s) || s < 1
          ? "The slots are a whole number, at least 1."
          : interval !== undefined && (!Number.isInteger(interval) || interval < 1)
            ? "The checkpoint interval is a whole number of milliseconds, or empty for none."
            : s > capacity
              ? `It needs ${s} slots and the cluster has ${capacity} free.`
              : undefined;

  const deploy = async (event: Event) => {
    event.preventDefault();
    if (problem) return;
    setBusy(true);
    setError(undefined);
    const job = jobOf();
    try {
      const submitted = await api.submit(job);
      navigate(`/jobs/${submitted.job}`);
    } catch (e) {
      setError((e as Error).message);
      setBusy(false);
    }
  };
  return (
    <section>
      <h1>Deploy a job</h1>
      <form class="deploy" onSubmit={deploy}>
        <div class="toolbar" role="radiogroup">
          <label class="inline">
            <input type="radio" id="mode-program" checked={mode === "program"} onChange={() => setMode("program")} /> A job of the program
          </label>
          <label class="inline">
            <input type="radio" id="mode-sql" checked={mode === "sql"} onChange={() => setMode("sql")} /> A SQL job
          </label>
        </div>
        {mode === "program" ? (
          <>
            <Programs programs={programs} refresh={refreshPrograms} chosen={program} choose={setProgram} />
            {programsError && <pre class="error">{programsError}</pre>}
            {programInfo && <ProgramJobs program={programInfo} pick={setName} />}
            <label>Job<input id="deploy-name" value={name} onInput={(e) => setName(e.currentTarget.value)} placeholder="bench" /></label>
            <label>Arguments<input id="deploy-args" value={args} onInput={(e) => setArgs(e.currentTarget.value)} placeholder="window 30000000 42" /></label>
          </>
        ) : (
          <>
            <label>
              SQL script (tables, then one INSERT INTO, statement set or SELECT)
              <textarea id="deploy-sql" rows={12} spellcheck={false} value={sql} onInput={(e) => setSql(e.currentTarget.value)} />
            </label>
            <div class="toolbar">
              <button type="button" id="sql-example" onClick={() => setSql(EXAMPLE_SQL)}>Use the example</button>
              <span class="hint">The masters check the script before they accept it, and name the line and column of what is wrong.</span>
            </div>
          </>
        )}
        <label>Parallelism<input id="deploy-parallelism" type="number" min={1} value={parallelism} onInput={(e) => setParallelism(e.currentTarget.value)} /></label>
        <label>Slots<input id="deploy-slots" type="number" min={1} value={slots} placeholder={`${Number.isInteger(p) ? p : ""} (its parallelism)`} onInput={(e) => setSlots(e.currentTarget.value)} /></label>
        <label>
          Start from savepoint (a directory; empty: from the start)
          <input id="deploy-savepoint" value={savepoint} placeholder="none" onInput={(e) => setSavepoint(e.currentTarget.value)} />
        </label>
        <label>Checkpoint every (ms)<input id="deploy-checkpoint" type="number" min={1} value={checkpointMs} placeholder="none" onInput={(e) => setCheckpointMs(e.currentTarget.value)} /></label>
        <div id="resources" class="resources">
          <h2>Resources</h2>
          <p>
            Slots: <strong>{Number.isInteger(s) ? s : "?"}</strong> of {capacity} free on {alive.length} live worker{alive.length === 1 ? "" : "s"}.
          </p>
          {problem === undefined && (
            <p>
              Workers used:{" "}
              {(preview?.fits ? preview.workers.map((share) => ({ worker: share.worker, slots: share.slots })) : used)
                .map((entry) => `worker ${entry.worker} (${entry.slots} slot${entry.slots === 1 ? "" : "s"})`)
                .join(", ")}
              .
            </p>
          )}
          {problem === undefined && preview && (
            <>
              <p id="preview-tasks">
                Tasks: {preview.tasks.map((task) => `${task.operators.join(" → ")} ×${task.parallelism}`).join("; ")}
              </p>
              <p id="preview-memory">
                Memory: about <strong>{megabytes(preview.memory_bytes)}</strong> (input buffers at most {megabytes(preview.buffer_bytes)}
                {preview.state_bytes != null ? `, state ${megabytes(preview.state_bytes)} from the savepoint` : ", state grows as it runs"}).
              </p>
            </>
          )}
          {problem === undefined && previewError && (
            <pre id="preview-error" class="error">
              The masters would refuse it: {previewError}
            </pre>
          )}
          {problem && <p class="error" id="deploy-problem">{problem}</p>}
        </div>
        {error && <pre id="deploy-error" class="error" role="alert">{error}</pre>}
        <button id="deploy" type="submit" disabled={busy || problem !== undefined}>Deploy</button>
      </form>
    </section>
  );
}
