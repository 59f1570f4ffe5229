// The console in headless Chromium against a running `tethys demo` (cli/tests/console.rs starts
// it): log in, see the example job live, deploy a job with the resource preview, take a
// savepoint, rescale it from 1 to 2, see the cluster, stop it with a savepoint and start a copy
// from that savepoint, cancel; then a job with a slow sink, whose
// graph marks the bottleneck; then a SQL job, refused with its error's place, then deployed; a
// failing job's exceptions, and the workers' log searched for it; a program of one's own ($PROGRAM,
// the example program) uploaded from the Deploy page and its job run to its end. A screenshot of
// each page goes to $SCREENSHOTS. Exits non-zero, naming the step, when a step fails.
import { run } from "./browser.mjs";

const { URL: base, TOKEN: token, PROGRAM: program, TMPDIR: tmp } = process.env;
if (!base || !token) throw new Error("URL and TOKEN are required");

await run(async (page, { shot, waitText, step }) => {
  step("a page without a session leads to the login");
  await page.goto(`${base}jobs`);
  await page.waitForSelector("#token");
  await shot("01-login");

  step("a wrong token is refused");
  await page.fill("#token", "not-the-token");
  await page.click("button[type=submit]");
  await page.waitForSelector("[role=alert]");

  step("the right token logs in and the example job is live");
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.waitForSelector("#jobs tbody tr[data-job] .badge.running");
  await waitText("#connection", (text) => text.startsWith("live"), "the live connection");
  await shot("02-jobs");

  step("deploy a job, with the resources it takes shown first");
  await page.click("#deploy-a-job");
  await page.fill("#deploy-name", "bench");
  await page.fill("#deploy-args", "window 1000000000000 7 sources=1 rate=20000");
  await page.fill("#deploy-parallelism", "99");
  await waitText("#deploy-problem", (text) => text.includes("needs 99 slots"), "the capacity check");
  await page.fill("#deploy-parallelism", "1");
  await waitText("#resources", (text) => text.includes("Workers used: worker"), "the resource preview");
  await waitText("#preview-tasks", (text) => text.includes("Source: bids") && text.includes("Window"), "the job's tasks, as the masters plan them");
  await waitText("#preview-memory", (text) => /^Memory: about \d+\.\d MB \(input buffers at most/.test(text), "the memory it takes");
  await shot("03-deploy");
  await page.click("#deploy");
  await page.waitForURL(/\/jobs\/\d+$/);
  const job = Number(new URL(page.url()).pathname.split("/").pop());
  await waitText("#job-status", (text) => text === "running", "the deployed job runs");
  await page.waitForSelector("#checkpoints tbody tr");
  await page.waitForSelector("#checkpoint-timeline .timeline-row");
  await page.click("#checkpoints tbody tr:last-child");
  const chosen = await page.getAttribute("#checkpoints tbody tr:last-child", "data-checkpoint");
  await page.waitForFunction((id) => document.querySelector("#checkpoint-timeline h3")?.textContent?.startsWith(`Checkpoint ${id}:`), chosen);
  await shot("04-job");

  step("take a savepoint");
  await page.click("#savepoint");
  await waitText("#outcome", (text) => text.startsWith("savepoint taken"), "the savepoint");
  await waitText("#last-savepoint", (text) => text !== "none", "the job's last savepoint");

  step("rescale from 1 to 2 (checked against capacity first)");
  await page.fill("#rescale-parallelism", "1000");
  await page.waitForSelector("#rescale:disabled");
  await page.fill("#rescale-parallelism", "2");
  await page.click("#rescale");
  await waitText("#outcome", (text) => text.startsWith("rescaled to 2"), "the rescale");
  await waitText("#job-parallelism", (text) => text === "2", "the new parallelism");
  await waitText("#job-status", (text) => text === "running", "the rescaled job runs");
  await shot("05-rescaled");

  step("the cluster page names the leader and the workers' slots");
  await page.click("header >> text=Cluster");
  await waitText("#leader", (text) => text === "Leader: master 0", "the leader");
  await shot("06-cluster");

  step("stop the deployed job with a savepoint, and start a copy of it from that savepoint");
  await page.goto(`${base}jobs/${job}`);
  await waitText("#job-status", (text) => text === "running", "the job page after a reload (the session cookie)");
  await page.click("#stop-with-savepoint");
  await waitText("#job-status", (text) => text === "finished", "the stop with a savepoint");
  const savepoint = (await page.textContent("#last-savepoint")).trim();
  await page.click("text=Copy");
  await page.waitForURL(/\/deploy\?copy=\d+$/);
  await page.waitForFunction((path) => document.querySelector("#deploy-savepoint")?.value === path, savepoint, { polling: 200 });
  await page.fill("#deploy-parallelism", "2");
  await page.click("#deploy");
  await page.waitForURL(/\/jobs\/\d+$/);
  await waitText("#job-status", (text) => text === "running", "the job started from the savepoint");

  step("cancel the job started from the savepoint");
  await page.click("#cancel");
  await waitText("#job-status", (text) => text === "cancelled", "the cancellation");
  await shot("07-cancelled");

  step("a job with a slow sink: its graph shows the backpressure and marks the bottleneck");
  await page.goto(`${base}deploy`);
  await page.fill("#deploy-name", "bench");
  await page.fill("#deploy-args", "filter 1000000000000 7 split slow=3000");
  await page.fill("#deploy-parallelism", "1");
  await waitText("#resources", (text) => text.includes("Workers used: worker"), "the resource preview");
  await page.click("#deploy");
  await page.waitForURL(/\/jobs\/\d+$/);
  await waitText("#job-status", (text) => text === "running", "the slow job runs");
  await page.waitForSelector("#job-graph .vertex");
  await waitText("#bottleneck", (text) => text.startsWith("Bottleneck: task 1 (Sink"), "the bottleneck marked");
  await page.waitForSelector("#job-graph .vertex.bottleneck[data-task='1']");
  await page.waitForSelector("#job-graph .vertex.backpressured[data-task='0']");
  await page.waitForSelector("#job-graph .edge.starved");
  await page.waitForSelector("#subtasks .subtask-row");
  await page.locator("#job-graph").scrollIntoViewIfNeeded();
  await shot("08-bottleneck");
  await page.click("#cancel");
  await waitText("#job-status", (text) => text === "cancelled", "the slow job's cancellation");

  step("a SQL job: a mistake is refused at its line and column, then it deploys and runs");
  await page.goto(`${base}deploy`);
  await page.click("#mode-sql");
  await page.click("#sql-example");
  const example = await page.inputValue("#deploy-sql");
  await page.fill("#deploy-sql", example.replace("TABLE(TUMBLE(TABLE orders", "TABLE(TUMBLE(TABLE ordrs"));
  await page.click("#deploy");
  await waitText("#deploy-error", (text) => text.includes("ordrs") && text.includes("^") && text.includes("orders"), "the script's error");
  await shot("09-sql-error");
  await page.fill("#deploy-sql", example);
  await page.click("#deploy");
  await page.waitForURL(/\/jobs\/\d+$/);
  await waitText("#job-status", (text) => text === "running", "the SQL job runs");
  await page.waitForSelector("#job-graph .vertex");
  await shot("10-sql-job");
  await page.click("#cancel");
  await waitText("#job-status", (text) => text === "cancelled", "the SQL job's cancellation");

  step("a job whose sink cannot write: its failed attempts are listed with what failed");
  await page.goto(`${base}deploy`);
  await page.fill("#deploy-name", "digest");
  await page.fill("#deploy-args", "/proc/tethys-cannot-write-here window 100000 1");
  await page.click("#deploy");
  await page.waitForURL(/\/jobs\/\d+$/);
  await waitText("#exceptions tbody", (text) => text.includes("tethys-cannot-write-here"), "the failure listed");
  await shot("11-exceptions");
  const failing = /\/jobs\/(\d+)$/.exec(page.url())[1];
  await page.click("#cancel").catch(() => {});

  step("a worker's log, searched for that job from its page");
  await page.goto(`${base}logs?q=${encodeURIComponent(`job=${failing}`)}`);
  await waitText("#logs tbody", (text) => text.includes("attempt started"), "the job's attempts in the worker's log");
  const rows = await page.$$eval("#logs tbody tr", (trs) => trs.map((tr) => tr.textContent ?? ""));
  if (!rows.every((row) => row.includes(`job=${failing}`))) throw new Error(`a line of another job: ${rows.join(" | ")}`);
  await page.fill("#log-search", "worker serving");
  await page.click("text=Search");
  await waitText("#log-count", (text) => /^[1-9]\d* lines? holding “worker serving”/.test(text), "a new search");
  await shot("12-logs");

  step("upload a program of one's own and deploy its job, which the cluster's program does not have");
  await page.goto(`${base}deploy`);
  await page.setInputFiles("#program-file", program);
  await page.waitForSelector("#program-jobs button[data-job='best-bids']", { timeout: 120_000 });
  await shot("13-program");
  await page.click("#program-jobs button[data-job='best-bids']");
  await page.fill("#deploy-args", `${tmp}/program-out many 7`);
  await waitText("#preview-error", (text) => text.includes("'many' is not a number of events"), "the program's own check, before deploying");
  await page.fill("#deploy-args", `${tmp}/program-out 200000 7`);
  await page.fill("#deploy-parallelism", "1");
  await waitText("#resources", (text) => text.includes("Workers used: worker"), "the resource preview");
  await waitText("#preview-tasks", (text) => text.includes("Sink: best bids"), "the program's job's tasks");
  await page.click("#deploy");
  await page.waitForURL(/\/jobs\/\d+$/);
  await waitText("#job-program", (text) => /^[0-9a-f]{64}$/.test(text), "the job names its program");
  await waitText("#job-status", (text) => text === "finished", "the program's job runs to its end");
  await shot("14-program-job");
});
