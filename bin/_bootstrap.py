"""Imported first by every bin/ script: run under the project's virtualenv and find its packages.

The scripts are meant to be typed by an operator (`bin/status`), who should not have to activate a
virtualenv first. In the container the system Python already has the packages.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])  # noqa: S606 - same argv, another interpreter

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
