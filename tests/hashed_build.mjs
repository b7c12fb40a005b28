// A stand-in for a build with hashed assets (as Astro's _astro/*.css): each page's text goes into an
// asset named after its hash and the page links it, so a live page whose asset is missing is broken.
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

mkdirSync(join("dist", "assets"), { recursive: true });
for (const name of readdirSync("src/pages")) {
  const text = readFileSync(join("src/pages", name), "utf8");
  const hash = createHash("sha256").update(text).digest("hex").slice(0, 12);
  writeFileSync(join("dist", "assets", `${hash}.css`), `/* ${name} */\nbody { --page: "${hash}"; }\n`);
  const page = name.replace(/\.astro$/, "");
  const target = page === "index" ? "dist" : join("dist", page);
  mkdirSync(target, { recursive: true });
  writeFileSync(join(target, "index.html"), `<link rel="stylesheet" href="/assets/${hash}.css">\n${text}`);
}
console.log("hashed build done");
