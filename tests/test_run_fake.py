import json

from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.data import sample_items
from compoundai.run import run_task
from compoundai.task import load_task
from compoundai.testing import FakeGenerator
from tests.conftest import BANKING, label_echo_generator


def test_run_with_fakes_writes_a_design_conformant_report(fake_ctx, tmp_path, tiny_model_dir):
    task = load_task(BANKING)
    fake_ctx.clients["generator"] = label_echo_generator(task.labels)
    # the finetune lane trains for real, on the tiny random model (seconds, not minutes)
    task.spec.models.generator = str(tiny_model_dir)
    task.spec.finetune.epochs = 1
    task.spec.compound.max_train_rows = 77
    out = tmp_path / "out"
    report = run_task(task, out, limit=77, ctx=fake_ctx, mode="rules")

    data = json.loads((out / "report.json").read_text())
    assert {"task", "decision", "lanes", "winner", "router_correct"} <= set(data)
    assert data["decision"]["plan"] == "rag" and data["decision"]["lane"] == "rag/knn-vote"
    by_name = {lane["name"]: lane for lane in data["lanes"]}
    assert set(by_name) == {
        "prompt/zero-shot",
        "prompt/5-shot",
        "rag/knn-vote",
        "rag/demos",
        "finetune/sft",
        "compound",
    }
    ok = by_name["prompt/5-shot"]
    assert ok["status"] == "ok" and ok["n_cases"] == 77
    acc = ok["metrics"]["accuracy"]
    assert acc["ci_low"] <= acc["value"] <= acc["ci_high"]
    assert set(ok["latency_ms"]) == {"p50", "p95"}
    assert ok["cost"]["prompt_tokens"] > 0
    vote = by_name["rag/knn-vote"]
    assert vote["status"] == "ok" and "recall_at_5" not in vote["metrics"]
    assert by_name["rag/demos"]["status"] == "ok"
    tuned = by_name["finetune/sft"]
    assert tuned["status"] == "ok" and tuned["n_cases"] == 77
    compound = by_name["compound"]
    assert compound["status"] == "ok" and compound["n_cases"] == 77
    # a random tiny model loses to the fakes; the plan's lane (the kNN vote) is checked
    assert report.winner not in {"finetune/sft", "compound"}
    check = data["decision_check"]
    assert check["chosen_lane"] == "rag/knn-vote" and check["outcome"] in {
        "matched",
        "tied",
        "wrong",
    }
    assert data["router_correct"] is (check["outcome"] != "wrong")
    assert (
        "| prompt/5-shot |" in (out / "report.md").read_text()
        or "**prompt/5-shot**" in (out / "report.md").read_text()
    )
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 * 77 and {"lane", "id", "input", "reference", "output"} <= set(rows[0])
    # stratified: 77 cases, one per label
    assert len({r["reference"] for r in rows if r["lane"] == "prompt/5-shot"}) == 77


def test_same_cases_and_prompts_for_every_lane(fake_ctx, tmp_path):
    task = load_task(BANKING)
    gen = label_echo_generator(task.labels)
    fake_ctx.clients["generator"] = gen
    run_task(task, tmp_path / "o", lanes=["prompt"], limit=20, ctx=fake_ctx, mode="rules")
    queries = [c[-1]["content"] for c in gen.calls]
    assert queries[:20] == queries[20:40]


def test_limit_cuts_the_preference_pairs_to_the_same_rows(fake_ctx, tmp_path):
    # hh_preferences' pairs are its test rows: `--limit 5` scores 5 pairs (was all 60, which
    # made a 4-case smoke run of it take minutes), the same rows as the 5 answered cases
    task = load_task(BANKING.parent.parent / "hh_preferences" / "task.yaml")
    fake_ctx.clients["generator"] = FakeGenerator(default="ok", scores=lambda chat, c: -len(c))
    out = tmp_path / "o"
    report = run_task(task, out, lanes=["prompt"], limit=5, ctx=fake_ctx, mode="rules")
    data = json.loads((out / "report.json").read_text())
    assert data["cases"]["preference_pairs"] == 5
    lane = next(lane for lane in report.lanes if lane.name == "prompt/zero-shot")
    assert lane.metrics["preference_accuracy"].n == 5
    answered = {r["id"] for r in map(json.loads, (out / "predictions.jsonl").open())}
    cut = sample_items(task.preferences["test"], 5, task.spec.evaluation.seed)
    assert len(answered) == 5 and answered == {p.id for p in cut}


def test_cli_compare_unknown_lane_is_a_user_error(tmp_path):
    result = CliRunner().invoke(
        cli, ["compare", str(BANKING), "-o", str(tmp_path / "o"), "--lanes", "prompt,telepathy"]
    )
    assert result.exit_code == 2
    assert "unknown lane" in result.output
    assert not (tmp_path / "o").exists()
