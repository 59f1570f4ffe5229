// The SQL workbench: an editor (CodeMirror 6) checked as you type by the server (problems
// underlined at their line and column, "did you mean" fixes), completed by the server (ranked
// there), formatted in one click; the script's plan and job graph; a catalog of its tables and
// every function; test runs on generated, uploaded, typed or live-sampled rows with each sink's rows beside
// the expected ones; and deploy with one click.
import { autocompletion, type CompletionContext, type CompletionResult } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { sql, SQLDialect, StandardSQL } from "@codemirror/lang-sql";
import { bracketMatching, syntaxHighlighting, defaultHighlightStyle } from "@codemirror/language";
import { type Diagnostic, linter, lintGutter } from "@codemirror/lint";
import { EditorState } from "@codemirror/state";
import { EditorView, keymap, lineNumbers, highlightActiveLine } from "@codemirror/view";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  api,
  ApiError,
  type SqlCheckView,
  type SqlExplainView,
  type SqlFunctionView,
  type SqlTableView,
  type TestRunView,
  type DraftDiffView,
  type DraftView,
} from "../api/client";
import { navigate } from "../router";
import { autoLayout, CANVAS_STORED } from "./Canvas";
import { ORDERS_TABLE } from "../examples";
import { InputEditor, inputAsk, newInput, type InputForm } from "../inputs";

/** Flink SQL's words beyond standard SQL, highlighted as keywords. */
const FLINK_WORDS =
  "watermark tumble hop cumulate session descriptor temporary enforced statement set execute explain describe show " +
  "tables functions views if exists partitioned comment options proctime rowtime timestampadd timestampdiff lateral " +
  "unnest match_recognize within qualify over preceding following unbounded current row rows range";
const TETHYS = SQLDialect.define({
  ...StandardSQL.spec,
  keywords: `${StandardSQL.spec.keywords ?? ""} ${FLINK_WORDS}`,
  types: `${StandardSQL.spec.types ?? ""} string bytes timestamp_ltz map array row multiset tinyint`,
});

export const WORKBENCH_EXAMPLE = `-- Orders per customer in windows of five seconds.
${ORDERS_TABLE}
CREATE TABLE per_window (
  window_start TIMESTAMP(3),
  customer STRING,
  orders BIGINT,
  amount DECIMAL(38, 2)
) WITH ('connector' = 'print');

INSERT INTO per_window
SELECT window_start, customer, COUNT(*), SUM(amount)
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND))
GROUP BY window_start, window_end, customer;
`;

const STORED = "tethys.workbench.script";
const DRAFT_NAME = "tethys.workbench.draft";
/** Where the workbench hands a script to the deploy page. */
export const DEPLOY_HANDOFF = "tethys.workbench.deploy";

/** The offset of 1-based `line` and `column` in `state`'s text (clamped to it). */
function offset(state: EditorState, line: number, column: number): number {
  const at = state.doc.line(Math.min(Math.max(1, line), state.doc.lines));
  return Math.min(at.from + Math.max(0, column - 1), at.to);
}

/** The problems the server finds, as the editor's diagnostics (with a fix when one is known). */
async function diagnose(view: EditorView, onChecked: (check: SqlCheckView) => void): Promise<Diagnostic[]> {
  const script = view.state.doc.toString();
  let check: SqlCheckView;
  try {
    check = await api.sqlCheck({ script });
  } catch {
    return [];
  }
  if (view.state.doc.toString() !== script) return [];
  onChecked(check);
  return check.problems.map((problem) => {
    const from = problem.line ? offset(view.state, problem.line, problem.column ?? 1) : 0;
    const word = view.state.wordAt(from);
    const to = word && word.from === from ? word.to : Math.min(view.state.doc.length, from + 1);
    const fix = problem.fix;
    return {
      from,
      to: Math.max(to, from),
      severity: "error" as const,
      message: problem.message,
      actions: fix
        ? [
            {
              name: `Use ${fix}`,
              apply: (target: EditorView, start: number, end: number) => target.dispatch({ changes: { from: start, to: end, insert: fix } }),
            },
          ]
        : [],
    };
  });
}

/** What may be typed at the cursor, as the server ranks it. */
async function completeAt(context: CompletionContext): Promise<CompletionResult | null> {
  const word = context.matchBefore(/[\w$]*/);
  if (!context.explicit && (!word || word.from === word.to)) return null;
  const line = context.state.doc.lineAt(context.pos);
  try {
    const { items } = await api.sqlComplete({ script: context.state.doc.toString(), line: line.number, column: context.pos - line.from + 1 });
    return {
      from: word ? word.from : context.pos,
      filter: false,
      options: items.map((item, rank) => ({
        label: item.label,
        type: item.kind === "column" ? "property" : item.kind === "table" ? "class" : item.kind,
        detail: item.detail,
        info: item.documentation || undefined,
        boost: 99 - Math.min(rank, 198),
      })),
    };
  } catch {
    return null;
  }
}

