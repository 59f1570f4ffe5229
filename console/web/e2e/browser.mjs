// What the console's browser checks share: headless Chromium (the machine's, driven by
// playwright-core), screenshots, waiting for an element's text, and a run that names the step
// that failed.
import { chromium } from "playwright-core";

export const STEP_MS = 60_000;

/** Runs `checks(page, helpers)` in a fresh browser page; exits non-zero naming the failed step. */
export async function run(checks) {
  const { SCREENSHOTS: shots = "/tmp", CHROMIUM = "/usr/bin/chromium" } = process.env;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.setDefaultTimeout(STEP_MS);
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  const state = { step: "start" };
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const waitText = (selector, predicate, what) =>
    page
      .waitForFunction(
        ([selector, source]) => {
          const element = document.querySelector(selector);
          return element !== null && new Function("text", `return (${source})(text)`)(element.textContent.trim());
        },
        [selector, predicate.toString()],
        { timeout: STEP_MS, polling: 200 },
      )
      .catch(async (error) => {
        const shown = await page.textContent(selector).catch(() => null);
        throw new Error(`${what}: ${selector} shows ${JSON.stringify(shown)} (${error.message.split("\n")[0]})`);
      });
  const step = (name) => {
    state.step = name;
  };
  try {
    await checks(page, { shot, waitText, step });
    if (errors.length > 0) throw new Error(`errors in the page: ${errors.join("; ")}`);
    console.log(`console checks passed; screenshots in ${shots}`);
  } catch (error) {
    await shot("failed").catch(() => {});
    console.error(`FAILED at "${state.step}": ${error.message}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

/** Logs in at `base` with `token` and waits for the jobs page. */
export async function login(page, base, token) {
  await page.goto(`${base}jobs`);
  // The session cookie names the host, not the port: a page logged in at one master of a local
  // cluster is already logged in at the others.
  await page.waitForSelector("#token, #jobs");
  if (!(await page.$("#token"))) return;
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.waitForSelector("#jobs");
}
