"""The shape of the house, read from the import graph (grimp), imports inside functions and
under ``TYPE_CHECKING`` included: an import hidden in a function is still a dependency.

The rules:

- The core (everything outside ``livecd_tui/tui``) has no import cycle. In the TUI only the
  annotations may cycle: the screens name their app (``LiveCDApp``) under
  ``TYPE_CHECKING``, the app opens the screens.
- Nothing below the stages imports a stage: the engine, the work dir, the build, the steps
  and every helper learn what a stage does from its declaration (``engine.Stage``), never by
  importing it. Only ``livecd_tui/stages`` itself and the front ends that show or check
  what the stages plan (``FRONT_ENDS``) import stage modules or the ``stages`` registry.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import grimp
import pytest

PACKAGE = "livecd_tui"
STAGES = f"{PACKAGE}.stages"
TUI = f"{PACKAGE}.tui"
#: Above the stages: they run, check or preview what the stages plan.
FRONT_ENDS = (f"{PACKAGE}.cli", f"{PACKAGE}.checks", f"{PACKAGE}.capture", TUI)
#: Cycles allowed while being taken apart elsewhere (none now). The test fails once one is
#: gone, so that the exception goes with it.
PENDING: frozenset[frozenset[str]] = frozenset()


@functools.cache
def graph(type_checking: bool = True) -> grimp.ImportGraph:
    # No cache: it would be a file in the tree, and a stale one would hide a cycle.
    return grimp.build_graph(
        PACKAGE, exclude_type_checking_imports=not type_checking, cache_dir=None
    )


def cycles(graph: grimp.ImportGraph, modules: Iterable[str]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan), over the
    imports between *modules*."""
    nodes = sorted(modules)
    inside = set(nodes)
    edges = {
        m: sorted(n for n in graph.find_modules_directly_imported_by(m) if n in inside)
        for m in nodes
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(top: str) -> None:  # iterative: no recursion limit to mind
        work = [(top, iter(edges[top]))]
        index[top] = low[top] = len(index)
        stack.append(top)
        while work:
            node, todo = work[-1]
            for nxt in todo:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    work.append((nxt, iter(edges[nxt])))
                    break
                if nxt in stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))

    for node in nodes:
        if node not in index:
            visit(node)
    return found


def explain(graph: grimp.ImportGraph, component: frozenset[str]) -> str:
    """The imports that make a cycle, with their lines, for the failure message."""
    lines = []
    for importer in sorted(component):
        for imported in sorted(component):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                lines.append(f"  {importer}:{detail['line_number']}: {detail['line_contents']}")
    return "\n".join(lines)


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_cycle_finder_finds_a_cycle_and_only_that() -> None:
    """The finder itself, on a graph made up for it: a test of nothing would pass too."""
    made = grimp.ImportGraph()
    for name in ("a", "b", "c", "d"):
        made.add_module(name)
    for importer, imported in (("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")):
        made.add_import(importer=importer, imported=imported)
    assert cycles(made, made.modules) == [frozenset({"a", "b", "c"})]
    assert cycles(made, ["a", "b", "d"]) == []


def test_the_core_has_no_import_cycle() -> None:
    full = graph()
    core = [m for m in full.modules if not in_package(m, TUI)]
    found = cycles(full, core)
    unexpected = [c for c in found if c not in PENDING]
    assert not unexpected, "import cycles in the core:\n" + "\n".join(
        explain(full, c) for c in unexpected
    )
    gone = [sorted(c) for c in PENDING if c not in found]
    assert not gone, f"no longer a cycle: remove it from PENDING: {gone}"


def test_the_tui_cycles_only_through_annotations_naming_the_app() -> None:
    full = graph()
    tui = [m for m in full.modules if in_package(m, TUI)]
    for component in cycles(full, tui):
        assert f"{TUI}.app" in component, explain(full, component)
    # Without the annotations, nothing in the whole package cycles (but what is pending).
    found = [
        c for c in cycles(graph(type_checking=False), graph(False).modules) if c not in PENDING
    ]
    assert not found, "cycles beyond annotations:\n" + "\n".join(
        explain(graph(False), c) for c in found
    )


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_the_front_ends_exist(front_end: str) -> None:
    """A renamed front end would silently leave the rule below allowing nothing."""
    assert front_end in graph().modules


def test_nothing_below_the_stages_imports_a_stage() -> None:
    full = graph()
    stage_modules = {m for m in full.modules if in_package(m, STAGES)}
    offenders = []
    for module in sorted(full.modules - stage_modules):
        if any(in_package(module, allowed) for allowed in FRONT_ENDS):
            continue
        for imported in sorted(full.find_modules_directly_imported_by(module) & stage_modules):
            for detail in full.get_import_details(importer=module, imported=imported):
                offenders.append(f"  {module}:{detail['line_number']}: {detail['line_contents']}")
    assert not offenders, (
        "modules below the stages import a stage (declare it on the "
        "Stage instead):\n" + "\n".join(offenders)
    )
