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
    # The metrics' plain counters and their exporter: counted into by the layers above, knowing none.
    "metrics": frozenset(),
    "config": frozenset({"protocol"}),
    "log": frozenset({"protocol", "background"}),
    "metadata": frozenset({"protocol", "config", "background"}),
    "network": frozenset({"protocol", "config", "background", "metrics"}),
    "replica": frozenset({"protocol", "config", "background", "log", "metadata", "network", "metrics"}),
    "group": frozenset({"protocol", "config", "background", "log", "metadata", "replica"}),
    "txn": frozenset({"protocol", "config", "background", "log", "metadata", "replica", "network"}),
    "security": frozenset({"protocol", "config", "metadata", "metrics"}),
    "controller": frozenset({"protocol", "config", "background", "metadata", "network"}),
    "api": frozenset({"protocol", "config", "background", "log", "metadata", "network", "replica", "group",
                      "txn", "security", "controller", "metrics"}),
    # The command-line tools are clients of the protocol: they speak it (through confluent-kafka,
    # and kbroker's codec where that has no API) and read client properties files. The log and
    # the group are here for dump-log alone, which reads segment files and __consumer_offsets
    # records offline (group.coordinator_records, a pure codec); no broker service runs in a tool.
    # Security for the SASL mechanisms' client halves (PlainClient, ScramClient) that wire.py's
    # own connections log in with, as the broker's inter-broker clients do.
    "tools": frozenset({"protocol", "config", "log", "group", "console", "security"}),
    # The web console is a client too (confluent-kafka, aiohttp); `kbroker console` runs it, the
    # wiring (server.py) starts it for console.listener. It reads the listener's form from config.
    "console": frozenset({"config"}),
    # The testcontainers module wraps the Docker image: it imports nothing of the broker.
    "testcontainers": frozenset(),
    # Test support sits on top: it may wire up any part (the in-process harnesses do), and since no
    # package lists it, nothing of the broker may import it.
    "testing": frozenset({"protocol", "config", "background", "log", "metadata", "network", "replica", "group",
                          "txn", "security", "controller", "api", "metrics"}),
}
WIRING = frozenset({"server", "cli", "__main__", "__init__", "healthcheck", "broker_metrics"})


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


def _module_name(path: Path) -> str:
    parts = path.relative_to(KBROKER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _lazy_attribute_imports(tree: ast.Module) -> set[int]:
    """ids of the nodes inside a package's module-level `__getattr__` (PEP 562): what it imports is
    imported when an attribute is first asked for, after the package and its modules have loaded,
    so it cannot close an import circle (kbroker.testing's `KafkaBroker` is one)."""
    return {id(node) for top in tree.body
            if isinstance(top, ast.FunctionDef) and top.name == "__getattr__"
            for node in ast.walk(top)}


def _module_imports(path: Path, modules: set[str]) -> set[str]:
    """The kbroker modules a file imports (`from a.b import c` counts a.b, and a.b.c when c is a module)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    lazy = _lazy_attribute_imports(tree) if path.name == "__init__.py" else set()
    for node in ast.walk(tree):
        if id(node) in lazy:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def _import_cycles() -> list[list[str]]:
    """Strongly connected components of more than one module in kbroker's import graph."""
    paths = {_module_name(path): path for path in _sources()}
    graph = {name: _module_imports(path, set(paths)) - {name} for name, path in paths.items()}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm; the graph is ~150 modules deep at most
        order[module] = low[module] = len(order)
        stack.append(module)
        for target in graph[module]:
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in order:
            visit(module)
    return cycles


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


def test_no_module_imports_itself_through_others():
    """No import circle between kbroker's modules, type-only imports included: each one was a
    sign that two modules were one concern split badly (server and api, the log manager and its
    cleaner, the replica manager and its fetchers were the last three)."""
    assert _import_cycles() == []