interface ExpectedForm {
  rows: string;
  compare: string;
}

const SINKS = new Set(["print", "blackhole"]);
export function WorkbenchPage() {
  const host = useRef<HTMLDivElement>(null);
  const editor = useRef<EditorView>();
  const [check, setCheck] = useState<SqlCheckView>();
  const [functions, setFunctions] = useState<SqlFunctionView[]>([]);
  const [functionFilter, setFunctionFilter] = useState("");
  const [explained, setExplained] = useState<SqlExplainView>();
  const [message, setMessage] = useState<{ ok: boolean; text: string }>();
  const [inputs, setInputs] = useState<Record<string, InputForm>>({});
  const [expected, setExpected] = useState<Record<string, ExpectedForm>>({});
  const [run, setRun] = useState<TestRunView>();
  const [running, setRunning] = useState(false);
  const [drafts, setDrafts] = useState<DraftView[]>([]);
  const [draftName, setDraftName] = useState(localStorage.getItem(DRAFT_NAME) ?? "");
  const [note, setNote] = useState("");
  const [diff, setDiff] = useState<DraftDiffView>();

  const script = () => editor.current?.state.doc.toString() ?? "";
  const replaceScript = (text: string) => {
    const view = editor.current;
    if (view) view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
  };

  const format = async () => {
    try {
      replaceScript((await api.sqlFormat({ script: script() })).script);
      setMessage({ ok: true, text: "formatted" });
    } catch (error) {
      setMessage({ ok: false, text: (error as Error).message });
    }
  };

  const testRun = async () => {
    setRunning(true);
    setMessage(undefined);
    try {
      const view = await api.testRun({
        script: script(),
        inputs: Object.fromEntries(Object.entries(inputs).map(([table, form]) => [table, inputAsk(form)])),
        expected: Object.fromEntries(
          Object.entries(expected)
            .filter(([, form]) => form.rows.trim() !== "")
            .map(([sink, form]) => [sink, { rows: form.rows, compare: form.compare }]),
        ),
      });
      setRun(view);
      setMessage({ ok: view.passed, text: view.passed ? `test run passed in ${view.took_ms} ms` : `test run differs from what is expected (${view.took_ms} ms)` });
    } catch (error) {
      setRun(undefined);
      setMessage({ ok: false, text: error instanceof ApiError ? `${error.status}: ${error.message}` : String(error) });
    } finally {
      setRunning(false);
    }
  };

  const refreshDrafts = () => api.drafts().then((list) => setDrafts(list.drafts), () => {});
  const testCase = () => JSON.stringify({ inputs, expected });
  const saveDraft = async () => {
    const name = draftName.trim();
    if (name === "") {
      setMessage({ ok: false, text: "Name the draft first." });
      return;
    }
    try {
      const saved = await api.saveDraft(name, { script: script(), test_case: testCase(), note: note.trim() || undefined });
      localStorage.setItem(DRAFT_NAME, name);
      setNote("");
      setMessage({ ok: true, text: `saved ${saved.name} as version ${saved.version}` });
      await refreshDrafts();
    } catch (error) {
      setMessage({ ok: false, text: (error as Error).message });
    }
  };
  const openDraft = async (name: string, version?: number) => {
    try {
      const found = await api.draft(name, version);
      replaceScript(found.script ?? "");
      if (found.test_case) {
        const saved = JSON.parse(found.test_case) as { inputs?: Record<string, InputForm>; expected?: Record<string, ExpectedForm> };
        if (saved.inputs) setInputs(saved.inputs);
        if (saved.expected) setExpected(saved.expected);
      }
      setDraftName(found.name);
      localStorage.setItem(DRAFT_NAME, found.name);
      setDiff(undefined);
      setMessage({ ok: true, text: `opened ${found.name} version ${found.version}` });
    } catch (error) {
      setMessage({ ok: false, text: (error as Error).message });
    }
  };

  const handlers = useRef({ format, testRun, saveDraft });
  handlers.current = { format, testRun, saveDraft };

  useEffect(() => {
    if (!host.current) return;
    const view = new EditorView({
      parent: host.current,
      state: EditorState.create({
        doc: localStorage.getItem(STORED) ?? WORKBENCH_EXAMPLE,
        extensions: [
          lineNumbers(),
          history(),
          bracketMatching(),
          highlightActiveLine(),
          syntaxHighlighting(defaultHighlightStyle),
          sql({ dialect: TETHYS, upperCaseKeywords: true }),
          // The server's completions only: it ranks columns, tables, functions and keywords in scope.
          autocompletion({ override: [completeAt], activateOnTyping: true }),
          linter((target) => diagnose(target, setCheck), { delay: 400 }),
          lintGutter(),
          keymap.of([
            { key: "Mod-Enter", run: () => (void handlers.current.testRun(), true) },
            { key: "Mod-s", preventDefault: true, run: () => (void handlers.current.saveDraft(), true) },
            { key: "Shift-Alt-f", run: () => (void handlers.current.format(), true) },
            indentWithTab,
            ...defaultKeymap,
            ...historyKeymap,
          ]),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) localStorage.setItem(STORED, update.state.doc.toString());
          }),
        ],
      }),
    });
    editor.current = view;
    api.sqlFunctions().then((list) => setFunctions(list.functions), () => {});
    void refreshDrafts();
    return () => view.destroy();
  }, []);

  const tables = check?.tables ?? [];
  const sources = tables.filter((table) => !SINKS.has(table.connector ?? ""));
  const sinks = tables.filter((table) => table.connector !== undefined && table.connector !== null && (SINKS.has(table.connector) || table.connector === "filesystem" || table.connector === "topic"));
  // Every source table gets an input form, every sink an expected form, as the script names them.
  useEffect(() => {
    setInputs((old) => Object.fromEntries(sources.map((table) => [table.name, old[table.name] ?? newInput()])));
    setExpected((old) => Object.fromEntries(sinks.map((table) => [table.name, old[table.name] ?? { rows: "", compare: "sorted" }])));
  }, [tables.map((table) => `${table.name}:${table.connector}`).join(",")]);

  const shownFunctions = useMemo(
    () => functions.filter((f) => f.name.toLowerCase().includes(functionFilter.toLowerCase())).slice(0, 60),
    [functions, functionFilter],
  );

  return (
    <section class="workbench">
      <h1>SQL workbench</h1>
      <div class="toolbar">
        <button id="wb-format" onClick={format} title="Shift-Alt-F">Format</button>
        <button id="wb-explain" onClick={async () => {
          try {
            setExplained(await api.sqlExplain({ script: script() }));
            setMessage(undefined);
          } catch (error) {
            setExplained(undefined);
            setMessage({ ok: false, text: (error as Error).message });
          }
        }}>Explain</button>
        <button id="wb-run" onClick={testRun} disabled={running} title="Ctrl-Enter">{running ? "Running…" : "Test run"}</button>
        <button id="wb-canvas" onClick={async () => {
          try {
            const spec = await api.canvasFromSql({ script: script() });
            localStorage.setItem(CANVAS_STORED, JSON.stringify(autoLayout(spec)));
            navigate("/canvas");
          } catch (error) {
            setMessage({ ok: false, text: (error as Error).message });
          }
        }}>Open as canvas</button>
        <button id="wb-deploy" onClick={() => {
          sessionStorage.setItem(DEPLOY_HANDOFF, script());
          navigate("/deploy?from=workbench");
        }}>Deploy…</button>
        <span id="wb-status" class={check?.ok === false ? "error" : "outcome"}>
          {check === undefined ? "" : check.ok ? "no problems" : `${check.problems.length} problem${check.problems.length === 1 ? "" : "s"}`}
        </span>
      </div>
      <div class="toolbar drafts">
        <label class="inline">draft <input id="draft-name" value={draftName} placeholder="name" onInput={(e) => setDraftName(e.currentTarget.value)} /></label>
        <input id="draft-note" value={note} placeholder="what changed (optional)" onInput={(e) => setNote(e.currentTarget.value)} />
        <button id="draft-save" onClick={saveDraft} title="Ctrl-S">Save version</button>
        <select id="draft-open" value="" onChange={(e) => e.currentTarget.value && void openDraft(e.currentTarget.value)}>
          <option value="">open a draft…</option>
          {drafts.map((draft) => <option key={draft.name} value={draft.name}>{draft.name} ({draft.versions.length} version{draft.versions.length === 1 ? "" : "s"})</option>)}
        </select>
        <DraftVersions draft={drafts.find((draft) => draft.name === draftName.trim())} onOpen={(version) => openDraft(draftName.trim(), version)} onDiff={async (from) => {
          try {
            setDiff(await api.draftDiff(draftName.trim(), from));
          } catch (error) {
            setMessage({ ok: false, text: (error as Error).message });
          }
        }} />
      </div>
      {message && <pre id="wb-message" class={message.ok ? "outcome" : "error"}>{message.text}</pre>}
      {diff && <DraftDiff diff={diff} onClose={() => setDiff(undefined)} />}
      <div class="workbench-main">
        <div id="editor" class="editor" ref={host} />
        <aside class="catalog" id="catalog">
          <h3>Tables</h3>
          {tables.length === 0 && <p class="muted">None defined yet.</p>}
          {tables.map((table) => <TableEntry key={table.name} table={table} />)}
          <h3>Functions</h3>
          <input id="function-filter" placeholder="filter" value={functionFilter} onInput={(e) => setFunctionFilter(e.currentTarget.value)} />
          <ul class="functions">
            {shownFunctions.map((f) => (
              <li key={f.name} title={`${f.description}${f.example ? `\n${f.example}` : ""}`}>
                <code>{f.signature}</code>
              </li>
            ))}
          </ul>
        </aside>
      </div>
      {explained && <Explained view={explained} />}
      <h2>Test run</h2>
      <p class="muted">Never writes to the real sinks: each source table reads the input below, each insert is captured.</p>
      <div class="test-inputs">
        {Object.entries(inputs).map(([table, form]) => (
          <InputEditor key={table} table={table} form={form} columns={tables.find((t) => t.name === table)?.columns.map((c) => c.name) ?? []} topic={tables.find((t) => t.name === table)?.connector === "topic"} onChange={(next) => setInputs({ ...inputs, [table]: next })} />
        ))}
        {Object.entries(expected).map(([sink, form]) => (
          <fieldset key={sink} class="expected" data-sink={sink}>
            <legend>Expected of {sink}</legend>
            <label>
              compare{" "}
              <select class="expected-compare" value={form.compare} onChange={(e) => setExpected({ ...expected, [sink]: { ...form, compare: e.currentTarget.value } })}>
                <option value="changelog">as a changelog, in order</option>
                <option value="sorted">sorted</option>
                <option value="final">by what it adds up to</option>
              </select>
            </label>
            <textarea class="expected-rows" rows={6} spellcheck={false} placeholder="+I[2026-01-01 00:00:00.000, alice, 2, 17.25]" value={form.rows} onInput={(e) => setExpected({ ...expected, [sink]: { ...form, rows: e.currentTarget.value } })} />
            <label class="upload">
              or upload{" "}
              <input type="file" class="expected-file" onChange={async (e) => {
                const file = e.currentTarget.files?.[0];
                if (file) setExpected({ ...expected, [sink]: { ...form, rows: await file.text() } });
              }} />
            </label>
          </fieldset>
        ))}
      </div>
      {run && <RunResults run={run} />}
    </section>
  );
}

