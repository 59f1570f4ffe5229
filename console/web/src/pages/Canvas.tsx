// The canvas: a job drawn as operators and streams. Operators come from the palette (drag one
// onto the canvas, or click it), move by their title, connect by dragging from an output port to
// an input port, and are configured in the form beside. The server compiles the drawing on every
// change: each stream's type shows on hover, a problem shows on the operator or stream where it
// was drawn, and the job shows as SQL (open it in the workbench). Undo, redo, auto-layout, and a
// preview of each operator's first rows on generated, typed or uploaded rows.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, type CanvasCompileView, type CanvasNode, type CanvasOp, type CanvasPreviewView, type CanvasSpec } from "../api/client";
import { navigate } from "../router";
import { ORDERS_TABLE } from "../examples";
import { InputEditor, inputAsk, newInput, type InputForm } from "../inputs";

type Kind = CanvasOp["kind"];

const TABLES = `${ORDERS_TABLE}
CREATE TABLE per_window (
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  customer STRING,
  orders BIGINT
) WITH ('connector' = 'print');
`;

const PALETTE: { kind: Kind; label: string }[] = [
  { kind: "source", label: "Source" },
  { kind: "filter", label: "Filter" },
  { kind: "project", label: "Projection" },
  { kind: "window_aggregate", label: "Window aggregate" },
  { kind: "aggregate", label: "Aggregate" },
  { kind: "join", label: "Join" },
  { kind: "deduplicate", label: "Deduplicate" },
  { kind: "top_n", label: "Top-N" },
  { kind: "sink", label: "Sink" },
];

/** A new operator of `kind`, as the palette gives it. */
function defaults(kind: Kind): CanvasOp {
  switch (kind) {
    case "source":
      return { kind, table: "orders" };
    case "filter":
      return { kind, condition: "amount > 1" };
    case "project":
      return { kind, columns: [{ expr: "*" }] };
    case "window_aggregate":
      return { kind, window: { type: "tumble", size: "5 SECOND" }, group_by: [], aggregates: [{ expr: "COUNT(*)", name: "orders" }] };
    case "aggregate":
      return { kind, group_by: [], aggregates: [{ expr: "COUNT(*)", name: "n" }] };
    case "join":
      return { kind, join: "inner", condition: "l.id = r.id", columns: [] };
    case "deduplicate":
      return { kind, keys: ["id"], keep_last: false };
    case "top_n":
      return { kind, partition_by: [], order_by: "amount DESC", n: 3 };
    case "sink":
      return { kind, table: "per_window" };
  }
}

const EXAMPLE: CanvasSpec = {
  tables: TABLES,
  nodes: [
    { id: "orders_in", kind: "source", table: "orders", x: 30, y: 40 },
    { id: "big", kind: "filter", condition: "amount > 1", x: 280, y: 40 },
    { id: "per_customer", kind: "window_aggregate", window: { type: "tumble", size: "5 SECOND" }, group_by: ["customer"], aggregates: [{ expr: "COUNT(*)", name: "orders" }], x: 530, y: 40 },
    { id: "out", kind: "sink", table: "per_window", x: 780, y: 40 },
  ] as CanvasNode[],
  edges: [
    { from: "orders_in", to: "big" },
    { from: "big", to: "per_customer" },
    { from: "per_customer", to: "out" },
  ],
};

/** Where the canvas keeps its drawing (the workbench puts one there to open it). */
export const CANVAS_STORED = "tethys.canvas.spec";
const STORED = CANVAS_STORED;
const [W, H] = [200, 86];

const list = (items: string[] | undefined | null) => (items ?? []).join(", ");
const splitList = (text: string) => text.split(",").map((item) => item.trim()).filter((item) => item !== "");
const columnsText = (columns: { expr: string; name?: string | null }[] | undefined | null) =>
  (columns ?? []).map((column) => (column.name ? `${column.expr} AS ${column.name}` : column.expr)).join("\n");
const parseColumns = (text: string) =>
  text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "")
    .map((line) => {
      const at = line.toUpperCase().lastIndexOf(" AS ");
      return at < 0 ? { expr: line } : { expr: line.slice(0, at).trim(), name: line.slice(at + 4).trim() };
    });

