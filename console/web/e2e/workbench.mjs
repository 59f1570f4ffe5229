// The SQL workbench in headless Chromium against a running `tethys demo` (cli/tests/console.rs
// starts it): write a window query with a typo, see the error underlined and accept its fix;
// complete a column name; format; explain it as a graph; save it as a draft twice and see the
// difference between the versions; open it as a canvas; test run it on generated rows and on an
// uploaded CSV whose expected output has one wrong row (exactly that row flagged); deploy it,
// see it run, and watch its live results (a chart over event time that moves). Screenshots go
// to $SCREENSHOTS.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { login, run } from "./browser.mjs";

const { URL: base, TOKEN: token } = process.env;
if (!base || !token) throw new Error("URL and TOKEN are required");

const SCRIPT = `CREATE TABLE orders (
  id BIGINT,
  customer STRING,
  amount DECIMAL(10, 2),
  ts TIMESTAMP(3),
  WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
) WITH ('connector' = 'datagen', 'rows-per-second' = '50');

CREATE TABLE per_window (window_start TIMESTAMP(3), customer STRING, orders BIGINT) WITH ('connector' = 'blackhole');

INSERT INTO per_window
SELECT window_start, custmer, COUNT(*)
FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND))
GROUP BY window_start, window_end, customer;
`;

const CSV = ["1,alice,10.00,2026-01-01 00:00:01", "2,bob,5.50,2026-01-01 00:00:02", "3,alice,7.25,2026-01-01 00:00:04", "4,carol,3.00,2026-01-01 00:00:07"].join("\n");
// One row wrong: alice had two orders in the first window.
const EXPECTED = ["+I[2026-01-01 00:00:00.000, alice, 3]", "+I[2026-01-01 00:00:00.000, bob, 1]", "+I[2026-01-01 00:00:05.000, carol, 1]"].join("\n");

