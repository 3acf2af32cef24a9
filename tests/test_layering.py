"""The import rules of DESIGN.md's package table, checked on the source with `ast`.

Each package of kbroker may import only the packages below it in the data flow: the protocol is
the ground floor and imports nothing of kbroker; no service (log, replica, group, txn,
controller, metadata) imports the api layer or the server that wires everything together.
Imports under `if TYPE_CHECKING:` count too: a type-only import is still a dependency a reader
must follow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KBROKER = Path(__file__).resolve().parents[1] / "kbroker"

# What each package may import besides itself. A package missing here may import nothing of
# kbroker; the top-level modules (server, cli, __main__) are the wiring and may import anything.
ALLOWED: dict[str, frozenset[str]] = {
    "protocol": frozenset(),
    "background": frozenset(),
    "config": frozenset({"protocol"}),
    "log": frozenset({"protocol", "background"}),
    "metadata": frozenset({"protocol", "config", "background"}),
    "network": frozenset({"protocol", "config", "background"}),
    "replica": frozenset({"protocol", "config", "background", "log", "metadata", "network"}),
    "group": frozenset({"protocol", "config", "background", "log", "metadata", "replica"}),
    "txn": frozenset({"protocol", "config", "background", "log", "metadata", "replica", "network"}),
    "security": frozenset({"protocol", "config", "metadata"}),
    "controller": frozenset({"protocol", "config", "background", "metadata", "network"}),
    "api": frozenset({"protocol", "config", "background", "log", "metadata", "network", "replica", "group",
                      "txn", "security", "controller"}),
    # Test support sits on top: it may wire up any part (the in-process harnesses do), and since no
    # package lists it, nothing of the broker may import it.
    "testing": frozenset({"protocol", "config", "background", "log", "metadata", "network", "replica", "group",
                          "txn", "security", "controller", "api"}),
}
WIRING = frozenset({"server", "cli", "__main__", "__init__", "healthcheck"})


def _package_of(path: Path) -> str:
    return path.relative_to(KBROKER).with_suffix("").parts[0]


def _kbroker_imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported package) for every absolute import of a kbroker module in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "kbroker" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def _sources() -> list[Path]:
    return sorted(KBROKER.rglob("*.py"))


def test_every_package_is_in_the_table():
    packages = {_package_of(path) for path in _sources()} - WIRING
    assert packages <= set(ALLOWED), f"packages without import rules: {sorted(packages - set(ALLOWED))}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(KBROKER)))
def test_imports_follow_the_layers(path: Path):
    package = _package_of(path)
    if package in WIRING:
        return
    allowed = ALLOWED[package] | {package}
    broken = [f"line {line}: kbroker.{target}" for line, target in _kbroker_imports(path) if target not in allowed]
    assert not broken, f"kbroker/{package} may import only {sorted(allowed)}; {path.name} imports {broken}"


def test_relative_imports_are_not_used():
    """The check above reads absolute imports only; a relative one would slip past it."""
    relative = [
        f"{path.relative_to(KBROKER)}:{node.lineno}"
        for path in _sources()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level > 0
    ]
    assert not relative
