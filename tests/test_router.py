import json

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.profile import TaskProfile, profile
from compoundai.router import Router
from compoundai.task import load_task
from tests.conftest import BANKING


def p(**kw):
    return TaskProfile(task="t", output_type=kw.pop("output_type", "free_text"), **kw)


# (profile, expected plan, expected top lane, a signal the top reason must cite)
TABLE = [
    (p(output_type="labels", n_labels=77, n_train=1540), "sft", "finetune", "n_labels"),
    (p(output_type="labels", n_labels=3, n_train=6), "prompt", "prompt", "baseline"),
    (p(n_documents=400, corpus_tokens=90_000, context_window=8192), "rag", "rag", "corpus_tokens"),
    (
        p(n_documents=3, corpus_tokens=1_000, context_window=8192),
        "prompt",
        "prompt",
        "corpus_tokens",
    ),
    (
        p(n_documents=3, corpus_tokens=1_000, knowledge_freshness="weekly"),
        "rag",
        "rag",
        "knowledge_freshness",
    ),
    (p(n_preference_pairs=1800), "dpo", "finetune", "n_preference_pairs"),
    (
        p(output_type="labels", n_labels=5, n_train=500, n_preference_pairs=300),
        "sft -> dpo",
        "finetune",
        "n_preference_pairs",
    ),
    (p(output_type="json_schema", has_schema=True, n_train=2000), "sft", "finetune", "has_schema"),
]


@pytest.mark.parametrize(("prof", "plan", "top", "signal"), TABLE)
def test_router_table(prof, plan, top, signal):
    decision = Router().decide(prof)
    assert decision.plan == plan
    assert decision.top_lane == top
    assert any(r.lane == top and r.signal == signal for r in decision.reasons)
    scores = [r.score for r in decision.ranked]
    assert scores == sorted(scores, reverse=True)


def test_banking_example_decision_cites_measured_signals(fake_ctx):
    prof = profile(load_task(BANKING), fake_ctx)
    assert prof.n_labels == 77 and prof.n_train == 1540
    decision = Router().decide(prof)
    assert decision.plan == "sft"
    reason = next(r for r in decision.reasons if r.lane == "finetune")
    assert reason.value == 77


def test_decide_json_follows_design():
    result = CliRunner().invoke(cli, ["decide", str(BANKING), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"plan", "ranked", "reasons"}
    assert set(data["ranked"][0]) == {"lane", "score"}
    assert set(data["reasons"][0]) == {"lane", "signal", "value", "text"}