/** A line saying what an operator does. */
function summary(node: CanvasNode): string {
  switch (node.kind) {
    case "source":
    case "sink":
      return node.table;
    case "filter":
      return `WHERE ${node.condition}`;
    case "project":
      return columnsText(node.columns).replace(/\n/g, ", ");
    case "window_aggregate":
      return `${node.window.type} · by ${list(node.group_by) || "all"} · ${columnsText(node.aggregates).replace(/\n/g, ", ")}`;
    case "aggregate":
      return `by ${list(node.group_by) || "all"} · ${columnsText(node.aggregates).replace(/\n/g, ", ")}`;
    case "join":
      return `${node.join ?? "inner"} ON ${node.condition}`;
    case "deduplicate":
      return `${node.keep_last ? "last" : "first"} per ${list(node.keys)}`;
    case "top_n":
      return `${node.n} per ${list(node.partition_by) || "all"} by ${node.order_by}`;
  }
}

/** Operators placed by depth (left to right) and order (top to bottom). */
export function autoLayout(spec: CanvasSpec): CanvasSpec {
  const depth = new Map<string, number>();
  const visit = (id: string, seen: Set<string>): number => {
    if (depth.has(id)) return depth.get(id)!;
    if (seen.has(id)) return 0;
    seen.add(id);
    const inputs = spec.edges.filter((edge) => edge.to === id).map((edge) => visit(edge.from, seen) + 1);
    const d = inputs.length === 0 ? 0 : Math.max(...inputs);
    depth.set(id, d);
    return d;
  };
  spec.nodes.forEach((node) => visit(node.id, new Set()));
  const rows = new Map<number, number>();
  const nodes = spec.nodes.map((node) => {
    const d = depth.get(node.id) ?? 0;
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    return { ...node, x: 30 + d * 250, y: 40 + row * 130 };
  });
  return { ...spec, nodes };
}

