"""The house keeps its shape: the layers of DESIGN.md §2 hold (import-linter), and no runyard module imports
itself back through others — imports inside functions included, so a lazy import cannot hide a cycle."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every group of modules that import each other in a loop (strongly connected components of two or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_cycle_between_runyard_modules():
    graph = grimp.build_graph("runyard", cache_dir=None)  # type-only imports count too
    found = cycles(graph)
    details = []
    for group in found:
        members = set(group)
        for module in group:
            for imported in sorted(graph.find_modules_directly_imported_by(module) & members):
                lines = [d["line_number"] for d in graph.get_import_details(importer=module, imported=imported)]
                details.append(f"{module} -> {imported} (line {', '.join(map(str, lines))})")
    assert not found, "import cycles:\n" + "\n".join(details)


def test_the_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d"), ("p.d", "p.e")]:
        graph.add_import(importer=importer, imported=imported)
    assert cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_the_layers_hold():
    """`lint-imports` with the contracts in pyproject.toml (the layers of DESIGN.md §2, and what specs may not use)."""
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "layers" in proc.stdout


def test_import_runyard_stays_light():
    """A training script's ``import runyard`` loads no database layer, no feature package and no HTTP client: they
    come when first used (``from runyard import LocalWebservice`` still works)."""
    import subprocess
    import sys

    code = ("import sys, runyard; heavy = ('sqlalchemy', 'runyard.deploy', 'runyard.data', 'runyard.compute', "
            "'urllib.request', 'fastapi'); print([m for m in heavy if m in sys.modules]); "
            "from runyard import LocalWebservice, InferenceConfig, Webservice, Dataset, ComputeTarget; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[]", "ok"]