function TableEntry({ table }: { table: SqlTableView }) {
  return (
    <details class="table-entry" open>
      <summary>
        <b>{table.name}</b> <span class="muted">{table.connector ?? "no connector"}</span>
      </summary>
      <ul>
        {table.columns.map((column) => (
          <li key={column.name}>
            {column.name} <span class="muted">{column.data_type}</span>
            {table.event_time === column.name && <span class="badge running">event time</span>}
          </li>
        ))}
      </ul>
    </details>
  );
}

function RunResults({ run }: { run: TestRunView }) {
  return (
    <div id="run-results">
      {Object.entries(run.outputs).map(([sink, rows]) => {
        const diff = run.diffs[sink];
        return (
          <div key={sink} class="sink-result" data-sink={sink}>
            <h3>
              {sink}: {rows.length} row{rows.length === 1 ? "" : "s"}
              {diff && (diff.passed ? <span class="badge running">as expected</span> : <span class="badge failed">differs</span>)}
            </h3>
            {diff ? (
              <DiffTable
                head={["expected line", "produced row", "row"]}
                rows={diff.rows.map((row) => ({ change: row.status as DiffChange, left: row.expected_line, right: row.produced_line, text: row.row }))}
              />
            ) : (
              <pre class="rows-out">{rows.slice(0, 500).join("\n")}{rows.length > 500 ? `\n… ${rows.length - 500} more` : ""}</pre>
            )}
          </div>
        );
      })}
    </div>
  );
}

