// A test run's input of one table, as a form: rows generated from its columns (count, rate, key
// skew, NULLs, disorder, lateness), rows typed or uploaded (CSV, JSON lines), or, for a topic
// table, a sample of its live topic (the newest or oldest rows a filter keeps). The workbench's
// test runs and the canvas's previews use it.
import type { TestInputAsk } from "./api/client";

type InputKind = "generate" | "rows" | "sample";
export interface InputForm {
  kind: InputKind;
  sampleRows?: string;
  sampleFrom?: string;
  sampleFilter?: string;
  format: string;
  rows: string;
  generateRows: string;
  rate: string;
  key: string;
  skew: string;
  nullRatio: string;
  lateRatio: string;
  outOfOrderRatio: string;
}

export const newInput = (): InputForm => ({
  kind: "generate",
  format: "csv",
  rows: "",
  generateRows: "100",
  rate: "10",
  key: "",
  skew: "0",
  nullRatio: "0",
  lateRatio: "0",
  outOfOrderRatio: "0",
});

export function inputAsk(form: InputForm): TestInputAsk {
  if (form.kind === "rows") return { format: form.format, rows: form.rows, header: false };
  const number = (text: string) => (text.trim() === "" ? undefined : Number(text));
  if (form.kind === "sample") {
    return { sample: { rows: number(form.sampleRows ?? "100"), from: form.sampleFrom ?? "newest", filter: form.sampleFilter || undefined } };
  }
  return {
    generate: {
      rows: number(form.generateRows),
      rows_per_second: number(form.rate),
      key: form.key || undefined,
      skew: number(form.skew),
      null_ratio: number(form.nullRatio),
      late_ratio: number(form.lateRatio),
      out_of_order_ratio: number(form.outOfOrderRatio),
    },
  };
}

export function InputEditor({ table, form, columns, topic, onChange }: { table: string; form: InputForm; columns: string[]; topic: boolean; onChange: (form: InputForm) => void }) {
  const set = (part: Partial<InputForm>) => onChange({ ...form, ...part });
  return (
    <fieldset class="input" data-table={table}>
      <legend>Input of {table}</legend>
      <label><input type="radio" class="input-generate" checked={form.kind === "generate"} onChange={() => set({ kind: "generate" })} /> generated</label>
      <label><input type="radio" class="input-rows" checked={form.kind === "rows"} onChange={() => set({ kind: "rows" })} /> rows (typed or uploaded)</label>
      {topic && <label><input type="radio" class="input-sample" checked={form.kind === "sample"} onChange={() => set({ kind: "sample" })} /> sampled from the live topic</label>}
      {form.kind === "sample" ? (
        <div class="sample">
          <label>rows <input class="sample-rows" value={form.sampleRows ?? "100"} onInput={(e) => set({ sampleRows: e.currentTarget.value })} size={6} /></label>
          <label>
            the{" "}
            <select class="sample-from" value={form.sampleFrom ?? "newest"} onChange={(e) => set({ sampleFrom: e.currentTarget.value })}>
              <option value="newest">newest</option>
              <option value="oldest">oldest</option>
            </select>
          </label>
          <label>where <input class="sample-filter" value={form.sampleFilter ?? ""} placeholder={columns[0] ? `${columns[0]} IS NOT NULL` : "a condition"} onInput={(e) => set({ sampleFilter: e.currentTarget.value })} size={30} /></label>
        </div>
      ) : form.kind === "generate" ? (
        <div class="generate">
          <label>rows <input class="gen-rows" value={form.generateRows} onInput={(e) => set({ generateRows: e.currentTarget.value })} size={6} /></label>
          <label>per second <input class="gen-rate" value={form.rate} onInput={(e) => set({ rate: e.currentTarget.value })} size={5} /></label>
          <label>
            key{" "}
            <select class="gen-key" value={form.key} onChange={(e) => set({ key: e.currentTarget.value })}>
              <option value="">none</option>
              {columns.map((column) => <option key={column} value={column}>{column}</option>)}
            </select>
          </label>
          <label>skew <input class="gen-skew" value={form.skew} onInput={(e) => set({ skew: e.currentTarget.value })} size={3} /></label>
          <label>nulls <input class="gen-nulls" value={form.nullRatio} onInput={(e) => set({ nullRatio: e.currentTarget.value })} size={3} /></label>
          <label>out of order <input class="gen-disorder" value={form.outOfOrderRatio} onInput={(e) => set({ outOfOrderRatio: e.currentTarget.value })} size={3} /></label>
          <label>late <input class="gen-late" value={form.lateRatio} onInput={(e) => set({ lateRatio: e.currentTarget.value })} size={3} /></label>
        </div>
      ) : (
        <div class="rows">
          <select class="rows-format" value={form.format} onChange={(e) => set({ format: e.currentTarget.value })}>
            <option value="csv">CSV</option>
            <option value="json">JSON lines</option>
          </select>
          <input type="file" class="rows-file" accept=".csv,.json,.jsonl,.txt" onChange={async (e) => {
            const file = e.currentTarget.files?.[0];
            if (file) set({ rows: await file.text(), format: /\.jsonl?$/.test(file.name) ? "json" : form.format });
          }} />
          <textarea class="rows-text" rows={6} spellcheck={false} value={form.rows} placeholder={columns.join(",")} onInput={(e) => set({ rows: e.currentTarget.value })} />
        </div>
      )}
    </fieldset>
  );
}

