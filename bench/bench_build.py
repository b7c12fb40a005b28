"""Benchmark: a one-page rebuild of a 1,000-page Astro site, cold (as the worker builds today) against warm.

The site is examples/demo-site plus a content collection of --pages Markdown posts (~6 KB each: headings,
paragraphs, a list, links to other posts) rendered by src/pages/posts/[slug].astro with getStaticPaths,
and an index listing them all. It is installed once with `npm ci` from the demo site's lockfile and copied,
one copy per mode (same path length, node_modules copied, not linked), and every copy is built once in full
before anything is timed. Then each round edits ONE post's body in every copy, the same edit, and each
copy is rebuilt once, the order rotating from round to round:

  (a)  cold: `npm run build` in a new process, exactly as steps/build.py runs BUILD_COMMAND's default
       (the scrubbed environment, NODE_ENV=production, ASTRO_TELEMETRY_DISABLED=1, cwd the checkout);
       no job identity and no sandbox here: their cost is *Containment*'s bench;
  (a2) cold without npm: `node node_modules/astro/astro.js build`, the same new node + Astro CLI;
  (a3) with node >= 22 only: (a) with NODE_COMPILE_CACHE, node's on-disk cache of compiled modules;
  (c)  warm: one long-lived node process per copy that imported astro once and calls its programmatic
       `build({ root })` for each rebuild (started before the rounds; its own first build not counted);
  (d)  warm as shipped (BUILD_MODE=warm): steps/warm's manager and server.mjs, asked by the worker's
       client over its socket, the fingerprint checked, the server stopped (SIGSTOP) between builds;
       no identity, no sandbox, as (a);
  (e)  cold contained: (a) as the worker runs it, through steps/job with this host's layers (as root:
       the job's uid, bubblewrap where user namespaces work), its leftovers ended after it;
  (f)  warm as shipped and contained: (d) with the same layers (the server's own uid, its sandbox).

And, --runs times each, what a cold build pays before Astro does anything:
  (b0) `node -e 0`, (b1) `node --input-type=module -e "await import('astro')"` (node + astro's modules),
  (b2) `npm run startup`, a package script running b1 (npm + node + astro's modules): (a)'s start-up.
Astro's own log splits each build further (content sync, Vite's bundling, rendering the pages).

Every build's dist/ is hashed file by file; all copies must match in each round (same source), and what
differs is printed. The figures are medians; the machine is noisy (2 shared cores): the load average is
printed at the start and the end, and the modes are interleaved so drift hits all alike.

Run: .venv/bin/python bench/bench_build.py [--pages 1000] [--runs 5] [--node PATH]   (about 5 minutes;
npm's registry or its cache is used once)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from steps.job.runner import UNCONFINED, Containment, JobRunner, find_containment  # noqa: E402
from steps.processes import shell  # noqa: E402
from steps.warm import client as warm_client  # noqa: E402
from steps.warm.manager import Manager, listen  # noqa: E402
from supervisor.contract.config import load_config  # noqa: E402

DEMO_SITE = ROOT / "examples" / "demo-site"
SEED = 20240521
CHANGED = 500  # the post edited in every round
# steps/build.py's environment; --node puts another node first on its PATH.
ENV = shell.scrubbed_env(NODE_ENV="production", ASTRO_TELEMETRY_DISABLED="1")
WARM = "warm: build() in one process"
NPM_STARTUP = "(b2) npm run + node + import('astro')"
IMPORT_ASTRO = "await import('astro')"
MARKER = "@@warm "

CONTENT_CONFIG = """\
import { defineCollection, z } from "astro:content";
import { glob } from "astro/loaders";

const posts = defineCollection({
  loader: glob({ pattern: "**/*.md", base: "./src/content/posts" }),
  schema: z.object({ title: z.string(), date: z.coerce.date(), summary: z.string(), tags: z.array(z.string()) }),
});

export const collections = { posts };
"""

POST_PAGE = """\
---
import { getCollection, render } from "astro:content";
import Base from "../../layouts/Base.astro";

export async function getStaticPaths() {
  const posts = await getCollection("posts");
  return posts.map((post) => ({ params: { slug: post.id }, props: { post } }));
}

const { post } = Astro.props;
const { Content, headings } = await render(post);
---
<Base title={post.data.title}>
  <article>
    <h2>{post.data.title}</h2>
    <p><time datetime={post.data.date.toISOString()}>{post.data.date.toDateString()}</time></p>
    <nav><ul>{headings.map((h) => <li><a href={`#${h.slug}`}>{h.text}</a></li>)}</ul></nav>
    <Content />
    <p>Tags: {post.data.tags.join(", ")}</p>
  </article>
