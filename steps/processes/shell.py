"""The one place that runs shell-level commands: through `sh`, with an argument list, never a shell string.

Output is streamed into the log line by line as it arrives. Every command runs in a session of its own
so a timeout can take down its whole tree (sh's own `_timeout` kills only the direct pid).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sh

from supervisor.common.logs import current_context, log_context
from supervisor.common.proctree import terminate_tree

log = logging.getLogger("steps.processes.shell")

# Variables that carry credentials. Commands that run code we did not write (the agent, npm, the
# site's build) never see them; git and the deploy get only what they need, explicitly.
SECRET_VARIABLES = frozenset(
    {
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "WEBORDINARY_GIT_TOKEN",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_PROFILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_CONFIG_FILE",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "SSH_AUTH_SOCK",
        # The agent's model credentials: only the agent gets them (steps/claude/environment.py).
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "AWS_BEARER_TOKEN_BEDROCK",
    }
)
TAIL_LINES = 40
# Seconds this process has spent waiting on external commands: the worker logs it, so overhead can be
# told apart from the commands' own time (bench/bench_supervisor.py).
command_seconds = 0.0
# How long a command interrupted with us (SIGINT reaches the whole tree) may take to stop by itself
# before SIGTERM; the worker sets it from INTERRUPT_GRACE_SECONDS.
interrupt_grace = 2.0


def _always(_error: BaseException) -> bool:
    return True


# Whether an exception that interrupts a running command means we end the command's tree. Yes by
# default (Ctrl-C in bin/watch: nobody else will); a worker answers no while its supervisor lives,
# since the supervisor's ladder already reaches every process of the tree (steps/worker.py).
ends_tree_on_interrupt: Callable[[BaseException], bool] = _always


def _nothing_pending() -> None:
    return None


# Called when a command failed, before that counts as its failure: a worker whose own stop is still
# held back (it arrived inside logging: steps/worker.py) raises it here, since the same ladder signalled
# the command; a step must not report our own interrupt as its command's failure, or as a crash.
raise_pending_stop: Callable[[], None] = _nothing_pending


AWS_CREDENTIAL_VARIABLES = frozenset(
    name for name in SECRET_VARIABLES if name.startswith("AWS_") and name != "AWS_BEARER_TOKEN_BEDROCK"
)


def scrubbed_env(
    base: Mapping[str, str] | None = None, *, keep: frozenset[str] = frozenset(), **extra: str
) -> dict[str, str]:
    """The environment without credentials (except those named in `keep`), plus `extra`."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if k not in SECRET_VARIABLES or k in keep}
    env.update(extra)
    return env


class CommandFailed(Exception):
    def __init__(self, argv: Sequence[str], exit_code: int, tail: Sequence[str], stderr: str = ""):
        self.argv = list(argv)
        self.exit_code = exit_code
        self.tail = list(tail)
        self.stderr = stderr  # all of it: the reason may stand above pages of usage text
        super().__init__(f"{Path(argv[0]).name} exited with {exit_code}: {_reason(tail)}"[:500])


def _reason(tail: Sequence[str]) -> str:
    """The line that says why: git's first `fatal:` (the lines after it are advice, such as "Please make
    sure you have the correct access rights and the repository exists."), else the last line."""
    return next((line for line in tail if line.startswith("fatal:")), tail[-1] if tail else "")


class CommandTimedOut(Exception):
    def __init__(self, argv: Sequence[str], seconds: float, tail: Sequence[str]):
        self.argv = list(argv)
        self.seconds = seconds
        self.tail = list(tail)
        super().__init__(f"{Path(argv[0]).name} did not finish within {seconds:g} s")


@dataclass
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str
    duration: float
    lines: list[str] = field(default_factory=list)


# Sees each stdout line; returns True once the output is complete (the process may then linger).
LineHook = Callable[[str], bool]


