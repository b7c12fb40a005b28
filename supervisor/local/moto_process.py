"""moto's server in a process of its own (`python -m supervisor.local.moto_process`): it prints its
port on the first line, serves until stdin closes or SIGTERM. A process of its own keeps moto's work
off the caller's interpreter lock: in a benchmark the fake AWS and the load generator no longer slow
each other down."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from supervisor.local.moto_speed import speed_up_moto_sqs


def serve() -> None:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
    speed_up_moto_sqs()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server.get_host_and_port()[1]
    run_state_machines(port)
    print(port, flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    server.stop()


def run_state_machines(port: int) -> None:
    """Let moto run the state machines created on it (`bin/run-local --step-functions`, the tests): its
    tasks call moto back at localhost:MOTO_PORT."""
    from moto.core.config import default_user_config

    os.environ["MOTO_PORT"] = str(port)
    default_user_config["stepfunctions"] = {"execute_state_machine": True}


@contextmanager
def moto_server() -> Iterator[str]:
    """Start one; yields its endpoint URL; stops it after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "supervisor.local.moto_process"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stdin.close()  # its end of input: it stops
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


if __name__ == "__main__":
    serve()
