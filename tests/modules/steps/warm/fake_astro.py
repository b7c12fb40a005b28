"""A stand-in for Astro in a checkout's node_modules, for fast tests of the warm path: the real
steps/warm/server.mjs imports it and calls its build() as it would Astro's.

build() writes dist/index.html from src/page.txt, with a token of the process that built it (a server
reused or not; a pid would not do: in the sandbox's PID namespace every server is pid 2).
src/fail makes it throw, src/slow makes it take 30 s, src/grow makes it keep 200 MB, src/daemon makes it
leave two children: one detached (a session of its own), one kept (as esbuild's service is), src/chatty
makes a child print what looks like an answer on the server's own stdout."""

from __future__ import annotations

import json
from pathlib import Path

BUILD = """\
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
const server = `${process.pid}-${Math.random().toString(36).slice(2)}`;
export async function build({ root }) {
  const src = join(root, "src");
  console.log("building", root);
  if (existsSync(join(src, "chatty"))) {
    execFileSync(process.execPath, ["-e", "console.log('{\\"ok\\": false}\\\\nnoise')"], { stdio: "inherit" });
  }
  if (existsSync(join(src, "fail"))) throw new Error("the page does not compile");
  if (existsSync(join(src, "slow"))) await new Promise((done) => setTimeout(done, 30000));
  if (existsSync(join(src, "grow"))) globalThis.hoard = Buffer.alloc(200 * 2 ** 20, 1);
  if (existsSync(join(src, "daemon")) && !globalThis.children) {
    const sleep = ["-e", "setInterval(() => {}, 1000)"];
    globalThis.children = [
      spawn(process.execPath, [...sleep, "detached"], { detached: true, stdio: "ignore" }),
      spawn(process.execPath, [...sleep, "kept"], { stdio: "ignore" }),
    ];
    await Promise.all(globalThis.children.map((child) => once(child, "spawn")));  // both exec'd: the test names them
  }
  mkdirSync(join(root, "dist"), { recursive: true });
  const page = readFileSync(join(src, "page.txt"), "utf8");
  writeFileSync(join(root, "dist", "index.html"), `${page} built-by=${server}`);
}
"""


def make_site(checkout: Path, page: str = "hello") -> Path:
    (checkout / "src").mkdir(parents=True)
    (checkout / "src" / "page.txt").write_text(page)
    manifest = {"name": "site", "type": "module", "scripts": {"build": "astro build"}}
    (checkout / "package.json").write_text(json.dumps(manifest))
    astro = checkout / "node_modules" / "astro"
    astro.mkdir(parents=True)
    (astro / "package.json").write_text(json.dumps({"name": "astro", "type": "module", "exports": "./index.js"}))
    (astro / "index.js").write_text(BUILD)
    return checkout


def built_by(checkout: Path) -> tuple[str, str]:
    """(the page, the token of the server that built it)."""
    page, _, server = (checkout / "dist" / "index.html").read_text().rpartition(" built-by=")
    return page, server
