"""Task data checked when the task loads: train/test leakage, duplicate ids, metrics that cannot
apply to the output type (exit 2 before any lane is built)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.errors import UserInputError
from compoundai.task import load_task


def rows(*pairs: tuple[str, str], ids: bool = False) -> str:
    out = []
    for n, (text, label) in enumerate(pairs):
        row = {"text": text, "label": label, **({"id": f"r{n}"} if ids else {})}
        out.append(json.dumps(row))
    return "\n".join(out) + "\n"


TRAIN = [("my card never came", "a"), ("what is the rate", "b"), ("top up failed", "a")]


def task_file(
    tmp_path: Path,
    train: str,
    test: str,
    *,
    output: str = "{type: labels, labels: [a, b]}",
    extra: str = "",
) -> Path:
    (tmp_path / "train.jsonl").write_text(train)
    (tmp_path / "test.jsonl").write_text(test)
    path = tmp_path / "task.yaml"
    path.write_text(
        f"name: t\ninstructions: Classify.\noutput: {output}\n"
        "examples: {input_field: text, output_field: label, id_field: id, "
        "train: train.jsonl, test: test.jsonl}\n" + extra
    )
    return path


def test_train_test_overlap_is_a_loud_warning_and_strict_fails(tmp_path, caplog):
    test = rows(("What is the RATE ", "b"), ("top up failed", "a"), ("brand new one", "b"))
    path = task_file(tmp_path, rows(*TRAIN), test)
    with caplog.at_level(logging.WARNING, logger="compoundai.task"):
        task = load_task(path)
    assert len(task.warnings) == 1
    assert task.warnings[0].startswith("2 of 3 examples.test inputs also occur in examples.train")
    assert "2 of 3 examples.test" in caplog.text
    with pytest.raises(UserInputError, match=r"2 of 3 examples\.test inputs") as err:
        load_task(path, strict=True)
    assert err.value.exit_code == 2 and err.value.problems[0].field == "examples.test"


def test_no_overlap_no_warning(tmp_path):
    path = task_file(tmp_path, rows(*TRAIN), rows(("brand new one", "b")))
    assert load_task(path, strict=True).warnings == []


def test_duplicate_ids_are_an_error_naming_every_row(tmp_path):
    train = rows(*TRAIN, ids=True)
    test = rows(("brand new one", "b"), ("another", "a"), ids=True)  # r0, r1 again
    path = task_file(tmp_path, train, test)
    with pytest.raises(UserInputError) as err:
        load_task(path)
    text = str(err.value)
    assert "id 'r0' is used by 2 rows" in text and "id 'r1' is used by 2 rows" in text
    assert f"{tmp_path / 'train.jsonl'}:1" in text and f"{tmp_path / 'test.jsonl'}:1" in text
    result = CliRunner().invoke(cli, ["decide", str(path)])
    assert result.exit_code == 2 and "id 'r0' is used by 2 rows" in result.output


@pytest.mark.parametrize(
    ("output", "metric", "message"),
    [
        ("{type: labels, labels: [a, b]}", "slot_f1", "needs output.type json_schema"),
        ("{type: free_text}", "schema_adherence", "needs output.type json_schema"),
        ("{type: free_text}", "macro_f1", "needs output.type labels"),
        ("{type: labels, labels: [a, b]}", "preference_accuracy", "needs preference pairs"),
        ("{type: free_text}", "groundedness", "needs documents"),
    ],
)
def test_a_metric_that_cannot_apply_is_exit_2_before_any_work(
    tmp_path, monkeypatch, output, metric, message
):
    path = task_file(
        tmp_path,
        rows(*TRAIN),
        rows(("brand new one", "b")),
        output=output,
        extra=f"metrics: [accuracy, {metric}]\n",
    )
    with pytest.raises(UserInputError, match=message) as err:
        load_task(path)
    assert err.value.problems[-1].field == "metrics"
    metrics_line = path.read_text().splitlines().index(f"metrics: [accuracy, {metric}]") + 1
    assert err.value.problems[-1].line == metrics_line

    def no_work(*args, **kwargs):
        raise AssertionError("a lane was built for a task that cannot be scored")

    monkeypatch.setattr("compoundai.lanes.lanes_for", no_work)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(path), "-o", str(out), "--lanes", "prompt"])
    assert result.exit_code == 2, result.output
    assert message in result.output and not out.exists()


def test_metrics_that_fit_load(tmp_path):
    path = task_file(
        tmp_path,
        rows(*TRAIN),
        rows(("brand new one", "b")),
        extra="metrics: [accuracy, macro_f1, exact_match]\n",
    )
    assert load_task(path).metrics == ["accuracy", "macro_f1", "exact_match"]


def test_one_file_given_for_two_splits_is_leakage_not_duplicate_ids(tmp_path):
    data = rows(*TRAIN, ids=True)
    path = task_file(tmp_path, data, data)
    (tmp_path / "test.jsonl").unlink()
    path.write_text(path.read_text().replace("test: test.jsonl", "test: train.jsonl"))
    task = load_task(path)
    assert task.warnings and task.warnings[0].startswith("3 of 3 examples.test inputs")
