// A stand-in for `astro build` in tests about scheduling, not building: copies each page's text into
// dist/ in a few milliseconds. Tests about the build itself use the real `npm run build`.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

mkdirSync("dist", { recursive: true });
for (const name of readdirSync("src/pages")) {
  const page = name.replace(/\.astro$/, "");
  const target = page === "index" ? "dist" : join("dist", page);
  mkdirSync(target, { recursive: true });
  writeFileSync(join(target, "index.html"), readFileSync(join("src/pages", name), "utf8"));
}
console.log("quick build done");
