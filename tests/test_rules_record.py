"""The rules agree with the record of measured outcomes (`scripts/rules_record.py`).

For every task in `compoundai/resources/rules_record.json`, the rules' top lane family must
be the measured winner's family or one tied with it on the test split. A rule change that
contradicts a measurement fails here; so does a new measurement the rules do not follow.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compoundai.profile import TaskProfile
from compoundai.router import Router

RECORD = Path(__file__).resolve().parent.parent / "compoundai/resources/rules_record.json"
ROWS = json.loads(RECORD.read_text(encoding="utf-8"))["rows"]


def test_the_record_covers_the_bundled_examples():
    assert {r["task"] for r in ROWS} >= {
        "banking77-intents",
        "snips-json",
        "squad-docs-qa",
        "hh-preferences",
    }


@pytest.mark.parametrize("row", ROWS, ids=[r["task"] for r in ROWS])
def test_the_rules_do_not_contradict_the_record(row):
    decision = Router().decide(TaskProfile(**row["profile"]))
    acceptable = {row["winner_family"], *row["tied_families"]}
    assert decision.top_lane in acceptable, (
        f"{row['task']}: the rules put {decision.top_lane} first (plan {decision.plan}); the "
        f"record ({row['source']}) has {row['winner']} winning, tied: {row['tied_families']}"
    )


def test_a_contradicting_rule_is_caught():
    """Guard the guard: the article's old rule (labels -> fine-tune) fails the record."""
    from compoundai.rules import RULES, Vote

    def labels_need_finetune(p: TaskProfile) -> list[Vote]:
        return (
            [Vote("finetune", 10.0, "n_labels", p.n_labels, "label sets are behaviour")]
            if p.n_labels
            else []
        )

    row = next(r for r in ROWS if r["task"] == "banking77-intents")
    decision = Router([*RULES, labels_need_finetune]).decide(TaskProfile(**row["profile"]))
    assert decision.top_lane not in {row["winner_family"], *row["tied_families"]}
