"""The boundaries docs/ARCHITECTURE.md draws, checked on the source: a worker imports from the
supervisor only the contract and the common helpers."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_FROM_SUPERVISOR = ("supervisor.contract", "supervisor.common")


def imported_modules(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def test_steps_import_only_the_contract_and_common_helpers_from_the_supervisor():
    crossing = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "steps").rglob("*.py")
        for name in imported_modules(path)
        if (name == "supervisor" or name.startswith("supervisor."))
        and not name.startswith(ALLOWED_FROM_SUPERVISOR)
        and name not in ALLOWED_FROM_SUPERVISOR
    }
    assert sorted(crossing) == []


def test_the_contract_and_common_helpers_import_nothing_else_of_ours():
    crossing = {
        f"{path.relative_to(ROOT)}: {name}"
        for folder in ("contract", "common")
        for path in (ROOT / "supervisor" / folder).rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("steps") or (name.startswith("supervisor.") and not name.startswith(ALLOWED_FROM_SUPERVISOR))
    }
    assert sorted(crossing) == []


def test_no_module_is_longer_than_300_lines():
    """A smell detector, not a target: modules are split by concern, and one that grows past this has
    taken on a second concern."""
    long = {
        str(path.relative_to(ROOT)): lines
        for folder in ("steps", "supervisor")
        for path in (ROOT / folder).rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 300
    }
    assert long == {}
