// How heavy the console is and how fast its first view comes, against a running console ($URL,
// $TOKEN: `tethys demo` prints both): the embedded assets' sizes (as served, and gzipped), the
// login page's load, and the jobs page's first view after logging in, each the median of five
// fresh page loads in headless Chromium. Prints one JSON line; bench/RESULTS.md records it.
import { gzipSync } from "node:zlib";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { login, run } from "./browser.mjs";

const { URL: base, TOKEN: token } = process.env;
if (!base || !token) throw new Error("URL and TOKEN are required");
const RUNS = 5;

/** Every file under `dir`, with its size and gzipped size. */
function assets(dir) {
  return readdirSync(dir, { recursive: true })
    .map((name) => join(dir, String(name)))
    .filter((path) => statSync(path).isFile() && !path.endsWith(".gitkeep"))
    .map((path) => {
      const bytes = readFileSync(path);
      return { path, bytes: bytes.length, gzipped: gzipSync(bytes).length };
    });
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

await run(async (page, { step }) => {
  step("the assets' sizes");
  const files = assets(new URL("../../dist", import.meta.url).pathname);
  const total = files.reduce((sum, file) => sum + file.bytes, 0);
  const gzipped = files.reduce((sum, file) => sum + file.gzipped, 0);

  step("the login page's load");
  const loginLoads = [];
  for (let i = 0; i < RUNS; i++) {
    await page.context().clearCookies();
    await page.goto(`${base}login`, { waitUntil: "load" });
    await page.waitForSelector("#token");
    loginLoads.push(await page.evaluate(() => performance.getEntriesByType("navigation")[0].loadEventEnd));
  }

  step("the jobs page's first view, logged in");
  await login(page, base, token);
  const firstViews = [];
  for (let i = 0; i < RUNS; i++) {
    const started = Date.now();
    await page.goto(`${base}jobs`, { waitUntil: "commit" });
    await page.waitForSelector("#jobs tbody tr[data-job]");
    firstViews.push(Date.now() - started);
  }
  const figures = {
    asset_files: files.length,
    asset_bytes: total,
    asset_bytes_gzipped: gzipped,
    login_load_ms_median: Math.round(median(loginLoads)),
    jobs_first_view_ms_median: median(firstViews),
    jobs_first_view_ms_max: Math.max(...firstViews),
  };
  console.log(JSON.stringify(figures));
  if (total > 1.5 * 1024 * 1024) throw new Error(`the assets take ${total} bytes, over 1.5 MiB`);
});
