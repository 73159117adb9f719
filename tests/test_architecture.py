"""The package layout keeps its rules: run `scripts/import_graph.py` as a test.

A new import cycle, a sub-package importing more of the core than its leaves, or an import in a
forbidden direction (evaluators -> adapters, adapters <-> retrievers) fails here with the edge
that broke it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _graph_module():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts/import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["import_graph"] = module
    spec.loader.exec_module(module)
    return module


def test_the_import_graph_keeps_the_rules():
    graph = _graph_module()
    assert graph.check() == []


def test_the_check_catches_a_cycle_and_a_forbidden_edge():
    """Guard the guard: a graph with a cycle and an evaluators -> adapters edge fails."""
    graph = _graph_module()
    bad = graph.read_graph()
    bad["compoundai.contract"].add("compoundai.system")  # a leaf importing the runtime
    bad["compoundai.system"].add("compoundai.contract")
    bad["compoundai_evaluators.compare"].add("compoundai_adapters.sft")
    problems = graph.check(bad)
    assert any("leaf compoundai.contract imports compoundai.system" in p for p in problems)
    assert any("compoundai_evaluators -> compoundai_adapters is forbidden" in p for p in problems)
    assert any(p.startswith("import cycle:") for p in problems)


def test_no_module_is_over_about_400_lines_unless_it_says_why():
    long = []
    for root in ("compoundai", "adapters", "retrievers", "evaluators"):
        for file in (ROOT / root).rglob("*.py"):
            text = file.read_text(encoding="utf-8")
            if text.count("\n") > 430 and "one piece" not in text.split('"""')[1]:
                long.append(f"{file.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert long == []