/** The plan and the job graph, its operators left to right by depth. */
function Explained({ view }: { view: SqlExplainView }) {
  const depth = new Map<number, number>();
  for (const node of view.nodes) {
    const inputs = view.edges.filter((edge) => edge.to === node.id).map((edge) => depth.get(edge.from) ?? 0);
    depth.set(node.id, inputs.length === 0 ? 0 : Math.max(...inputs) + 1);
  }
  const rows = new Map<number, number>();
  const place = new Map<number, [number, number]>();
  for (const node of view.nodes) {
    const column = depth.get(node.id) ?? 0;
    const row = rows.get(column) ?? 0;
    rows.set(column, row + 1);
    place.set(node.id, [column, row]);
  }
  const [w, h, gx, gy] = [190, 54, 50, 20];
  const width = (Math.max(0, ...[...depth.values()]) + 1) * (w + gx);
  const height = Math.max(1, ...[...rows.values()]) * (h + gy);
  return (
    <div id="explain">
      <h2>Plan</h2>
      <svg width={width} height={height} class="explain-graph">
        {view.edges.map((edge, index) => {
          const [fc, fr] = place.get(edge.from) ?? [0, 0];
          const [tc, tr] = place.get(edge.to) ?? [0, 0];
          return (
            <g key={index}>
              <line x1={fc * (w + gx) + w} y1={fr * (h + gy) + h / 2} x2={tc * (w + gx)} y2={tr * (h + gy) + h / 2} class="explain-edge" />
              <text x={(fc * (w + gx) + w + tc * (w + gx)) / 2} y={(fr * (h + gy) + tr * (h + gy)) / 2 + h / 2 - 4} class="edge-label">{edge.partitioning}</text>
            </g>
          );
        })}
        {view.nodes.map((node) => {
          const [column, row] = place.get(node.id) ?? [0, 0];
          return (
            <g key={node.id} transform={`translate(${column * (w + gx)}, ${row * (h + gy)})`} class="explain-node">
              <rect width={w} height={h} rx={6} />
              <text x={8} y={20}>{node.name.slice(0, 26)}</text>
              <text x={8} y={40} class="muted">{node.kind} ×{node.parallelism}{node.keyed ? " keyed" : ""}</text>
            </g>
          );
        })}
      </svg>
      <details>
        <summary>As text</summary>
        <pre>{view.plan}</pre>
        <pre>{view.graph_text}</pre>
      </details>
    </div>
  );
}