await run(async (page, { shot, waitText, step }) => {
  step("log in and open the workbench");
  await login(page, base, token);
  await page.evaluate(() => localStorage.removeItem("tethys.workbench.script"));
  await page.click("header >> text=Workbench");
  await page.waitForSelector(".cm-content");

  step("a window query with a typo: the error is underlined at its place");
  await page.click(".cm-content");
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(SCRIPT);
  await page.keyboard.press("Escape");
  await waitText("#wb-status", (text) => text === "1 problem", "the typo found");
  const underlined = await page.textContent(".cm-lintRange-error");
  if (underlined !== "custmer") throw new Error(`the underline is on ${JSON.stringify(underlined)}, not the typo`);
  await shot("20-workbench-typo");

  step("accept the suggestion");
  await page.hover(".cm-lintRange-error");
  await page.click(".cm-tooltip-lint button:has-text('Use customer')");
  await waitText("#wb-status", (text) => text === "no problems", "the fixed script");

  step("complete a column name");
  // A new query at the end, "SELECT cust| FROM orders;", completed at the cursor.
  const query = "\nSELECT cust FROM orders;";
  await page.click(".cm-content");
  await page.keyboard.press("Control+End");
  await page.keyboard.insertText(query);
  for (let i = 0; i < " FROM orders;".length; i++) await page.keyboard.press("ArrowLeft");
  await page.keyboard.press("Control+Space");
  await page.waitForSelector(".cm-tooltip-autocomplete li");
  const first = await page.textContent(".cm-tooltip-autocomplete li .cm-completionLabel");
  if (first !== "customer") throw new Error(`the first completion is ${first}, not customer`);
  await shot("21-workbench-completion");
  await page.keyboard.press("Enter");
  const text = await page.evaluate(() => document.querySelector(".cm-content").innerText);
  if (!text.trimEnd().endsWith("SELECT customer FROM orders;")) throw new Error(`the completion was not taken: ${text.slice(-40)}`);
  // Take the extra query out again.
  await page.keyboard.press("End");
  for (let i = 0; i < "\nSELECT customer FROM orders;".length; i++) await page.keyboard.press("Backspace");
  await waitText("#wb-status", (text) => text === "no problems", "the script without the extra line");

  step("format, and explain as a graph");
  await page.click("#wb-format");
  await waitText("#wb-message", (text) => text === "formatted", "the format");
  await page.click("#wb-explain");
  await page.waitForSelector("#explain svg .explain-node");
  await shot("22-workbench-explain");

  step("save the draft twice, and see what changed between the versions");
  await page.fill("#draft-name", `orders per window ${process.pid}`);
  await page.click("#draft-save");
  await waitText("#wb-message", (text) => / as version 1$/.test(text), "the first version");
  await page.click(".cm-content");
  await page.keyboard.press("Control+Home");
  await page.keyboard.insertText("-- per customer, every five seconds\n");
  await page.fill("#draft-note", "a comment");
  await page.keyboard.press("Escape");
  await page.click("#draft-save");
  await waitText("#wb-message", (text) => / as version 2$/.test(text), "the second version");
  await page.selectOption("#draft-version", "1");
  await page.click("#draft-diff");
  await page.waitForSelector("#draft-diff-view");
  const added = await page.$$eval("#draft-diff-view tr.diff-unexpected td:last-child", (cells) => cells.map((cell) => cell.textContent.trim()));
  if (added.length !== 1 || !added[0].includes("per customer, every five seconds")) throw new Error(`added lines: ${JSON.stringify(added)}`);
  await shot("26-workbench-draft-diff");

  step("a test run on generated rows");
  await page.waitForSelector('fieldset.input[data-table="orders"]');
  await page.fill('fieldset.input[data-table="orders"] .gen-rows', "200");
  await page.click("#wb-run");
  await page.waitForSelector('#run-results .sink-result[data-sink="per_window"]');
  await waitText('#run-results .sink-result[data-sink="per_window"] h3', (text) => /per_window: [1-9]\d* rows?/.test(text), "rows from generated data");
  await shot("23-workbench-generated");

  step("a test run on an uploaded CSV, beside an expected output with one wrong row");
  const csv = join(tmpdir(), `tethys-workbench-${process.pid}.csv`);
  writeFileSync(csv, CSV);
  await page.check('fieldset.input[data-table="orders"] .input-rows');
  await page.setInputFiles('fieldset.input[data-table="orders"] .rows-file', csv);
  await page.selectOption('fieldset.expected[data-sink="per_window"] .expected-compare', "sorted");
  await page.fill('fieldset.expected[data-sink="per_window"] .expected-rows', EXPECTED);
  await page.click("#wb-run");
  await waitText("#wb-message", (text) => text.startsWith("test run differs"), "the comparison");
  const missing = await page.$$eval("#run-results tr.diff-missing td:last-child", (cells) => cells.map((cell) => cell.textContent.trim()));
  const unexpected = await page.$$eval("#run-results tr.diff-unexpected td:last-child", (cells) => cells.map((cell) => cell.textContent.trim()));
  if (missing.length !== 1 || !missing[0].includes("alice, 3]")) throw new Error(`missing rows: ${JSON.stringify(missing)}`);
  if (unexpected.length !== 1 || !unexpected[0].includes("alice, 2]")) throw new Error(`unexpected rows: ${JSON.stringify(unexpected)}`);
  await shot("24-workbench-diff");

  step("open it as a canvas: the same operators, drawn");
  await page.click("#wb-canvas");
  await page.waitForURL(/\/canvas$/);
  await page.waitForSelector(".op.op-window_aggregate");
  await waitText("#canvas-status", (text) => text === "a job", "the drawn script compiles");
  await shot("27-workbench-as-canvas");
  await page.click("header >> text=Workbench");
  await page.waitForSelector(".cm-content");

  step("deploy it with one click, and see it run");
  await page.click("#wb-deploy");
  await page.waitForURL(/\/deploy/);
  await page.waitForFunction(() => document.querySelector("#deploy-sql")?.value.includes("TUMBLE"));
  await page.click("#deploy");
  await page.waitForURL(/\/jobs\/\d+$/);
  await waitText("#job-status", (text) => text === "running", "the deployed SQL job runs");
  await shot("25-workbench-deployed");

  step("watch its live results: the sampled rows, and a chart over event time that moves");
  const jobPath = new URL(page.url()).pathname;
  await page.click("#live-results");
  await page.waitForURL(/\/jobs\/\d+\/results$/);
  await page.waitForSelector("#results-chart", { state: "attached", timeout: 60_000 });
  await page.selectOption("#chart-column", "orders");
  await page.selectOption("#chart-kind", "bar");
  const firstX = Number(await page.getAttribute("#results-chart", "data-last-x"));
  await page.waitForFunction((before) => Number(document.querySelector("#results-chart")?.getAttribute("data-last-x")) > before, firstX, { timeout: 60_000 });
  const rows = await page.locator("#results-table tbody tr").count();
  if (rows === 0) throw new Error("the live results table shows no rows");
  const header = await page.textContent("#results-table thead");
  if (!header.includes("window_start") || !header.includes("orders")) throw new Error(`the table's columns: ${header}`);
  await shot("28-live-results");
  await page.goto(new URL(jobPath, base).href);
  await waitText("#job-status", (text) => text === "running", "the job, again");
  await page.click("#cancel");
  await waitText("#job-status", (text) => text === "cancelled", "its cancellation");
});