def run(
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str],
    timeout: float | None = None,
    stdin: str | None = None,
    log_output: bool = True,
    log_stdout: bool = True,
    on_line: LineHook | None = None,
    linger: float = 10.0,
    ok_codes: Sequence[int] = (0,),
    kill_grace: float = 2.0,
    preexec: Callable[[], None] | None = None,
) -> CommandResult:
    """Run argv and wait; stream stdout/stderr to the log; raise CommandFailed or CommandTimedOut.

    `log_stdout=False` keeps stdout out of the log (the agent's stream holds whole files); stderr is
    still logged. When `on_line` reports the output complete and the process has not exited `linger` seconds later,
    its tree is ended and the run counts as a success (a finished `claude -p` has been seen to hang).
    `preexec` runs in the forked child before exec (steps/job: become the job's identity).
    """
    name = Path(argv[0]).name
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    timed_out = threading.Event()
    stopped_after_output = threading.Event()
    timers: list[threading.Timer] = []
    pid_box: list[int] = []

    def end_tree(flag: threading.Event) -> None:
        flag.set()
        if pid_box:
            terminate_tree(pid_box[0], grace=kill_grace)

    def start_timer(seconds: float, flag: threading.Event) -> None:
        timer = threading.Timer(seconds, end_tree, args=(flag,))
        timer.daemon = True
        timers.append(timer)
        timer.start()

    fields = current_context()  # sh calls back from its own threads

    def keep(line: str, chunks: list[str], stream: str) -> str:
        chunks.append(line)
        text = line.rstrip("\n")
        tail.append(text)
        if log_output and text and (log_stdout or stream == "stderr"):
            with log_context(**fields):
                log.info(text[:2000], extra={"stream": stream, "command": name})
        return text

    def on_out(line: str) -> None:
        text = keep(line, out_chunks, "stdout")
        if on_line is None:
            return
        with log_context(**fields):  # the hook may log too
            complete = on_line(text)
        if complete and not stopped_after_output.is_set() and len(timers) < 2:
            start_timer(linger, stopped_after_output)

    def on_err(line: str) -> None:
        keep(line, err_chunks, "stderr")

    started = time.monotonic()
    try:
        program = sh.Command(argv[0])
    except sh.CommandNotFound:
        raise CommandFailed(argv, 127, [f"command not found: {argv[0]}"]) from None
    process = program(
        *argv[1:],
        _cwd=str(cwd),
        _env=dict(env),
        _in=stdin if stdin is not None else "",
        _out=on_out,
        _err=on_err,
        _tty_out=False,
        _bg=True,
        _bg_exc=False,
        _new_session=True,
        _ok_code=list(ok_codes),
        _decode_errors="replace",
        _preexec_fn=preexec,
    )
    pid_box.append(process.pid)

    def end_after_interrupt(error: BaseException) -> None:
        # One ladder per tree. Ours (SIGINT, grace, SIGTERM, SIGKILL) unless whoever interrupted us is
        # ending the whole tree already (a worker's supervisor).
        if ends_tree_on_interrupt(error):
            terminate_tree(process.pid, grace=interrupt_grace, first_signal=signal.SIGINT)

    if timeout is not None:
        start_timer(timeout, timed_out)
    try:
        process.wait()
    except (sh.ErrorReturnCode, sh.SignalException) as error:
        if timed_out.is_set():
            raise CommandTimedOut(argv, timeout or 0, list(tail)) from None
        try:
            raise_pending_stop()  # our own stop, held back, likely killed it: that is no failure of the command
        except BaseException as stop:
            end_after_interrupt(stop)  # what it left in its session
            raise
        if not stopped_after_output.is_set():
            raise CommandFailed(argv, error.exit_code, list(tail), "".join(err_chunks)) from None
        log.warning("%s lingered %gs after its output was complete; ended it", name, linger)
    except BaseException as error:
        end_after_interrupt(error)  # interrupted, or any other way out
        raise
    finally:
        for timer in timers:
            timer.cancel()
        global command_seconds
        command_seconds += time.monotonic() - started
    if timed_out.is_set():
        raise CommandTimedOut(argv, timeout or 0, list(tail))
    return CommandResult(
        exit_code=process.exit_code or 0,
        stdout="".join(out_chunks),
        stderr="".join(err_chunks),
        duration=time.monotonic() - started,
        lines=list(tail),
    )