export function CanvasPage() {
  const [spec, setSpecState] = useState<CanvasSpec>(() => {
    try {
      return JSON.parse(localStorage.getItem(STORED) ?? "") as CanvasSpec;
    } catch {
      return EXAMPLE;
    }
  });
  const past = useRef<CanvasSpec[]>([]);
  const future = useRef<CanvasSpec[]>([]);
  const [selected, setSelected] = useState<string>();
  const [selectedEdge, setSelectedEdge] = useState<number>();
  const [compiled, setCompiled] = useState<CanvasCompileView>();
  const [preview, setPreview] = useState<CanvasPreviewView>();
  const [previewError, setPreviewError] = useState<string>();
  // The preview's input per source table (generated rows unless changed).
  const [inputs, setInputs] = useState<Record<string, InputForm>>({});
  const [showSql, setShowSql] = useState(false);
  const sourceTables = [...new Set(spec.nodes.flatMap((node) => (node.kind === "source" ? [node.table] : [])))];
  const board = useRef<HTMLDivElement>(null);
  const dragging = useRef<{ id: string; dx: number; dy: number; before: CanvasSpec }>();
  const connecting = useRef<string>();

  /** A change to remember (undo takes it back). */
  const change = (next: CanvasSpec, before: CanvasSpec = spec) => {
    past.current.push(before);
    future.current = [];
    setSpecState(next);
  };
  const undo = () => {
    const previous = past.current.pop();
    if (previous) {
      future.current.push(spec);
      setSpecState(previous);
    }
  };
  const redo = () => {
    const next = future.current.pop();
    if (next) {
      past.current.push(spec);
      setSpecState(next);
    }
  };

  useEffect(() => {
    localStorage.setItem(STORED, JSON.stringify(spec));
    const timer = setTimeout(() => api.canvasCompile(spec).then(setCompiled, () => {}), 250);
    return () => clearTimeout(timer);
  }, [spec]);

  useEffect(() => {
    const keys = (event: KeyboardEvent) => {
      if ((event.target as HTMLElement).closest("input, textarea, select")) return;
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
        event.preventDefault();
        if (event.shiftKey) redo();
        else undo();
      } else if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "y") {
        event.preventDefault();
        redo();
      } else if (event.key === "Delete" || event.key === "Backspace") {
        if (selectedEdge !== undefined) {
          change({ ...spec, edges: spec.edges.filter((_, index) => index !== selectedEdge) });
          setSelectedEdge(undefined);
        } else if (selected) {
          change({ ...spec, nodes: spec.nodes.filter((node) => node.id !== selected), edges: spec.edges.filter((edge) => edge.from !== selected && edge.to !== selected) });
          setSelected(undefined);
        }
      }
    };
    addEventListener("keydown", keys);
    return () => removeEventListener("keydown", keys);
  });

  const add = (kind: Kind, x: number, y: number) => {
    let n = 1;
    while (spec.nodes.some((node) => node.id === `${kind}_${n}`)) n++;
    const node = { id: `${kind}_${n}`, ...defaults(kind), x, y } as CanvasNode;
    change({ ...spec, nodes: [...spec.nodes, node] });
    setSelected(node.id);
  };
  /** A change made from the newest drawing, not the one this render saw: two changes before the
   * next render (a form's fields left one after the other) both count. */
  const changeLatest = (make: (current: CanvasSpec) => CanvasSpec) =>
    setSpecState((current) => {
      const next = make(current);
      if (next !== current) {
        past.current.push(current);
        future.current = [];
      }
      return next;
    });
  const update = (id: string, part: Partial<CanvasNode>) =>
    changeLatest((current) => ({ ...current, nodes: current.nodes.map((node) => (node.id === id ? ({ ...node, ...part } as CanvasNode) : node)) }));
  const connect = (from: string, to: string, port?: string) =>
    changeLatest((current) =>
      from === to || current.edges.some((edge) => edge.from === from && edge.to === to && (edge.port ?? undefined) === port)
        ? current
        : { ...current, edges: [...current.edges, { from, to, port: port ?? null }] },
    );

  const errorsOf = (id: string) => compiled?.errors.filter((error) => error.node === id && (error.edge === null || error.edge === undefined)) ?? [];
  const edgeErrors = (index: number) => compiled?.errors.filter((error) => error.edge === index) ?? [];
  const place = (event: MouseEvent) => {
    const box = board.current!.getBoundingClientRect();
    return [event.clientX - box.left + board.current!.scrollLeft, event.clientY - box.top + board.current!.scrollTop];
  };
  const portsOf = (node: CanvasNode) => (node.kind === "join" ? ["left", "right"] : node.kind === "source" ? [] : [undefined]);
  const inPortY = (node: CanvasNode, port?: string | null) => (node.kind === "join" ? (port === "right" ? node.y! + H * 0.72 : node.y! + H * 0.32) : node.y! + H / 2);
  const nodes = new Map(spec.nodes.map((node) => [node.id, node]));
  const chosen = selected ? nodes.get(selected) : undefined;
  const width = Math.max(900, ...spec.nodes.map((node) => (node.x ?? 0) + W + 60));
  const height = Math.max(420, ...spec.nodes.map((node) => (node.y ?? 0) + H + 60));

  return (
    <section class="canvas-page">
      <h1>Canvas</h1>
      <div class="toolbar">
        <button id="canvas-undo" onClick={undo} disabled={past.current.length === 0} title="Ctrl-Z">Undo</button>
        <button id="canvas-redo" onClick={redo} disabled={future.current.length === 0} title="Ctrl-Shift-Z">Redo</button>
        <button id="canvas-layout" onClick={() => change(autoLayout(spec))}>Auto-layout</button>
        <button id="canvas-new" onClick={() => change({ tables: spec.tables, nodes: [], edges: [] })}>Clear</button>
        <button id="canvas-example" onClick={() => change(EXAMPLE)}>Example</button>
        <button id="canvas-sql" onClick={() => setShowSql(!showSql)}>{showSql ? "Hide SQL" : "As SQL"}</button>
        <button id="canvas-preview" onClick={async () => {
          setPreviewError(undefined);
          try {
            const asks = Object.fromEntries(Object.entries(inputs).filter(([table]) => sourceTables.includes(table)).map(([table, form]) => [table, inputAsk(form)]));
            setPreview(await api.canvasPreview({ spec, inputs: asks }));
          } catch (error) {
            setPreview(undefined);
            setPreviewError((error as Error).message);
          }
        }}>Preview</button>
        <button id="canvas-workbench" disabled={!compiled?.sql} onClick={() => {
          localStorage.setItem("tethys.workbench.script", compiled?.sql ?? "");
          navigate("/workbench");
        }}>Open in workbench</button>
        <span id="canvas-status" class={compiled?.ok ? "outcome" : "error"}>
          {compiled === undefined ? "" : compiled.ok ? "a job" : `${compiled.errors.length} problem${compiled.errors.length === 1 ? "" : "s"}`}
        </span>
      </div>
      <div class="canvas-main">
        <ul class="palette" id="palette">
          {PALETTE.map((item) => (
            <li
              key={item.kind}
              draggable
              data-kind={item.kind}
              onDragStart={(event) => event.dataTransfer?.setData("text/tethys-operator", item.kind)}
              onClick={() => add(item.kind, 30 + (spec.nodes.length % 4) * 250, 200 + Math.floor(spec.nodes.length / 4) * 130)}
            >
              {item.label}
            </li>
          ))}
        </ul>
        <div
          class="board"
          id="board"
          ref={board}
          onDragOver={(event) => event.preventDefault()}
          onDrop={(event) => {
            event.preventDefault();
            const kind = event.dataTransfer?.getData("text/tethys-operator") as Kind | undefined;
            if (!kind) return;
            const [x, y] = place(event);
            add(kind, Math.max(0, x - W / 2), Math.max(0, y - 20));
          }}
          onPointerMove={(event) => {
            const drag = dragging.current;
            if (!drag) return;
            const [x, y] = place(event);
            setSpecState({ ...spec, nodes: spec.nodes.map((node) => (node.id === drag.id ? { ...node, x: Math.max(0, x - drag.dx), y: Math.max(0, y - drag.dy) } : node)) });
          }}
          onPointerUp={() => {
            const drag = dragging.current;
            dragging.current = undefined;
            connecting.current = undefined;
            if (drag) {
              past.current.push(drag.before);
              future.current = [];
            }
          }}
          onClick={(event) => {
            if (event.target === board.current) {
              setSelected(undefined);
              setSelectedEdge(undefined);
            }
          }}
        >
          <svg width={width} height={height} class="edges">
            {spec.edges.map((edge, index) => {
              const from = nodes.get(edge.from);
              const to = nodes.get(edge.to);
              if (!from || !to) return null;
              const [x1, y1, x2, y2] = [from.x! + W, from.y! + H / 2, to.x!, inPortY(to, edge.port)];
              const stream = compiled?.streams[edge.from];
              const problems = edgeErrors(index);
              const title = problems.length > 0
                ? problems.map((problem) => problem.message).join("\n")
                : stream
                  ? `${stream.updating ? "changelog (updates)" : "inserts only"}${stream.event_time ? ` · event time ${stream.event_time}` : " · no event time"}\n${stream.columns.map((column) => `${column.name} ${column.data_type}`).join("\n")}`
                  : "not typed yet";
              return (
                <g key={index} class={`edge${problems.length > 0 ? " refused" : ""}${selectedEdge === index ? " chosen" : ""}`} data-edge={index} onClick={() => { setSelectedEdge(index); setSelected(undefined); }}>
                  <path d={`M${x1},${y1} C${x1 + 60},${y1} ${x2 - 60},${y2} ${x2},${y2}`} />
                  <path class="edge-hit" d={`M${x1},${y1} C${x1 + 60},${y1} ${x2 - 60},${y2} ${x2},${y2}`} />
                  <title>{title}</title>
                </g>
              );
            })}
          </svg>
          {spec.nodes.map((node) => {
            const problems = errorsOf(node.id);
            const count = preview?.counts[node.kind === "sink" ? node.table : node.id];
            return (
              <div
                key={node.id}
                class={`op op-${node.kind}${selected === node.id ? " chosen" : ""}${problems.length > 0 ? " refused" : ""}`}
                data-op={node.id}
                style={{ left: `${node.x}px`, top: `${node.y}px`, width: `${W}px`, height: `${H}px` }}
                onClick={(event) => {
                  event.stopPropagation();
                  setSelected(node.id);
                  setSelectedEdge(undefined);
                }}
              >
                <div
                  class="op-title"
                  onPointerDown={(event) => {
                    event.preventDefault();
                    const [x, y] = place(event);
                    dragging.current = { id: node.id, dx: x - node.x!, dy: y - node.y!, before: spec };
                  }}
                >
                  {node.id} <span class="muted">{node.kind.replace("_", " ")}</span>
                  {count !== undefined && <span class="badge running count">{count}</span>}
                </div>
                <div class="op-summary">{summary(node)}</div>
                {problems.length > 0 && <div class="op-problem" title={problems.map((p) => p.message).join("\n")}>{problems[0].message}</div>}
                {portsOf(node).map((port) => (
                  <span
                    key={port ?? "in"}
                    class="port in"
                    data-port={port ?? "in"}
                    style={{ top: `${inPortY(node, port) - node.y! - 7}px` }}
                    title={port ? `${port} input` : "input"}
                    onPointerUp={(event) => {
                      event.stopPropagation();
                      if (connecting.current) connect(connecting.current, node.id, port);
                      connecting.current = undefined;
                    }}
                  />
                ))}
                {node.kind !== "sink" && (
                  <span
                    class="port out"
                    data-port="out"
                    title="output: drag to an input"
                    onPointerDown={(event) => {
                      event.stopPropagation();
                      event.preventDefault();
                      connecting.current = node.id;
                    }}
                  />
                )}
              </div>
            );
          })}
        </div>
        <aside class="inspector" id="inspector">
          {chosen ? (
            <NodeForm key={chosen.id} node={chosen} onChange={(part) => update(chosen.id, part)} rows={preview?.outputs[chosen.kind === "sink" ? chosen.table : chosen.id]} />
          ) : (
            <label>
              Tables (CREATE TABLE statements the sources and sinks name)
              <textarea id="canvas-tables" rows={16} spellcheck={false} value={spec.tables} onChange={(e) => change({ ...spec, tables: e.currentTarget.value })} />
            </label>
          )}
        </aside>
      </div>
      {/* Below the board, so that the board does not move as problems come and go. */}
      {compiled && !compiled.ok && (
        <ul id="canvas-problems" class="error">
          {compiled.errors.map((error, index) => <li key={index}>{error.node ? `${error.node}: ` : ""}{error.message}</li>)}
        </ul>
      )}
      {previewError && <p class="error" id="canvas-preview-error">{previewError}</p>}
      {sourceTables.length > 0 && (
        <details id="canvas-inputs">
          <summary>Preview inputs (generated rows unless given here)</summary>
          <div class="test-inputs">
            {sourceTables.map((table) => {
              const node = spec.nodes.find((candidate) => candidate.kind === "source" && candidate.table === table);
              const columns = (node && compiled?.streams[node.id]?.columns.map((column) => column.name)) ?? [];
              return <InputEditor key={table} table={table} form={inputs[table] ?? newInput()} columns={columns} topic={false} onChange={(next) => setInputs({ ...inputs, [table]: next })} />;
            })}
          </div>
        </details>
      )}
      {showSql && <pre id="canvas-sql-text" class="sql">{compiled?.sql ?? "(not a job yet)"}</pre>}
    </section>
  );
}

