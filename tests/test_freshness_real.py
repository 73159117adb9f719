"""Freshness with the real models (slow): `examples/freshness/demo.py` end to end. The office
moves after the systems are built; the retrieving systems answer with the new city once their
index takes the changed file, the adapter trained before the move still says the old one."""

from __future__ import annotations

import importlib.util

import pytest

from compoundai.router import knowledge_in_weights
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_index_answers_the_new_fact_and_the_weights_the_old(tmp_path):
    spec = importlib.util.spec_from_file_location("demo", ROOT / "examples/freshness/demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    result = demo.run(tmp_path / "freshness", progress=False)
    assert not knowledge_in_weights(result["plan"]["lane"])
    before, after = result["before"], result["after"]
    assert all("Paris" in answer for answer in before.values()), before
    assert "Lyon" in after["rag"] and "Paris" not in after["rag"], after
    assert "Lyon" in after["compound"] and "Paris" not in after["compound"], after
    assert "Paris" in after["finetune/sft"] and "Lyon" not in after["finetune/sft"], after
    # the example's own files are untouched
    assert "Paris" in (ROOT / "examples/freshness/docs/office.md").read_text()
