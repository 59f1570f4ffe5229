// Builds the console into ../dist (which the tethys binary embeds): one bundle and one stylesheet
// named by their content's hash under assets/, and index.html naming them. No asset is loaded from
// anywhere else at run time.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dist = new URL("../dist/", import.meta.url).pathname;
for (const entry of readdirSync(dist)) {
  if (entry !== ".gitkeep") rmSync(join(dist, entry), { recursive: true, force: true });
}
mkdirSync(join(dist, "assets"), { recursive: true });

const result = await build({
  entryPoints: ["src/main.tsx"],
  bundle: true,
  minify: true,
  sourcemap: false,
  format: "esm",
  target: "es2022",
  jsx: "automatic",
  jsxImportSource: "preact",
  write: false,
  outdir: "out",
  logLevel: "warning",
});

const hashed = (contents, extension) => {
  const hash = createHash("sha256").update(contents).digest("hex").slice(0, 12);
  const name = `assets/app-${hash}.${extension}`;
  writeFileSync(join(dist, name), contents);
  return name;
};
const script = hashed(result.outputFiles.find((file) => file.path.endsWith(".js")).contents, "js");
const style = hashed(readFileSync("src/style.css"), "css");
const index = readFileSync("src/index.html", "utf8").replace("%SCRIPT%", `/${script}`).replace("%STYLE%", `/${style}`);
writeFileSync(join(dist, "index.html"), index);
console.log(`console built into ${dist}: index.html, ${script}, ${style}`);
