import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.errors import UserInputError
from compoundai.task import load_task
from tests.conftest import BANKING


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def labelled_task(tmp_path: Path, rows: list[str], extra: str = "") -> Path:
    write(tmp_path / "data" / "train.jsonl", "\n".join(rows) + "\n")
    write(tmp_path / "data" / "test.jsonl", '{"text": "hi", "label": "a"}\n')
    return write(
        tmp_path / "sub" / "task.yaml",
        f"""
name: t
instructions: Classify.
output: {{type: labels, labels: [a, b]}}
examples:
  input_field: text
  output_field: label
  train: ../data/train.jsonl
  test: ../data/test.jsonl
{extra}
""",
    )


def test_bundled_example_loads():
    task = load_task(BANKING)
    assert len(task.labels) == 77
    assert len(task.split("train")) == 1540
    assert len(task.split("test")) == 770
    assert task.metrics == ["accuracy", "macro_f1"]
    assert all(e.output in task.labels for e in task.split("test"))


def test_paths_resolve_relative_to_the_yaml(tmp_path, monkeypatch):
    path = labelled_task(tmp_path, ['{"text": "x", "label": "b"}'])
    monkeypatch.chdir("/")
    task = load_task(path)
    assert [e.output for e in task.split("train")] == ["b"]


def test_every_jsonl_problem_is_listed_with_file_and_line(tmp_path):
    rows = [
        '{"text": "ok", "label": "a"}',
        '{"text": "bad json", ',
        '{"label": "a"}',
        '{"text": "x", "label": "zzz"}',
        "[1, 2]",
    ]
    with pytest.raises(UserInputError) as info:
        load_task(labelled_task(tmp_path, rows))
    text = str(info.value)
    train = str(tmp_path / "sub" / ".." / "data" / "train.jsonl")
    assert f"{train}:2: invalid JSON" in text
    assert f"{train}:3: input field 'text' missing" in text
    assert f"{train}:4: unknown label 'zzz'" in text
    assert f"{train}:5: expected a JSON object" in text
    assert len(info.value.problems) == 4


def test_schema_problems_are_all_listed_with_yaml_lines(tmp_path):
    path = write(
        tmp_path / "task.yaml",
        """name: t
instructions: ""
outptu: {type: labels}
constraints:
  max_latency_ms: -5
examples: {test: missing.jsonl}
""",
    )
    with pytest.raises(UserInputError) as info:
        load_task(path)
    problems = {p.field: p for p in info.value.problems}
    assert problems["instructions"].line == 2
    assert problems["outptu"].line == 3  # extra="forbid": a misspelt key is an error
    assert problems["constraints.max_latency_ms"].line == 5


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = write(tmp_path / "task.yaml", "name: t\ninstructions: [unclosed\nfoo: bar\n")
    with pytest.raises(UserInputError) as info:
        load_task(path)
    assert info.value.problems[0].line is not None
    assert "invalid YAML" in str(info.value)


def test_non_utf8_and_empty_files(tmp_path):
    write(tmp_path / "data" / "train.jsonl", b'{"text": "caf\xe9", "label": "a"}\n')
    write(tmp_path / "data" / "test.jsonl", b"\n\n")
    path = write(
        tmp_path / "task.yaml",
        """name: t
instructions: x
output: {type: labels, labels: [a]}
examples: {input_field: text, output_field: label, train: data/train.jsonl, test: data/test.jsonl}
""",
    )
    with pytest.raises(UserInputError) as info:
        load_task(path)
    text = str(info.value)
    assert "train.jsonl:1: not UTF-8" in text
    assert "test.jsonl: file holds no rows" in text


def test_unknown_metric_and_missing_labels(tmp_path):
    write(tmp_path / "d.jsonl", '{"input": "x", "output": "y"}\n')
    path = write(
        tmp_path / "task.yaml",
        """name: t
instructions: x
output: {type: labels}
examples: {test: d.jsonl}
metrics: [accuracy, bleurt]
""",
    )
    with pytest.raises(UserInputError) as info:
        load_task(path)
    text = str(info.value)
    assert "output.labels is not set" in text
    assert "unknown metric 'bleurt'" in text


def test_json_output_assembled_from_several_fields(tmp_path):
    write(
        tmp_path / "d.jsonl",
        json.dumps({"text": "play jazz", "intent": "Play", "slots": {"genre": "jazz"}}) + "\n",
    )
    path = write(
        tmp_path / "task.yaml",
        """name: t
instructions: x
output: {type: json_schema, schema: {type: object}}
examples:
  input_field: text
  output_field: {intent: intent, slots: slots}
  test: d.jsonl
""",
    )
    task = load_task(path)
    assert task.split("test")[0].output == {"intent": "Play", "slots": {"genre": "jazz"}}


def test_cli_bad_task_exits_2_lists_everything_and_writes_nothing(tmp_path):
    path = labelled_task(tmp_path, ['{"text": 1, "label": "a"}', '{"text": "x", "label": "q"}'])
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(path), "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "2 problems" in result.output
    assert "train.jsonl:1" in result.output and "train.jsonl:2" in result.output
    assert not out.exists()


def test_cli_missing_task_file_exits_2(tmp_path):
    result = CliRunner().invoke(cli, ["decide", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "task file not found" in result.output