</Base>
"""

POSTS_INDEX = """\
---
import { getCollection } from "astro:content";
import Base from "../../layouts/Base.astro";

const posts = (await getCollection("posts")).sort((a, b) => a.id.localeCompare(b.id));
---
<Base title="Journal">
  <h2>Journal</h2>
  <ul>{posts.map((post) => <li><a href={`/posts/${post.id}/`}>{post.data.title}</a> {post.data.summary}</li>)}</ul>
</Base>
"""

# The warm process: imports astro once (from the site's own node_modules), then one build per "build" line.
WARM_SERVER = """\
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const root = process.argv[2];
const astro = createRequire(`${root}/package.json`).resolve("astro");
const { build } = await import(pathToFileURL(astro).href);
const say = (what) => process.stdout.write(`@@warm ${JSON.stringify(what)}\\n`);
say({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  if (line !== "build") continue;
  const started = performance.now();
  try {
    await build({ root });
    say({ ok: true, ms: performance.now() - started });
  } catch (error) {
    say({ ok: false, error: String(error?.stack ?? error) });
  }
}
"""

_VOCABULARY = (
    "stamp rubber carve linoleum ink pad handle ornament border letter press paper card wedding invitation "
    "studio order custom design proof sketch mirror image depth edge bevel mount wood cherry maple birch "
    "gift workshop craft season label logo monogram flower leaf wave star pattern texture gouge blade"
)
WORDS = _VOCABULARY.split()


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(4, 7)))


def post_text(index: int, pages: int, edit: str | None = None) -> str:
    """Post `index`'s Markdown (~6 KB); `edit` replaces its first paragraph (the one-page change)."""
    rng = random.Random(SEED * 100_003 + index)
    title = f"{rng.choice(WORDS).capitalize()} and {rng.choice(WORDS)}, part {index}"
    tags = json.dumps(sorted({rng.choice(WORDS) for _ in range(3)}))
    front = f'---\ntitle: "{title}"\ndate: 2024-{1 + index % 12:02d}-{1 + index % 28:02d}\n'
    front += f'summary: "{_sentence(rng)}"\ntags: {tags}\n---\n\n'
    sections = []
    for number in range(1, 5):
        body = [_paragraph(rng) for _ in range(2)]
        if number == 2:
            body.append("\n".join(f"- {_sentence(rng)}" for _ in range(5)))
        if number == 3:
            others = [rng.randrange(pages) for _ in range(3)]
            body.append("See also " + ", ".join(f"[post {o}](/posts/post-{o:04d}/)" for o in others) + ".")
        sections.append(f"## {rng.choice(WORDS).capitalize()} {number}\n\n" + "\n\n".join(body))
    text = front + "\n\n".join(sections) + "\n"
    if edit is not None:
        first = text.index("\n\n", text.index("## ")) + 2
        text = text[:first] + edit + text[text.index("\n\n", first) :]
    return text


def make_site(target: Path, pages: int) -> None:
    shutil.copytree(DEMO_SITE, target, ignore=shutil.ignore_patterns("node_modules", "dist", ".astro"))
    (target / "src" / "content.config.ts").write_text(CONTENT_CONFIG)
    posts = target / "src" / "content" / "posts"
    posts.mkdir(parents=True)
    for index in range(pages):
        (posts / f"post-{index:04d}.md").write_text(post_text(index, pages))
    (target / "src" / "pages" / "posts").mkdir()
    (target / "src" / "pages" / "posts" / "[slug].astro").write_text(POST_PAGE)
    (target / "src" / "pages" / "posts" / "index.astro").write_text(POSTS_INDEX)
    manifest = json.loads((target / "package.json").read_text())
    manifest["scripts"]["startup"] = f'node --input-type=module -e "{IMPORT_ASTRO}"'  # (b2)
    (target / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")


def edit_page(site: Path, pages: int, edit: str) -> None:
    (site / "src" / "content" / "posts" / f"post-{CHANGED:04d}.md").write_text(post_text(CHANGED, pages, edit))


def hash_output(site: Path) -> dict[str, str]:
    dist = site / "dist"
    return {
        str(path.relative_to(dist)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(dist.rglob("*"))
        if path.is_file()
    }


def timed_run(argv: list[str], cwd: Path, **env: str) -> tuple[float, str]:
    """(wall seconds, stdout) of one new process run as steps/build.py runs the build, `env` added."""
    started = time.monotonic()
    result = shell.run(argv, cwd=cwd, env={**ENV, **env}, log_output=False, timeout=900)
    return time.monotonic() - started, result.stdout


# Astro's own timings in its build log: "[types] Generated 1.57s", "[vite] ✓ built in 3.51s", the routes'
# "✓ Completed in 1.27s." (no tag) and "[build] 603 page(s) built in 6.86s" (all of it from loading the config).
PHASES = {
    "content sync + types": re.compile(r"\[types\] Generated ([\d.]+m?s)"),
    "Vite bundling": re.compile(r"\[vite\] ✓ built in ([\d.]+m?s)"),
    "rendering the pages": re.compile(r"^\S+ ✓ Completed in ([\d.]+m?s)", re.MULTILINE),
    "Astro's build in all": re.compile(r"\[build\] \d+ page\(s\) built in ([\d.]+m?s)"),
}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def phases(log: str) -> dict[str, float]:
    """Seconds per phase Astro reports in `log` (a phase it did not report is left out)."""
    text = ANSI.sub("", log)
    found = {}
    for name, pattern in PHASES.items():
        match = pattern.search(text)
        if match:
            value = match.group(1)
            found[name] = float(value[:-2]) / 1000 if value.endswith("ms") else float(value[:-1])
    return found


class WarmBuilder:
    """One long-lived node process that imported astro once; `build()` asks it for one build."""

    def __init__(self, site: Path, script: Path, log: Path):
        self.site = site
        self.log = log.open("w")
        self.process = subprocess.Popen(
            ["node", str(script), str(site)],
            cwd=site,
            env=ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self._answer()  # ready

    def _answer(self) -> tuple[dict, str]:
        assert self.process.stdout is not None
        lines = []
        for line in self.process.stdout:  # Astro's own log lines come first
            if line.startswith(MARKER):
                return json.loads(line[len(MARKER) :]), "".join(lines)
            lines.append(line)
        raise RuntimeError(f"the warm process ended (exit {self.process.wait()}); see {self.log.name}")

    def build(self) -> tuple[float, str]:
        assert self.process.stdin is not None
        started = time.monotonic()
        self.process.stdin.write("build\n")
        self.process.stdin.flush()
        answer, log = self._answer()
        if not answer.get("ok"):
            raise RuntimeError(f"warm build failed: {answer.get('error')}")
        return time.monotonic() - started, log

    def rss_mib(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class ShippedWarm:
    """The shipped warm path: a manager of steps/warm (its own thread here, its own process in a
    supervisor), asked through the worker's client; one per containment."""

    def __init__(self, workspace: Path, containment: Containment, name: str):
        self.containment = containment
        config = {"WORKSPACE_PATH": str(workspace), "BUILD_MODE": "warm", "BUILD_WARM_MEMORY_MIB": "8192"}
        self.config = load_config({**config, "JOB_UID_RANGE": "700000-700999"}, require_input_queue=False)
        folder = Path(tempfile.mkdtemp(prefix=f"bench-warm-{name}-"))
        self.socket = folder / "manager.sock"
        self.manager = Manager(self.config, containment, folder)
        self.listener = listen(self.socket)
        self.stop = threading.Event()
        threading.Thread(target=self.manager.serve, args=(self.listener, self.stop), daemon=True).start()

    def runner(self, site: Path) -> JobRunner:
        return JobRunner.for_checkout(self.containment, site, self.config.workspace_path, (), self.config.job_uid_range)

    def build(self, site: Path) -> tuple[float, str]:
        os.environ[warm_client.SOCKET_VARIABLE] = str(self.socket)
        started = time.monotonic()
        warm_client.build(site, 900, {"commandId": "bench"})
        return time.monotonic() - started, ""

    def rss_mib(self) -> float:
        return sum(server.rss_mib() for server in self.manager.servers.values())

    def close(self) -> None:
        self.stop.set()
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.manager.close()
        shutil.rmtree(self.socket.parent, ignore_errors=True)


def contained_cold(site: Path, runner: JobRunner) -> Callable[[], tuple[float, str]]:
    """(e): BUILD_COMMAND's default as steps/build.py runs it, under the job's layers."""

    def build() -> tuple[float, str]:
        started = time.monotonic()
        result = runner.run(["npm", "run", "build"], env=ENV, npm=False, timeout=900, log_output=False)
        return time.monotonic() - started, result.stdout

    return build


@dataclass
class Mode:
    name: str
    site: Path
    build: Callable[[], tuple[float, str]]
    seconds: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f}"


def spread_ms(values: list[float]) -> str:
    return f"{min(values) * 1000:.0f}-{max(values) * 1000:.0f}"


def differences(reference: dict[str, str], other: dict[str, str]) -> list[str]:
    names = sorted(set(reference) | set(other))
    return [name for name in names if reference.get(name) != other.get(name)]


def install(work: Path, pages: int, names: list[str]) -> list[Path]:
    """The site installed once, then copied: one copy per mode, all at paths of the same length."""
    first = work / names[0] / "site"
    make_site(first, pages)
    started = time.monotonic()
    argv = ["npm", "ci", "--no-audit", "--no-fund", "--prefer-offline"]  # steps/processes/deps.py's
    shell.run(argv, cwd=first, env={**shell.scrubbed_env(), "PATH": ENV["PATH"]}, log_output=False, timeout=900)
    print(f"npm ci: {time.monotonic() - started:.1f} s", flush=True)
    copies = [first]
    for name in names[1:]:  # a full copy each: a hard link would share node_modules/.astro's data store
        copy = work / name / "site"
        copy.parent.mkdir()
        subprocess.run(["cp", "-a", str(first), str(copy)], check=True)
        copies.append(copy)
    return copies


def cold_mode(name: str, site: Path, argv: list[str], **env: str) -> Mode:
    return Mode(name, site, lambda: timed_run(argv, site, **env))


def print_figures(modes: list[Mode], start_seconds: dict[str, list[float]], runs: int) -> None:
    print(f"\none-page rebuild, {runs} runs each        median ms   min-max ms")
    for mode in modes:
        print(f"{mode.name:40} {median_ms(mode.seconds)}   {spread_ms(mode.seconds)}")
    for name, values in start_seconds.items():
        print(f"{name:40} {median_ms(values)}   {spread_ms(values)}")
    print("\nwhere the time goes (Astro's own log; start-up = wall - Astro's build in all), median ms")
    print(f"{'':40} " + " ".join(f"{m.name.split(':')[0]:>8}" for m in modes))
    for phase in ("start-up", *PHASES):
        cells = []
        for mode in modes:
            values = [
                wall - found["Astro's build in all"] if phase == "start-up" else found[phase]
                for wall, found in zip(mode.seconds, mode.phases, strict=True)
                if phase in found or (phase == "start-up" and "Astro's build in all" in found)
            ]
            cells.append(median_ms(values) if values else "       -")
        print(f"{phase:40} " + " ".join(f"{cell:>8}" for cell in cells))
    cold = statistics.median(modes[0].seconds)
    print()
    for mode in modes[1:]:  # the minimums too: under load, the fastest run is the one least disturbed
        saving = (1 - statistics.median(mode.seconds) / cold) * 100
        fastest = (1 - min(mode.seconds) / min(modes[0].seconds)) * 100
        print(
            f"{mode.name.split(':')[0]} vs (a): saves {saving:.1f} % (medians), {fastest:.1f} % (minimums)"
            + (" (goal to ship: >= 30 %)" if WARM in mode.name else "")
        )
    startup = statistics.median(start_seconds[NPM_STARTUP])
    print(
        f"(a) split: start-up (b2) {startup * 1000:.0f} ms = {startup / cold * 100:.1f} %, "
        f"the rest (config, content, Vite, rendering, writing) {(cold - startup) * 1000:.0f} ms "
        f"= {(1 - startup / cold) * 100:.1f} %"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="one-page rebuilds per mode, and start-up runs")
    parser.add_argument("--node", type=Path, help="the node binary to use (default: the one on PATH)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (its path is printed)")
    args = parser.parse_args()
    if args.node:
        ENV["PATH"] = f"{args.node.resolve().parent}{os.pathsep}{ENV.get('PATH', '')}"

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    node_version = subprocess.run(["node", "--version"], env=ENV, capture_output=True, text=True, check=True).stdout
    compile_cache = int(node_version.strip().lstrip("v").split(".")[0]) >= 22  # NODE_COMPILE_CACHE: 22.1
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    work.chmod(0o711)  # job uids pass through to their checkouts, (e) and (f)
    warm: WarmBuilder | None = None
    shipped: list[ShippedWarm] = []
    containment = find_containment("auto")
    print(f"containment of (e) and (f): {containment.layers()}")
    try:
        sites = install(work, args.pages, ["a", "b", "c", "d", "e", "f", "g"])
        script = work / "warm-build.mjs"
        script.write_text(WARM_SERVER)
        astro = json.loads((sites[0] / "node_modules" / "astro" / "package.json").read_text())["version"]
        print(f"node {node_version.strip()}, astro {astro}, {args.pages} posts + the demo's pages")

        modes = [
            cold_mode("(a) cold: npm run build", sites[0], ["npm", "run", "build"]),
            cold_mode("(a2) cold: node astro.js build", sites[1], ["node", "node_modules/astro/astro.js", "build"]),
        ]
        if compile_cache:
            cache = str(work / "compile-cache")
            modes.append(
                cold_mode(
                    "(a3) cold: + NODE_COMPILE_CACHE", sites[3], ["npm", "run", "build"], NODE_COMPILE_CACHE=cache
                )
            )
        shipped = [ShippedWarm(work, UNCONFINED, "d"), ShippedWarm(work, containment, "f")]
        contained = shipped[1].runner(sites[5])
        for site in sites[4:7]:
            shipped[1].runner(site).prepare_workspace()  # the job's group on every file, as a worker does
        modes += [
            Mode("(d) warm as shipped", sites[4], lambda: shipped[0].build(sites[4])),
            Mode("(e) cold contained", sites[5], contained_cold(sites[5], contained)),
            Mode("(f) warm as shipped, contained", sites[6], lambda: shipped[1].build(sites[6])),
        ]
        for mode in modes:  # the first, full build: not counted (it fills Astro's caches, and node's)
            mode.build()
        started = time.monotonic()
        warm = WarmBuilder(sites[2], script, work / "warm.log")
        warm.build()
        print(f"full build: warm process start + first build {time.monotonic() - started:.1f} s; ", end="")
        print(f"{len(hash_output(sites[2]))} files in dist/")
        modes.insert(2, Mode(f"(c) {WARM}", sites[2], warm.build))

        starts = {
            "(b0) node -e 0": ["node", "-e", "0"],
            "(b1) node + import('astro')": ["node", "--input-type=module", "-e", IMPORT_ASTRO],
            NPM_STARTUP: ["npm", "run", "--silent", "startup"],
        }
        start_seconds: dict[str, list[float]] = {name: [] for name in starts}
        identical, rss, shipped_rss = 0, [], []
        for round_ in range(args.runs):
            edit = f"Edited in round {round_ + 1}: {'new words ' * (round_ + 1)}end."
            outputs: dict[str, dict[str, str]] = {}
            turn = round_ % len(modes)
            for mode in modes[turn:] + modes[:turn]:  # rotating order
                edit_page(mode.site, args.pages, edit)
                shutil.rmtree(mode.site / "dist", ignore_errors=True)  # as steps/build.py does, not timed
                seconds, log = mode.build()
                mode.seconds.append(seconds)
                mode.phases.append(phases(log))
                outputs[mode.name] = hash_output(mode.site)
            for name, argv in starts.items():
                start_seconds[name].append(timed_run(argv, sites[0])[0])
            rss.append(warm.rss_mib())
            shipped_rss.append([round(each.rss_mib()) for each in shipped])
            reference = outputs[modes[0].name]
            page = sites[0] / "dist" / "posts" / f"post-{CHANGED:04d}" / "index.html"
            changed = page.is_file() and edit.encode() in page.read_bytes()
            diffs = {m.name: differences(reference, outputs[m.name]) for m in modes[1:]}
            same = all(not d for d in diffs.values())
            identical += same and changed
            line = ", ".join(f"{m.name.split(':')[0]} {m.seconds[-1]:.2f} s" for m in modes)
            print(f"round {round_ + 1}: {line}; output identical: {same}; edit in the page: {changed}", flush=True)
            for name, names in diffs.items():
                if names:
                    print(f"  {name} differs in {len(names)} files: {', '.join(names[:5])}")

        print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print_figures(modes, start_seconds, args.runs)
        print(f"output identical in {identical} of {args.runs} rounds (every file of dist/, the edit in the page)")
        print(f"warm process RSS after each round: {', '.join(f'{r:.0f}' for r in rss)} MiB")
        print(f"(d), (f) servers' RSS after each round: {shipped_rss} MiB")
        (e, f) = (statistics.median(mode.seconds) for mode in modes[-2:])
        print(f"(f) vs (e), both contained: saves {(1 - f / e) * 100:.1f} % (medians) (goal to ship: >= 30 %)")
        return 0 if identical == args.runs else 1
    finally:
        if warm is not None:
            warm.close()
        for each in shipped:
            each.close()
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
