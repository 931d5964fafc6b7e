"""Imports point one way (docs/architecture.md §2): ``controller`` imports no plugin
package; nothing outside ``labs/`` and ``tests/`` imports ``labs``; the plugin packages'
graph has no cycle (one known exception, listed below).

Read from the source with ``ast`` (every ``import`` / ``from … import``, including the
ones inside functions and ``TYPE_CHECKING`` blocks), so a lazy import cannot hide a
wrong-way dependency.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

from tests.conftest import ROOT

PLUGINS = ("telemetry", "optical", "srv6", "dns_compute", "scheduler", "labs")
PRODUCT = ("controller", "telemetry", "optical", "srv6", "dns_compute", "scheduler")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported top-level package) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def wrong_way(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, top in imports(path):
            if top in forbidden:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    return found


def test_controller_imports_no_plugin_package() -> None:
    found = wrong_way("controller", PLUGINS)
    assert not found, ("controller must not import plugin packages; register through "
                       "controller/plugins.py instead:\n" + "\n".join(found))


@pytest.mark.parametrize("package", PRODUCT)
def test_product_code_imports_nothing_from_labs(package: str) -> None:
    found = wrong_way(package, ("labs", "tests"))
    assert not found, ("product code must not import labs or tests; let labs register "
                       "what it adds:\n" + "\n".join(found))


#: (file, package it imports) edges that close a cycle today, each with why it is
#: tolerated; a new one fails the test below.
KNOWN_CYCLE_EDGES = {
    # flow steering ranks instances with the scheduler's ranking; goes when flow
    # steering becomes a policy reconciler (decide in scheduler, program in srv6)
    ("srv6/flows.py", "scheduler"),
}


def test_plugin_packages_form_no_cycle() -> None:
    plugins = PRODUCT[1:]
    graph: dict[str, set[str]] = {p: set() for p in plugins}
    where: dict[tuple[str, str], str] = {}
    for package in plugins:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for line, top in imports(path):
                if top in plugins and top != package and (rel, top) not in KNOWN_CYCLE_EDGES:
                    graph[package].add(top)
                    where.setdefault((package, top), f"{rel}:{line}")

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return [*trail, start]
                if nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))
        return None

    for p in plugins:
        found = cycle_from(p)
        assert found is None, ("plugin packages import each other in a cycle: "
                               + " -> ".join(found) + "\n" + "\n".join(
                                   where[(a, b)] for a, b in itertools.pairwise(found)))


#: product modules nothing reachable from ``cpn`` uses yet, each with why it stays
NOT_YET_WIRED = {
    "srv6.steering.linux": "policy routing steering; wired by the slices reconciler",
    "srv6.dataplane.render": "RFC 9256 policy -> routes renderer used by labs/srv6lab.py",
}


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def test_every_product_module_is_reachable_from_cpn() -> None:
    """Every module of the product is imported (directly, lazily, or named as a
    plugin / os-ken app string) from the ``cpn`` entry point, or is itself a program
    (``if __name__ == "__main__"``, e.g. run by ExaBGP or as the os-ken app)."""
    files = {_module_name(p): p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py")}
    entry = {"controller.cli.main"} | {
        m for m, p in files.items() if '__name__ == "__main__"' in p.read_text()}

    def deps(name: str) -> set[str]:
        path = files[name]
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Constant) and node.value in files:
                found.add(str(node.value))  # PLUGINS, os-ken app names
        out = set()
        for m in found:
            parts = m.split(".")
            out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(files)
        return out

    seen: set[str] = set()
    todo = list(entry)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(deps(m))
    missing = sorted(set(files) - seen - set(NOT_YET_WIRED))
    assert not missing, ("modules nothing reachable from `cpn` uses - wire them in or "
                         "delete them (lab-only tools belong in labs/): " + ", ".join(missing))
    assert not set(NOT_YET_WIRED) & seen, "wired now: drop from NOT_YET_WIRED " + ", ".join(
        sorted(set(NOT_YET_WIRED) & seen))


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    """Regression: a lazy import inside a function is still an import."""
    src = tmp_path / "m.py"
    src.write_text("def f() -> None:\n    from srv6.models import SrPolicy\n"
                   "    import labs.netns\n")
    assert sorted(imports(src)) == [(2, "srv6"), (3, "labs")]
