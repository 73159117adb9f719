"""What the UI reads and computes, without a browser: finding runs, per-case scores that agree
with the report, the flip filters, two runs compared, the progress stream, the worker."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from compoundai.ui.cases import case_table, diff_runs, filter_cases, reported_flips
from compoundai.ui.jobs import ProgressLog
from compoundai.ui.runs import RunStore, read_predictions, task_files
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def store(ui_runs) -> RunStore:
    return RunStore(ui_runs.dirs)


def test_runs_systems_and_problems_are_found(store, ui_runs):
    scan = store.scan()
    readable = {r.id: r for r in scan.runs if r.report is not None}
    assert set(readable) == {"0/banking-a", "0/banking-b", "0/squad", "0/no-predictions"}
    broken = [r for r in scan.runs if r.report is None]
    assert [r.id for r in broken] == ["0/broken"] and broken[0].error.startswith("not JSON")
    assert [s.id for s in scan.systems] == ["1/squad-rag"] and scan.systems[0].lane == "rag"
    assert scan.problems == [f"{ui_runs.missing} does not exist"]
    assert not readable["0/no-predictions"].has_predictions
    assert readable["0/banking-a"].wall_seconds > 0
    # only what the walk found can be opened: no path from the page reaches the disk
    assert store.find_run("0/../..") is None and store.find_run("0/cache") is None


def test_a_report_that_is_json_but_not_a_report(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "report.json").write_text(json.dumps({"task": "x", "lanes": "many"}))
    (run,) = RunStore([tmp_path]).scan().runs
    assert run.report is None and run.error.startswith("not a compoundai report: ")


def test_per_case_scores_add_up_to_the_report_and_count_its_flips(store):
    run = store.find_run("0/banking-a")
    rows, problems = read_predictions(run.path)
    table = case_table(run.report, rows)
    assert problems == [] and len(table.cases) == 20 and len(table.lanes) == 4
    assert table.metrics[0] == "accuracy"
    for lane in run.report.lanes:
        scores = [c.score(lane.name, "accuracy") for c in table.cases]
        assert sum(scores) / len(scores) == pytest.approx(lane.metrics["accuracy"].value)
    for a in table.lanes:
        for b in table.lanes:
            if a == b:
                continue
            a_better = filter_cases(table, "a_better", a, b, "accuracy")
            b_better = filter_cases(table, "b_better", a, b, "accuracy")
            assert (len(a_better), len(b_better)) == reported_flips(run.report, a, b, "accuracy")
            flips = filter_cases(table, "flips", a, b, "accuracy")
            assert len(flips) == len(a_better) + len(b_better)


def test_free_text_cases_abstentions_and_metrics_that_cannot_be_recomputed(store):
    run = store.find_run("0/squad")
    table = case_table(run.report, read_predictions(run.path)[0])
    assert {"f1", "exact_match", "abstention_accuracy"} <= set(table.metrics)
    # recall@5 and MRR read the gold passage ids, which predictions.jsonl does not keep
    assert {"recall_at_5", "mrr"} <= set(table.not_reproduced)
    abstained = filter_cases(table, "abstained", None, None, None)
    assert abstained and all(any(a.abstained for a in c.answers.values()) for c in abstained)
    rag = next(c.answers["rag"] for c in table.cases if not c.answers["rag"].abstained)
    assert len(rag.extra["retrieved_ids"]) == 5 and rag.extra["citations"]
    word = table.cases[3].input.split()[-1].upper()  # search ignores case
    found = filter_cases(table, "all", None, None, None, query=word)
    assert table.cases[3] in found and len(found) < len(table.cases)


def test_invalid_outputs_are_found(store):
    run = store.find_run("0/banking-a")
    rows, _ = read_predictions(run.path)
    rows[0].output = None  # a label the generator's text could not be snapped to
    table = case_table(run.report, rows)
    (invalid,) = filter_cases(table, "invalid", None, None, None)
    assert invalid.id == rows[0].id and invalid.answers[rows[0].lane].invalid


def test_a_run_without_predictions_and_a_torn_line(store, tmp_path):
    rows, problems = read_predictions(store.find_run("0/no-predictions").path)
    assert rows == [] and "no predictions.jsonl" in problems[0]
    source = store.find_run("0/banking-a").path / "predictions.jsonl"
    (tmp_path / "predictions.jsonl").write_text(source.read_text() + '{"lane": "x", "id"')
    rows, problems = read_predictions(tmp_path)
    assert len(rows) == 80 and problems == [
        "1 rows of predictions.jsonl could not be read and are left out"
    ]


def test_two_runs_of_a_task_compared(store):
    a, b = store.find_run("0/banking-a"), store.find_run("0/banking-b")
    tables = [case_table(r.report, read_predictions(r.path)[0]) for r in (a, b)]
    diff = diff_runs(a, b, *tables)
    by_lane = {d.lane: d for d in diff.lanes}
    assert set(by_lane) == {"prompt/zero-shot", "prompt/5-shot", "rag/knn-vote", "rag/demos"}
    zero = by_lane["prompt/zero-shot"]
    assert zero.delta == pytest.approx(zero.b.value - zero.a.value)
    # the kNN vote does not call the generator: nothing changed there, the prompt lanes did
    assert diff.flips["rag/knn-vote"] == [] and diff.flips["prompt/zero-shot"]
    for change in diff.flips["prompt/zero-shot"]:
        assert not math.isclose(change.score_a, change.score_b)
    assert len(diff.flips["prompt/zero-shot"]) == sum(
        1
        for case in tables[0].cases
        if case.score("prompt/zero-shot", "accuracy")
        != tables[1].get(case.id).score("prompt/zero-shot", "accuracy")
    )
    no_cases = diff_runs(a, b, tables[0], None)
    assert no_cases.flips == {} and "no case-by-case" in no_cases.notes[0]


# what run_task writes to a pipe (bytes as captured from the worker): a bar, a nested bar that
# tqdm closes with leave=False (blanked, cursor back up), tqdm.write lines above the bars
RAW = (
    "building prompt/zero-shot\n\rcompare lanes: 0lane [00:00, ?lane/s]\n"
    "\rprompt/zero-shot: score labels:   0%|          | 0/10 [00:00<?, ?case/s]\x1b[A\n"
    "\r" + " " * 72 + "\x1b[A\rcompare lanes: 1lane [00:00,  5.30lane/s]\r" + " " * 41 + "\r"
    "building prompt/5-shot\n\rcompare lanes: 1lane [00:00,  5.30lane/s]\n"
    "\rprompt/5-shot: score labels:  50%|█████     | 5/10 [00:00<00:00, 9.1case/s]\x1b[A"
)
DONE = "\n\r" + " " * 80 + "\x1b[A\rcompare lanes: 2lane [00:00,  7.19lane/s]\ndone: winner x\n"


def test_progress_is_what_a_terminal_would_show():
    log = ProgressLog()
    for i in range(0, len(RAW), 7):  # reads cut escapes and lines anywhere
        log.feed(RAW[i : i + 7])
    assert log.lines() == [
        "building prompt/zero-shot",
        "building prompt/5-shot",
        "compare lanes: 1lane [00:00,  5.30lane/s]",
        "prompt/5-shot: score labels:  50%|█████     | 5/10 [00:00<00:00, 9.1case/s]",
    ]
    log.feed(DONE)
    assert log.lines() == [
        "building prompt/zero-shot",
        "building prompt/5-shot",
        "compare lanes: 2lane [00:00,  7.19lane/s]",
        "done: winner x",
    ]


def test_task_files_near_the_working_directory():
    found = task_files(ROOT)
    assert "examples/banking77/task.yaml" in found and "examples/squad_docs_qa/task.yaml" in found


def test_the_worker_says_what_was_wrong_with_a_task(tmp_path):
    bad = tmp_path / "task.yaml"
    bad.write_text("name: x\n")
    cmd = [sys.executable, "-m", "compoundai.ui.worker", str(bad), "--out", str(tmp_path / "o")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is False and result["exit_code"] == 2
    assert "error:" in done.stderr and not (tmp_path / "o").exists()
