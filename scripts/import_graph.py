"""The import graph of the four packages, and the rules it must keep.

    python scripts/import_graph.py          # prints the package edges; exit 1 on a violation
    python scripts/import_graph.py --modules   # every module edge too

Why a script of our own: the rules are this project's (DESIGN.md "Architecture", STYLE.md
"one owner per concept"), and a reader should be able to check them in one screen. Every
`import` and `from ... import` is read with `ast` (module level and inside functions: a lazy
import is still a dependency; `if TYPE_CHECKING:` blocks are skipped, they never run). Rules:

1. **The core's leaves** (`LEAVES`) import no other module of the four packages except other
   leaves: they are what the sub-packages may rely on.
2. **The sub-packages** (`compoundai_adapters`, `compoundai_retrievers`,
   `compoundai_evaluators`) import from the core only its leaves.
3. **Forbidden directions**: evaluators never import adapters (evaluation sees systems, not
   trainers); adapters and retrievers never import each other.
4. **No cycles between modules** (strongly connected components of more than one module),
   except a package's `__init__` re-exporting its own submodules (a facade is not a cycle of
   logic: the submodules never import it).

`tests/test_architecture.py` runs `check()` so a new violation fails the suite.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "compoundai": ROOT / "compoundai",
    "compoundai_adapters": ROOT / "adapters" / "compoundai_adapters",
    "compoundai_retrievers": ROOT / "retrievers" / "compoundai_retrievers",
    "compoundai_evaluators": ROOT / "evaluators" / "compoundai_evaluators",
}
SUBPACKAGES = ("compoundai_adapters", "compoundai_retrievers", "compoundai_evaluators")
# Small modules of the core with no dependency on the rest of it: the sub-packages' vocabulary.
LEAVES = {
    "compoundai.errors",
    "compoundai.cache_lock",
    "compoundai.context",
    "compoundai.config",
    "compoundai.contract",
    "compoundai.provenance",
    "compoundai.safe_files",
    "compoundai.hardware",
    "compoundai.progress",
    "compoundai.chat",
    "compoundai.data",
    "compoundai.models",
    "compoundai.generators.base",
    "compoundai.generators.perplexity",
    "compoundai.testing",
}
FORBIDDEN = {
    ("compoundai_evaluators", "compoundai_adapters"),
    ("compoundai_adapters", "compoundai_retrievers"),
    ("compoundai_retrievers", "compoundai_adapters"),
}


def module_name(package: str, root: Path, file: Path) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Line numbers inside `if TYPE_CHECKING:` blocks (imports there never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skip.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return skip


def read_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (resolved to the deepest existing module)."""
    files: dict[str, Path] = {}
    for package, root in PACKAGES.items():
        for file in sorted(root.rglob("*.py")):
            files[module_name(package, root, file)] = file
    known = set(files)
    graph: dict[str, set[str]] = defaultdict(set)
    for module, file in files.items():
        tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
        skip = _type_checking_lines(tree)
        is_package = file.name == "__init__.py"
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for target in targets:
                resolved = _resolve(target, known)
                if resolved and resolved != module:
                    graph[module].add(resolved)
        graph.setdefault(module, set())
    return dict(graph)


def _resolve(name: str, known: set[str]) -> str | None:
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def package_of(module: str) -> str:
    return module.split(".")[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), facade edges aside."""

    def facade(a: str, b: str) -> bool:  # a package __init__ importing its own submodule
        return b.startswith(a + ".") and (PACKAGES.get(a) is not None or _is_init(a))

    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if facade(v, w):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


_INITS: set[str] = set()


def _is_init(module: str) -> bool:
    return module in _INITS


def check(graph: dict[str, set[str]] | None = None) -> list[str]:
    """Every rule broken, one line each (empty: the graph keeps the rules)."""
    graph = graph or read_graph()
    for package, root in PACKAGES.items():
        for init in root.rglob("__init__.py"):
            _INITS.add(module_name(package, root, init))
    problems = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            src, dst = package_of(module), package_of(target)
            if module in LEAVES and target not in LEAVES and dst == "compoundai":
                problems.append(f"leaf {module} imports {target}, which is not a leaf")
            if module in LEAVES and dst != "compoundai":
                problems.append(f"leaf {module} imports the sub-package module {target}")
            if src in SUBPACKAGES and dst == "compoundai" and target not in LEAVES:
                problems.append(f"{module} imports {target}: sub-packages use core leaves only")
            if (src, dst) in FORBIDDEN:
                problems.append(f"{module} imports {target}: {src} -> {dst} is forbidden")
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def package_edges(graph: dict[str, set[str]]) -> dict[tuple[str, str], int]:
    def part(module: str) -> str:
        pkg = package_of(module)
        return "compoundai (leaves)" if module in LEAVES else pkg

    edges: dict[tuple[str, str], int] = defaultdict(int)
    for module, targets in graph.items():
        for target in targets:
            a, b = part(module), part(target)
            if a != b:
                edges[(a, b)] += 1
    return dict(edges)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modules", action="store_true", help="print every module edge")
    args = parser.parse_args()
    graph = read_graph()
    for (a, b), n in sorted(package_edges(graph).items()):
        print(f"{a} -> {b}: {n}")
    if args.modules:
        for module, targets in sorted(graph.items()):
            for target in sorted(targets):
                print(f"  {module} -> {target}")
    problems = check(graph)
    for p in problems:
        print(f"problem: {p}")
    print(f"{len(graph)} modules, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