/** A draft's versions: open one, or compare one with the newest. */
function DraftVersions({ draft, onOpen, onDiff }: { draft?: DraftView; onOpen: (version: number) => void; onDiff: (from: number) => void }) {
  const [chosen, setChosen] = useState<number>();
  if (!draft || draft.versions.length === 0) return null;
  const versions = [...draft.versions].reverse();
  const version = chosen ?? versions[0].version;
  return (
    <span class="draft-versions">
      <select id="draft-version" value={String(version)} onChange={(e) => setChosen(Number(e.currentTarget.value))}>
        {versions.map((v) => (
          <option key={v.version} value={String(v.version)}>
            v{v.version} · {new Date(v.saved_at_ms).toLocaleString()}{v.note ? ` · ${v.note}` : ""}
          </option>
        ))}
      </select>
      <button id="draft-open-version" onClick={() => onOpen(version)}>Open</button>
      <button id="draft-diff" onClick={() => onDiff(version)} disabled={version === versions[0].version}>Diff with newest</button>
    </span>
  );
}

/** Two versions of a draft's script, line by line. */
function DraftDiff({ diff, onClose }: { diff: DraftDiffView; onClose: () => void }) {
  return (
    <div id="draft-diff-view">
      <h3>
        {diff.name}: version {diff.from} → {diff.to} <button class="link" onClick={onClose}>close</button>
      </h3>
      <DiffTable
        rows={diff.lines.map((line) => ({
          change: line.change === "removed" ? "missing" : line.change === "added" ? "unexpected" : "same",
          left: line.from_line,
          right: line.to_line,
          text: line.text,
        }))}
      />
    </div>
  );
}

/** How a line of a diff stands: in both, only on the left (expected, older), only on the right. */
type DiffChange = "same" | "missing" | "unexpected";

/** Lines side by side: a row's place on each side, and the line marked − or + where it differs. */
function DiffTable({ head, rows }: { head?: [string, string, string]; rows: { change: DiffChange; left?: number | null; right?: number | null; text: string }[] }) {
  return (
    <table class="diff">
      {head && <thead><tr>{head.map((title) => <th key={title}>{title}</th>)}</tr></thead>}
      <tbody>
        {rows.map((row, index) => (
          <tr key={index} class={`diff-${row.change}`}>
            <td>{row.left ?? ""}</td>
            <td>{row.right ?? ""}</td>
            <td><code>{row.change === "missing" ? "− " : row.change === "unexpected" ? "+ " : "  "}{row.text}</code></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
