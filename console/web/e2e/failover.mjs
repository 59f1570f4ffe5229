// The console through a leader change (cli/tests/console.rs starts three master processes, a
// worker and a job): logged in at a follower's console, the cluster page names the leader; the
// leader it names is killed (its pid from $MASTER_PIDS, SIGKILL; on a busy machine the leader may
// have changed since the test began, and if the page's own master leads now, the page moves to
// another's console first); within seconds the page names the new one and shows
// the killed master unreachable; the new leader's view of the job goes on from the old leader's
// history (the followers mirror it), and the job is still listed running. Screenshots go to $SCREENSHOTS.
import { login, run } from "./browser.mjs";

const { URL: base, TOKEN: token, MASTER_PIDS, MASTER_URLS } = process.env;
if (!base || !token || !MASTER_PIDS || !MASTER_URLS) throw new Error("URL, TOKEN, MASTER_PIDS and MASTER_URLS are required");
const pids = MASTER_PIDS.split(",").map(Number);
const urls = MASTER_URLS.split(",");

await run(async (page, { shot, waitText, step }) => {
  step("log in at a follower's console; the job runs");
  await login(page, base, token);
  await page.waitForSelector("#jobs tbody tr[data-job] .badge.running");

  const job = await page.getAttribute("#jobs tbody tr[data-job]", "data-job");
  const history = async () => {
    const response = await page.evaluate(async (path) => {
      const reply = await fetch(path, { credentials: "same-origin" });
      return { status: reply.status, body: reply.ok ? await reply.json() : null };
    }, `/api/jobs/${job}/live`);
    return response.status === 200 ? response.body.tasks[0].history.map((point) => point.at_ms) : [];
  };
  step("the leader keeps the job's figures; the followers mirror them");
  const before = Date.now() + 60_000;
  while ((await history()).length < 5) {
    if (Date.now() > before) throw new Error("the job's history never reached five points");
    await page.waitForTimeout(500);
  }
  // A follower mirrors every two seconds: let it take the newest.
  await page.waitForTimeout(2_500);

  step("the cluster page names the leader");
  const leaderShown = async () => {
    await page.click("header >> text=Cluster");
    await page.waitForFunction(() => /^Leader: master \d+$/.test(document.querySelector("#leader")?.textContent ?? ""), null, { polling: 200 });
    return Number((await page.textContent("#leader")).match(/\d+$/)[0]);
  };
  let LEADER = await leaderShown();
  if (urls[LEADER] === base) {
    // The page's own master leads now: watch from another's console.
    const other = urls.find((_, id) => id !== LEADER);
    console.log(`master ${LEADER} serves the page and leads now: moving to ${other}`);
    await login(page, other, token);
    LEADER = await leaderShown();
  }
  await shot("11-cluster-before");

  step("kill the leader: the page names a new one");
  const killedAt = Date.now();
  process.kill(pids[LEADER], "SIGKILL");
  await page.waitForFunction(
    (old) => {
      const text = document.querySelector("#leader")?.textContent ?? "";
      return /^Leader: master \d+$/.test(text) && text !== `Leader: master ${old}`;
    },
    LEADER,
    { timeout: 60_000, polling: 200 },
  );
  console.log(`new leader shown ${Date.now() - killedAt} ms after the kill: ${await page.textContent("#leader")}`);
  await page.waitForSelector(`tr[data-master="${LEADER}"] .health .badge.failed`, { timeout: 30_000 });
  console.log(`the killed master shown unreachable ${Date.now() - killedAt} ms after the kill`);
  await waitText("#connection", (text) => text.startsWith("live"), "the live connection after the change");
  await shot("12-cluster-after");

  step("the new leader's view of the job goes on from the old leader's history");
  const after = Date.now() + 60_000;
  for (;;) {
    const points = await history();
    const older = points.filter((at) => at < killedAt).length;
    if (older >= 3) {
      console.log(`the new leader shows ${points.length} points, ${older} of them from before the kill`);
      break;
    }
    if (Date.now() > after) throw new Error(`the new leader's history lost the old one's: ${JSON.stringify(points)} (killed at ${killedAt})`);
    await page.waitForTimeout(500);
  }

  step("the job is still running under the new leader");
  await page.click("header >> text=Jobs");
  await page.waitForSelector("#jobs tbody tr[data-job] .badge.running");
  await shot("13-jobs-after");
});
