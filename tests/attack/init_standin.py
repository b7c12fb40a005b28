"""A stand-in for tini (PID 1 in the image): started with the container's whole environment, it starts the
supervisor with it, forwards SIGTERM and SIGINT, and keeps that environment readable in /proc for as long
as the container lives. The containment tests run the supervisor under it."""

import signal
import subprocess
import sys

child = subprocess.Popen(sys.argv[1:])
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
sys.exit(child.wait())
