"""Task files a new user writes: real data files load, folders are read, problems come in one
pass with suggestions, the shapes users have are handled, and tasks with little data decide."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.errors import UserInputError
from compoundai.lanes import FinetuneLane
from compoundai.lanes.prompt import answer_tokens
from compoundai.profile import profile
from compoundai.router import Router
from compoundai.run import decide, run_task
from compoundai.task import load_task
from compoundai_evaluators.metrics import Row, value_of
from compoundai_evaluators.metrics.numeric import FINAL_ANSWER, final_number

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
GSM8K = SHARED / "gsm8k" / "train.jsonl"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _task(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    return path


@pytest.mark.skipif(not GSM8K.is_file(), reason="needs ../shared/data/gsm8k")
def test_the_whole_gsm8k_train_file_loads_with_true_line_numbers(tmp_path):
    """A row holds U+2028 inside a string: splitlines() broke it into three bad lines."""
    lines = GSM8K.read_text(encoding="utf-8").split("\n")
    at = next(i for i, line in enumerate(lines) if "\u2028" in line)  # line 2382
    path = _task(
        tmp_path,
        {
            "name": "math",
            "instructions": "Solve the problem; end with #### and the number.",
            "examples": {
                "input_field": "question",
                "output_field": "answer",
                "train": str(GSM8K),
                "test": str(SHARED / "gsm8k" / "test.jsonl"),
            },
            "metrics": ["final_answer"],
        },
    )
    task = load_task(path)
    train = task.split("train")
    assert len(train) == 7473
    assert train[at].source.endswith(f"train.jsonl:{at + 1}") and "\u2028" in train[at].input
    assert train[-1].source.endswith(f"train.jsonl:{len(train)}")
    # and the rules notice the verifiable answers
    reasons = Router().decide(profile(task)).reasons
    assert any(r.signal == "numeric_answer_share" and "GRPO" in r.text for r in reasons)


def test_final_answer_scores_the_number_not_the_worked_solution():
    worked = "She has 3 + 4 = 7 apples.\n#### 7"
    assert final_number(worked) == final_number("7.0") == final_number("$7")
    rows = [
        Row("1", "q", worked, "The answer is 7."),
        Row("2", "q", worked, "#### 8"),
        Row("3", "q", "#### 1,250", "so 1250 in all"),
    ]
    assert value_of(FINAL_ANSWER, rows) == pytest.approx(2 / 3)


def test_a_folder_of_documents_is_read_recursively(tmp_path):
    docs = tmp_path / "handbook"
    (docs / "hr" / "leave").mkdir(parents=True)
    (docs / "intro.md").write_text("# Handbook\n\nWelcome.")
    (docs / "hr" / "leave" / "holidays.md").write_text("Staff have 25 days of leave.")
    (docs / ".draft.md").write_text("hidden")
    (docs / "logo.png").write_bytes(b"\x89PNG")
    _write(tmp_path / "q.jsonl", [{"input": "How many days of leave?", "output": "25"}])
    path = _task(
        tmp_path,
        {
            "name": "handbook",
            "instructions": "Answer from the handbook.",
            "documents": ["handbook"],
            "examples": {"test": "q.jsonl"},
        },
    )
    task = load_task(path)
    assert sorted(p.name for p in task.documents) == ["holidays.md", "intro.md"]
    assert Router().decide(profile(task)).plan == "prompt"  # it fits: prompt/stuffed


def test_jsonl_documents_say_which_field_holds_the_text(tmp_path):
    _write(tmp_path / "kb.jsonl", [{"doc_id": "a", "body": "Paris is in France."}])
    _write(tmp_path / "q.jsonl", [{"input": "Where is Paris?", "output": "France"}])
    spec = {
        "name": "kb",
        "instructions": "Answer.",
        "documents": ["kb.jsonl"],
        "examples": {"test": "q.jsonl"},
    }
    with pytest.raises(UserInputError) as err:
        load_task(_task(tmp_path, spec))
    text = str(err.value)
    assert "kb.jsonl:1" in text and "document_fields.text" in text and "body" in text
    task = load_task(_task(tmp_path, {**spec, "document_fields": {"text": "body"}}))
    assert profile(task).n_passages == 1


def test_schema_and_data_problems_come_in_one_pass_with_a_suggestion(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"input": "a", "output": "x"}\n{broken\n')
    path = _task(
        tmp_path,
        {
            "name": "t",
            "instruction": "Misspelt.",
            "examples": {"train": "train.jsonl", "test": "train.jsonl"},
        },
    )
    with pytest.raises(UserInputError) as err:
        load_task(path)
    text = str(err.value)
    assert "did you mean 'instructions'?" in text  # the schema problem
    assert "train.jsonl:2" in text and "invalid JSON" in text  # and the data problem


def test_an_input_template_and_per_split_outputs(tmp_path):
    _write(
        tmp_path / "train.jsonl",
        [
            {"instruction": "Translate", "input": "chat", "answers": ["cat", "kitty"]},
            {"instruction": "Translate", "input": "xyzzy", "answers": []},
        ],
    )
    _write(
        tmp_path / "test.jsonl",
        [{"instruction": "Translate", "input": "chien", "answers": ["dog", "hound"]}],
    )
    path = _task(
        tmp_path,
        {
            "name": "t",
            "instructions": "Do it.",
            "examples": {
                "input_template": "{instruction}: {input}",
                "output_field": "answers",
                "train": "train.jsonl",
                "test": "test.jsonl",
            },
        },
    )
    task = load_task(path)
    assert task.split("train")[0].input == "Translate: chat"
    assert task.split("train")[0].output == "cat"  # one target to learn
    assert task.split("train")[1].output == "I don't know."  # no answer: learn to abstain
    assert task.split("test")[0].output == ["dog", "hound"]  # every reference counts
    bad = _task(tmp_path, yaml.safe_load(path.read_text()) | {"name": "t2"})
    spec = yaml.safe_load(bad.read_text())
    spec["examples"]["input_template"] = "{instruction}: {text}"
    with pytest.raises(UserInputError, match="input_template names the field 'text'"):
        load_task(_task(tmp_path, spec))


def test_free_text_answers_get_a_length_from_the_training_answers():
    squad = load_task(ROOT / "examples/squad_docs_qa/task.yaml")
    assert 32 <= answer_tokens(squad) <= 64  # short phrases, not 256 tokens
    hh = load_task(ROOT / "examples/hh_preferences/task.yaml")
    assert answer_tokens(hh) == 256


def test_an_instructions_only_task_decides_prompt_and_says_why(tmp_path, fake_ctx):
    path = _task(tmp_path, {"name": "haiku", "instructions": "Write a haiku about the input."})
    task = load_task(path)
    decision = decide(task, fake_ctx)
    assert decision.plan == "prompt" and decision.lane == "prompt/zero-shot"
    notes = " ".join(e.note for e in decision.evidence)
    assert "nothing to measure" in notes or "not measured" in notes
    assert any("nothing can be trained or retrieved" in r.text for r in decision.reasons)


def test_a_preferences_only_task_plans_something_buildable(tmp_path, tiny_model_dir, fake_ctx):
    pairs = [
        {"prompt": f"Say hi {i}", "chosen": "Hello there!", "rejected": "Go away."}
        for i in range(30)
    ]
    _write(tmp_path / "pairs.jsonl", pairs)
    path = _task(
        tmp_path,
        {
            "name": "prefs",
            "instructions": "Reply politely.",
            "preferences": {"train": "pairs.jsonl", "test": "pairs.jsonl"},
            "metrics": ["preference_accuracy"],
            "models": {"generator": str(tiny_model_dir)},
            "finetune": {"epochs": 1, "tokens_per_batch": 256, "dpo": {"epochs": 1}},
        },
    )
    task = load_task(path)
    rules = Router().decide(profile(task))
    assert rules.lane == "prompt/zero-shot"  # buildable without examples
    # and the DPO lane builds too: its SFT rows are the chosen answers
    rows = FinetuneLane(("sft", "dpo")).training_rows(task)
    assert rows[0] == {"prompt": "Say hi 0", "completion": "Hello there!"}
    system = FinetuneLane(("sft", "dpo")).build(task, fake_ctx)
    assert system.info.stages == ["sft", "dpo"]


def test_strict_makes_leakage_an_error(tmp_path):
    rows = [{"input": f"text {i}", "output": "a"} for i in range(4)]
    _write(tmp_path / "train.jsonl", rows)
    _write(tmp_path / "test.jsonl", rows[:2])
    path = _task(
        tmp_path,
        {
            "name": "leaky",
            "instructions": "Label.",
            "output": {"type": "labels", "labels": ["a", "b"]},
            "examples": {"train": "train.jsonl", "test": "test.jsonl"},
        },
    )
    warned = CliRunner().invoke(cli, ["decide", str(path), "--rules-only"])
    assert warned.exit_code == 0
    strict = CliRunner().invoke(cli, ["decide", str(path), "--rules-only", "--strict"])
    assert strict.exit_code == 2 and "2 of 2 examples.test inputs" in strict.output


def test_a_run_without_held_out_cases_says_so(tmp_path, fake_ctx):
    path = _task(tmp_path, {"name": "haiku", "instructions": "Write a haiku."})
    with pytest.raises(UserInputError, match="no held-out examples"):
        run_task(load_task(path), tmp_path / "out", ctx=fake_ctx)
