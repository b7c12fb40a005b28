// A warm build server: imports the site's own Astro once, then runs one build per "build" line on stdin.
// Its first line on stdin is a token: an answer is the token and one JSON object on a line of stdout.
// Whatever else reaches stdout (a child process the site's code started with its output inherited)
// is not an answer; what the build prints itself goes to stderr.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const writeAnswer = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const token = (await lines.next()).value ?? "";
const answer = (what) => writeAnswer(`\n${token} ${JSON.stringify(what)}\n`);

const root = process.cwd();
let build;
try {
  const entry = createRequire(`${root}/package.json`).resolve("astro");
  ({ build } = await import(pathToFileURL(entry).href));
  if (typeof build !== "function") throw new Error("the site's astro has no build()");
} catch (error) {
  answer({ ready: false, error: String(error?.message ?? error).slice(0, 500) });
  process.exit(1);
}
answer({ ready: true });
for (let line = await lines.next(); !line.done; line = await lines.next()) {
  if (line.value !== "build") continue;
  const started = performance.now();
  try {
    await build({ root });
    answer({ ok: true, ms: Math.round(performance.now() - started) });
  } catch (error) {
    answer({ ok: false, error: String(error?.stack ?? error).slice(0, 2000) });
  }
}
