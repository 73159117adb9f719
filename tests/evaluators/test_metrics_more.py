"""Metric values on hand-worked cases, one family at a time."""

import math

import numpy as np
import pytest

from compoundai.errors import UserInputError
from compoundai_evaluators.metrics import Row, resolve_metrics, rows_from, value_of
from compoundai_evaluators.metrics.abstention import AbstentionAccuracy, abstained
from compoundai_evaluators.metrics.grounded import GROUNDEDNESS
from compoundai_evaluators.metrics.labels import MACRO_F1, macro_f1
from compoundai_evaluators.metrics.retrieval import MRR, recall_at
from compoundai_evaluators.metrics.squad import exact_match, normalize_answer, token_f1
from compoundai_evaluators.metrics.structured import SLOT_F1, SchemaAdherence, slot_f1
from compoundai_evaluators.stats import bootstrap_counts, metric_interval


def test_squad_v2_rules():
    # punctuation goes before articles are matched: "the-end" -> "theend" keeps its word
    assert normalize_answer("A  cat, the-end; AN apple") == "cat theend apple"
    # references that normalise to nothing are dropped; none left -> unanswerable, "" wins
    assert exact_match([""], [["", "the"]]) == 1.0
    assert exact_match(["Paris"], [[]]) == 0.0
    assert token_f1([""], [[]]) == 1.0
    # best over references: F1 against "the broncos" is 1.0
    assert token_f1(["Broncos"], [["Denver Broncos", "the Broncos"]]) == 1.0
    # repeated tokens count with multiplicity: pred [a1 a1 b], ref [a1 b b] -> common 2
    assert math.isclose(token_f1(["x x y"], [["x y y"]]), 2 / 3)


def test_macro_f1_statistics_match_the_plain_definition():
    preds = ["a", "b", "b", "c", "a", "z"]
    refs = ["a", "a", "b", "c", "c", "b"]
    # a: tp1 fp1 fn1 -> .5; b: tp1 fp1 fn1 -> .5; c: tp1 fp0 fn1 -> 2/3
    assert math.isclose(macro_f1(preds, refs), (0.5 + 0.5 + 2 / 3) / 3)
    # a resample without label c: c leaves the mean
    rows = rows_from(preds, refs)
    stats = MACRO_F1.stats(rows)
    only_ab = stats[[0, 1, 2]].sum(axis=0)
    assert math.isclose(float(MACRO_F1.aggregate(only_ab)), macro_f1(preds[:3], refs[:3]))


def test_schema_adherence_and_slot_f1():
    schema = {
        "type": "object",
        "required": ["intent", "slots"],
        "properties": {"intent": {"type": "string"}, "slots": {"type": "object"}},
        "additionalProperties": False,
    }
    preds = [
        {"intent": "book", "slots": {"city": "Paris", "day": "mon"}},
        '{"intent": "book", "slots": {"city": "rome"}}',
        {"intent": "book"},
        "not json",
    ]
    refs = [
        {"intent": "book", "slots": {"city": "paris", "day": "tue"}},
        {"intent": "book", "slots": {"city": "Rome"}},
        {"intent": "cancel", "slots": {}},
        {"intent": "book", "slots": {"city": "Oslo"}},
    ]
    assert value_of(SchemaAdherence(schema), rows_from(preds, refs)) == 0.5
    # pairs: case1 tp2 (intent, city) fp1 fn1; case2 tp2; case3 fp1 fn1; case4 fn2
    # tp4 fp2 fn4 -> 8 / (8 + 6)
    assert math.isclose(slot_f1(preds, refs), 8 / 14)
    assert SLOT_F1.case_scores(rows_from(preds[:2], refs[:2])).tolist() == [2 / 3, 1.0]
    with pytest.raises(UserInputError, match="needs a JSON schema"):
        resolve_metrics(["schema_adherence"])


def test_slot_lists_are_multisets():
    assert slot_f1([{"s": ["b", "a", "a"]}], [{"s": ["a", "b"]}]) == pytest.approx(0.8)


def test_recall_at_k_and_mrr():
    rows = [
        Row(
            "1",
            "q",
            "",
            "",
            meta={"relevant_ids": ["d1", "d2"]},
            extra={"retrieved_ids": ["x", "d2#0", "d1"]},
        ),
        Row("2", "q", "", "", meta={"doc_id": "d3"}, extra={"retrieved_ids": ["d3::4"]}),
        Row("3", "q", "", "", meta={"doc_id": "d4"}, extra={"retrieved_ids": ["x", "y"]}),
        Row("4", "q", "", "", meta={}, extra={"retrieved_ids": ["d1"]}),  # no gold: skipped
    ]
    assert value_of(recall_at(2), rows) == pytest.approx((0.5 + 1 + 0) / 3)
    assert value_of(recall_at(3), rows) == pytest.approx((1 + 1 + 0) / 3)
    assert value_of(MRR, rows) == pytest.approx((1 / 2 + 1 + 0) / 3)
    # a lane that does not retrieve: undefined, so not reported
    plain = [Row("1", "q", "", "", meta={"doc_id": "d1"})]
    assert math.isnan(value_of(MRR, plain))


def test_abstention_accuracy():
    rows = [
        Row("1", "q", "", "I don't know."),  # unanswerable, abstained: right
        Row("2", "q", [], "Paris"),  # unanswerable, answered: wrong
        Row("3", "q", "Rome", "Rome"),  # answerable, answered: right
        Row("4", "q", "Rome", "Not in the context."),  # answerable, abstained: wrong
        Row("5", "q", "Oslo", "Oslo", meta={"answerable": False}),  # flagged: wrong
        Row("6", "q", "x", "x", extra={"abstained": True}, meta={"is_impossible": True}),
    ]
    assert value_of(AbstentionAccuracy(), rows) == pytest.approx(3 / 6)
    assert abstained(Row("7", "q", "x", None))
    # a task with no unanswerable case: undefined
    assert math.isnan(value_of(AbstentionAccuracy(), rows_from(["yes"], ["yes"])))


def test_groundedness():
    rows = [
        Row(
            "1",
            "q",
            "",
            "The card ships on Monday",
            extra={"contexts": ["Cards ship Monday; card fees apply."]},
        ),
        Row("2", "q", "", "I don't know", extra={"contexts": ["anything"]}),  # abstained: skipped
        Row("3", "q", "", "Paris", extra={}),  # no passages: skipped
    ]
    # content words: card, ships, monday; in context: card, monday (not "ships") -> 2/3
    assert value_of(GROUNDEDNESS, rows) == pytest.approx(2 / 3)


def test_interval_from_statistics_matches_direct_resampling():
    preds = ["a"] * 30 + ["b"] * 10
    refs = ["a"] * 20 + ["b"] * 20
    rows = rows_from(preds, refs)
    counts = bootstrap_counts(len(rows), 200, seed=3)
    est = metric_interval(MACRO_F1, MACRO_F1.stats(rows), counts)
    direct = []
    for row_counts in counts:
        idx = np.repeat(np.arange(len(rows)), row_counts.astype(int))
        direct.append(macro_f1([preds[i] for i in idx], [refs[i] for i in idx]))
    low, high = np.quantile(direct, [0.025, 0.975])
    assert est.ci_low == pytest.approx(low) and est.ci_high == pytest.approx(high)
    assert est.value == pytest.approx(macro_f1(preds, refs))


def test_unknown_metric_names_the_known_ones():
    with pytest.raises(UserInputError, match=r"unknown metric 'bleu'.*accuracy"):
        resolve_metrics(["bleu"])
