// The canvas in headless Chromium against a running `tethys demo` (cli/tests/console.rs starts
// it): the window query built by drag and drop (operators from the palette, streams from port to
// port), configured in forms, shown as SQL, previewed on generated rows and on typed ones; an operator left
// unconnected refused where drawn, deleted, restored by undo, deleted again by redo; then opened
// in the workbench, whose check finds no problem. Screenshots go to $SCREENSHOTS.
import { login, run } from "./browser.mjs";

const { URL: base, TOKEN: token } = process.env;
if (!base || !token) throw new Error("URL and TOKEN are required");

await run(async (page, { shot, waitText, step }) => {
  step("log in and open an empty canvas");
  await login(page, base, token);
  await page.evaluate(() => localStorage.removeItem("tethys.canvas.spec"));
  await page.click("header >> text=Canvas");
  await page.waitForSelector("#board");
  await page.click("#canvas-new");
  await waitText("#canvas-status", (text) => text === "1 problem", "an empty canvas writes nowhere");

  step("drag a source, a filter, a window aggregate and a sink onto the canvas");
  const drops = [
    ["source", 20, 30],
    ["filter", 260, 30],
    ["window_aggregate", 20, 200],
    ["sink", 260, 200],
  ];
  for (const [kind, x, y] of drops) {
    await page.dragAndDrop(`#palette li[data-kind="${kind}"]`, "#board", { targetPosition: { x: x + 100, y: y + 20 } });
    await page.waitForSelector(`.op[data-op="${kind}_1"]`);
  }

  step("connect them from port to port");
  const chain = ["source_1", "filter_1", "window_aggregate_1", "sink_1"];
  for (let i = 0; i + 1 < chain.length; i++) {
    await page.dragAndDrop(`.op[data-op="${chain[i]}"] .port.out`, `.op[data-op="${chain[i + 1]}"] .port.in`);
    // Attached, not "visible": a level stream's box has no height.
    await page.waitForSelector(`.edge[data-edge="${i}"]`, { state: "attached" });
  }

  step("configure the window aggregate: per customer");
  await page.click('.op[data-op="window_aggregate_1"] .op-title');
  await page.fill('[data-form="window_aggregate_1"] .form-group-by', "customer");
  await page.press('[data-form="window_aggregate_1"] .form-group-by', "Tab");
  await page.fill('[data-form="window_aggregate_1"] .form-aggregates', "COUNT(*) AS orders");
  await page.press('[data-form="window_aggregate_1"] .form-aggregates', "Tab");
  await waitText("#canvas-status", (text) => text === "a job", "the drawing compiled");
  const stream = await page.textContent('.edge[data-edge="0"] title');
  if (!stream.includes("event time ts") || !stream.includes("customer STRING")) throw new Error(`the source's stream: ${stream}`);
  await shot("30-canvas");

  step("see it as SQL, and preview each operator's rows");
  await page.click("#canvas-sql");
  await waitText("#canvas-sql-text", (text) => text.includes("TUMBLE") && text.includes("INSERT INTO per_window"), "the SQL");
  await page.click("#canvas-preview");
  await page.waitForSelector('.op[data-op="sink_1"] .count');
  await page.click('.op[data-op="filter_1"] .op-title');
  await waitText('[data-form="filter_1"] .rows-out', (text) => text.startsWith("+I["), "the filter's first rows");
  await shot("31-canvas-sql-preview");

  step("preview on typed rows instead: the filter's rows are those rows");
  await page.click("#canvas-inputs summary");
  const input = '#canvas-inputs fieldset.input[data-table="orders"]';
  await page.check(`${input} .input-rows`);
  await page.fill(`${input} .rows-text`, "1,zoe,10.00,2026-01-01 00:00:01\n2,yann,20.00,2026-01-01 00:00:02\n3,zoe,30.00,2026-01-01 00:00:09");
  await page.click("#canvas-preview");
  await waitText('[data-form="filter_1"] .rows-out', (text) => text.includes("zoe") && text.includes("yann"), "the typed rows through the filter");
  await page.waitForFunction(() => document.querySelector('.op[data-op="filter_1"] .count')?.textContent === "3");
  await shot("32-canvas-preview-typed-rows");

  step("an operator left unconnected is refused where drawn; delete, undo, redo");
  await page.dragAndDrop('#palette li[data-kind="sink"]', "#board", { targetPosition: { x: 600, y: 400 } });
  await page.waitForSelector('.op[data-op="sink_2"].refused');
  await waitText("#canvas-status", (text) => text === "1 problem", "the lone sink refused");
  await page.click('.op[data-op="sink_2"] .op-title');
  await page.keyboard.press("Delete");
  await waitText("#canvas-status", (text) => text === "a job", "the lone sink deleted");
  await page.click("#canvas-undo");
  await page.waitForSelector('.op[data-op="sink_2"]');
  await page.click("#canvas-redo");
  await page.waitForSelector('.op[data-op="sink_2"]', { state: "detached" });
  await page.click("#canvas-layout");

  step("open it in the workbench: the same job, checked");
  await page.click("#canvas-workbench");
  await page.waitForURL(/\/workbench$/);
  await waitText("#wb-status", (text) => text === "no problems", "the canvas's SQL in the workbench");
  const script = await page.evaluate(() => document.querySelector(".cm-content").innerText);
  if (!script.includes("CREATE TEMPORARY VIEW window_aggregate_1")) throw new Error(`the workbench's script: ${script.slice(0, 200)}`);
});
