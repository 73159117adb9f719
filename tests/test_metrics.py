from compoundai.data import Example, sample_cases
from compoundai_evaluators.metrics import (
    accuracy,
    exact_match,
    json_valid,
    macro_f1,
    normalize_answer,
    token_f1,
)
from compoundai_evaluators.stats import bootstrap_indices, interval


def test_accuracy_and_macro_f1_hand_worked():
    preds = ["a", "a", "b", "c"]
    refs = ["a", "b", "b", "b"]
    assert accuracy(preds, refs) == 0.5
    # label a: tp1 fp1 fn0 -> 2/3; label b: tp1 fp0 fn2 -> 0.5; mean over reference labels
    assert abs(macro_f1(preds, refs) - (2 / 3 + 0.5) / 2) < 1e-9


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert exact_match(["denver broncos"], [["Denver Broncos", "Broncos"]]) == 1.0
    assert exact_match(["Broncos of Denver"], [["Denver Broncos"]]) == 0.0
    # pred tokens: [broncos, of, denver]; ref: [denver, broncos]; common 2 -> P 2/3, R 1
    assert abs(token_f1(["Broncos of Denver"], [["Denver Broncos"]]) - 0.8) < 1e-9
    assert token_f1([""], [[""]]) == 1.0


def test_json_valid():
    assert json_valid([{"a": 1}, None, '{"b": 2}', "nope"], [None] * 4) == 0.5


def test_bootstrap_interval_contains_value_and_narrows_with_n():
    small = interval(accuracy, ["a"] * 7 + ["b"] * 3, ["a"] * 10, bootstrap_indices(10))
    # the general path calls the metric once per resample: 2,000 of them keep this test fast
    idx = bootstrap_indices(1000, resamples=2000)
    big = interval(accuracy, ["a"] * 700 + ["b"] * 300, ["a"] * 1000, idx)
    assert small[1] <= 0.7 <= small[2] and big[1] <= 0.7 <= big[2]
    assert big[2] - big[1] < small[2] - small[1]


def test_stratified_sample_covers_every_label_of_a_sorted_file():
    rows = [Example(str(i), f"t{i}", f"label{i // 10}") for i in range(770)]  # sorted by label
    picked = sample_cases(rows, 154, seed=0)
    assert len(picked) == 154
    counts = {}
    for e in picked:
        counts[e.output] = counts.get(e.output, 0) + 1
    assert len(counts) == 77 and set(counts.values()) == {2}
    assert sample_cases(rows, 154, seed=0) == picked  # fixed seed, same sample
    assert sample_cases(rows, 154, seed=1) != picked