/** A text field of an operator's form. What is typed stays as typed until the field is left, when
 * it is saved: a render meanwhile (a compile's answer) does not put the saved text back. */
function TextField({ label, value, onSave, id, lines }: { label: string; value: string; onSave: (text: string) => void; id: string; lines?: number }) {
  const [draft, setDraft] = useState<string>();
  const save = (text: string) => {
    setDraft(undefined);
    if (text !== value) onSave(text);
  };
  const common = {
    class: `form-${id}`,
    value: draft ?? value,
    onInput: (e: Event) => setDraft((e.currentTarget as HTMLInputElement).value),
    onChange: (e: Event) => save((e.currentTarget as HTMLInputElement).value),
  };
  return (
    <label>
      {label}
      {lines ? <textarea rows={lines} spellcheck={false} {...common} /> : <input {...common} />}
    </label>
  );
}

/** The form of one operator. */
function NodeForm({ node, onChange, rows }: { node: CanvasNode; onChange: (part: Partial<CanvasNode>) => void; rows?: string[] }) {
  const field = (label: string, value: string, set: (text: string) => void, id: string) => <TextField key={id} label={label} value={value} onSave={set} id={id} />;
  const area = (label: string, value: string, set: (text: string) => void, id: string) => (
    <TextField key={id} label={label} value={value} onSave={set} id={id} lines={4} />
  );
  let form;
  switch (node.kind) {
    case "source":
    case "sink":
      form = field("table", node.table, (table) => onChange({ table } as Partial<CanvasNode>), "table");
      break;
    case "filter":
      form = field("condition", node.condition, (condition) => onChange({ condition } as Partial<CanvasNode>), "condition");
      break;
    case "project":
      form = area("columns (one per line: expr AS name)", columnsText(node.columns), (text) => onChange({ columns: parseColumns(text) } as Partial<CanvasNode>), "columns");
      break;
    case "window_aggregate": {
      const window = node.window;
      const setWindow = (type: string) =>
        onChange({
          window:
            type === "hop" ? { type, slide: "1 SECOND", size: "5 SECOND" } : type === "cumulate" ? { type, step: "1 SECOND", size: "5 SECOND" } : type === "session" ? { type, gap: "5 SECOND" } : { type: "tumble", size: "5 SECOND" },
        } as Partial<CanvasNode>);
      form = (
        <>
          <label>
            window
            <select class="form-window" value={window.type} onChange={(e) => setWindow(e.currentTarget.value)}>
              <option value="tumble">tumble</option>
              <option value="hop">hop</option>
              <option value="cumulate">cumulate</option>
              <option value="session">session</option>
            </select>
          </label>
          {"size" in window && field("size", window.size, (size) => onChange({ window: { ...window, size } } as Partial<CanvasNode>), "size")}
          {"slide" in window && field("slide", window.slide, (slide) => onChange({ window: { ...window, slide } } as Partial<CanvasNode>), "slide")}
          {"step" in window && field("step", window.step, (step) => onChange({ window: { ...window, step } } as Partial<CanvasNode>), "step")}
          {"gap" in window && field("gap", window.gap, (gap) => onChange({ window: { ...window, gap } } as Partial<CanvasNode>), "gap")}
          {field("group by (comma-separated)", list(node.group_by), (text) => onChange({ group_by: splitList(text) } as Partial<CanvasNode>), "group-by")}
          {area("aggregates (one per line: expr AS name)", columnsText(node.aggregates), (text) => onChange({ aggregates: parseColumns(text) } as Partial<CanvasNode>), "aggregates")}
        </>
      );
      break;
    }
    case "aggregate":
      form = (
        <>
          {field("group by (comma-separated)", list(node.group_by), (text) => onChange({ group_by: splitList(text) } as Partial<CanvasNode>), "group-by")}
          {area("aggregates (one per line: expr AS name)", columnsText(node.aggregates), (text) => onChange({ aggregates: parseColumns(text) } as Partial<CanvasNode>), "aggregates")}
        </>
      );
      break;
    case "join":
      form = (
        <>
          <label>
            join
            <select class="form-join" value={node.join ?? "inner"} onChange={(e) => onChange({ join: e.currentTarget.value } as Partial<CanvasNode>)}>
              {["inner", "left", "right", "full"].map((kind) => <option key={kind} value={kind}>{kind}</option>)}
            </select>
          </label>
          {field("condition (l. and r. name the inputs)", node.condition, (condition) => onChange({ condition } as Partial<CanvasNode>), "condition")}
          {area("columns (empty: all)", columnsText(node.columns), (text) => onChange({ columns: parseColumns(text) } as Partial<CanvasNode>), "columns")}
        </>
      );
      break;
    case "deduplicate":
      form = (
        <>
          {field("keys (comma-separated)", list(node.keys), (text) => onChange({ keys: splitList(text) } as Partial<CanvasNode>), "keys")}
          {field("order by (default: event time)", node.order_by ?? "", (text) => onChange({ order_by: text || null } as Partial<CanvasNode>), "order-by")}
          <label class="inline">
            <input type="checkbox" checked={node.keep_last ?? false} onChange={(e) => onChange({ keep_last: e.currentTarget.checked } as Partial<CanvasNode>)} /> keep the last row
          </label>
        </>
      );
      break;
    case "top_n":
      form = (
        <>
          {field("partition by (comma-separated)", list(node.partition_by), (text) => onChange({ partition_by: splitList(text) } as Partial<CanvasNode>), "partition-by")}
          {field("order by", node.order_by, (order_by) => onChange({ order_by } as Partial<CanvasNode>), "order-by")}
          {field("rows", String(node.n), (text) => onChange({ n: Number(text) || 0 } as Partial<CanvasNode>), "n")}
        </>
      );
      break;
  }
  return (
    <div class="node-form" data-form={node.id}>
      <h3>{node.id} <span class="muted">{node.kind.replace("_", " ")}</span></h3>
      {form}
      {rows && (
        <>
          <h4>Its first rows</h4>
          <pre class="rows-out">{rows.join("\n") || "(none)"}</pre>
        </>
      )}
    </div>
  );
}
