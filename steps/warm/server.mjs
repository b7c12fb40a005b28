// A warm build server: imports the site's own Astro once, then runs one build per "build" line on stdin.
// Answers (one JSON line each) go to the real stdout; everything the build prints goes to stderr,
// so a log line can never be read as an answer by accident.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const writeAnswer = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);
const answer = (what) => writeAnswer(`${JSON.stringify(what)}\n`);

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
for await (const line of createInterface({ input: process.stdin })) {
  if (line !== "build") continue;
  const started = performance.now();
  try {
    await build({ root });
    answer({ ok: true, ms: Math.round(performance.now() - started) });
  } catch (error) {
    answer({ ok: false, error: String(error?.stack ?? error).slice(0, 2000) });
  }
}
