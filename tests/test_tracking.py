"""`--track mlflow`: a real run, a decision and a training logged to a local MLflow store, and
read back through MLflow's own client (not through our code)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from compoundai.cli import cli
from compoundai.run import run_task
from compoundai.task import load_task
from compoundai.tracking import Tracking, safe_key, track_decision, track_report, track_training
from tests.conftest import BANKING, label_echo_generator
from tests.evaluators.conftest import build_report as build_scripted_report

mlflow = pytest.importorskip("mlflow", reason="install the track extra: pip install -e '.[track]'")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One local MLflow store for the module (creating its database takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path, monkeypatch):
    # MLflow 3 puts a database store's artifacts in ./mlruns: keep them out of the repository
    monkeypatch.chdir(tmp_path)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_a_real_run_is_logged_and_read_back(fake_ctx, tmp_path, store):
    task = load_task(BANKING)
    fake_ctx.clients["generator"] = label_echo_generator(task.labels)
    out = tmp_path / "run"
    report = run_task(task, out, lanes=["prompt", "rag"], limit=20, ctx=fake_ctx)

    tracked = track_report(report, out, uri=store, params={"limit": 20})
    run = _client(store).get_run(tracked.run_id)
    assert run.info.status == "FINISHED"
    assert _client(store).get_experiment(run.info.experiment_id).name == report.task
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    for lane in report.lanes:
        m = lane.metrics["accuracy"]
        assert metrics[f"{lane.name}/accuracy"] == pytest.approx(m.value)
        assert metrics[f"{lane.name}/accuracy.ci_low"] == pytest.approx(m.ci_low)
        assert metrics[f"{lane.name}/accuracy.ci_high"] == pytest.approx(m.ci_high)
        assert metrics[f"{lane.name}/latency_ms.p50"] == pytest.approx(lane.latency_ms.p50)
    assert params["task"] == report.task and params["plan"] == report.decision["plan"]
    assert params["cases.n"] == "20" and params["limit"] == "20"
    assert tags["winner"] == report.winner
    names = {a.path for a in _client(store).list_artifacts(tracked.run_id, "report")}
    assert names == {f"report/{n}" for n in REPORT_FILES}
    local = _client(store).download_artifacts(tracked.run_id, "report/report.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == json.loads((out / "report.json").read_text())
    decision = _client(store).download_artifacts(tracked.run_id, "decision.json", str(tmp_path))
    assert json.loads(Path(decision).read_text())["plan"] == report.decision["plan"]


REPORT_FILES = ("report.json", "report.md", "report.html", "predictions.jsonl")


def _fake_adapter(folder: Path, losses: list[float]) -> Path:
    """An adapter folder as the training stack writes it (manifest + files), without training."""
    from compoundai_adapters.artifacts import AdapterManifest, TrainMetrics, write_manifest

    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text('{"r": 8, "lora_alpha": 16}')
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder.parent / "checkpoints").mkdir()
    metrics = TrainMetrics(
        steps=len(losses), tokens=4096, train_seconds=12.5, tokens_per_s=327.7, mfu=0.4
    )
    manifest = AdapterManifest(
        stage="sft", base_model="tiny", lora={"rank": 8}, metrics=metrics, losses=losses
    )
    write_manifest(folder, manifest)
    return folder


def test_a_training_curve_and_its_adapter(tmp_path, store):
    adapter = _fake_adapter(tmp_path / "sft" / "adapter", [2.5, 1.75, 1.25, 1.0])
    tracked = track_training(adapter, uri=store, config={"epochs": 2, "lora": {"rank": 8}})
    client = _client(store)
    history = client.get_metric_history(tracked.run_id, "train_loss")
    assert [(h.step, h.value) for h in sorted(history, key=lambda h: h.step)] == [
        (1, 2.5),
        (2, 1.75),
        (3, 1.25),
        (4, 1.0),
    ]
    run = client.get_run(tracked.run_id)
    assert run.data.metrics["tokens_per_s"] == pytest.approx(327.7)
    assert run.data.params["config.epochs"] == "2" and run.data.params["config.lora.rank"] == "8"
    assert run.data.params["stage"] == "sft"
    files = {a.path for a in client.list_artifacts(tracked.run_id, "adapter")}
    assert files == {
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "adapter/manifest.json",
    }


def test_a_report_with_an_adapter_logs_the_lanes_curve(tmp_path, store):
    scripted_report = build_scripted_report(n=40)
    adapter = _fake_adapter(tmp_path / "ft" / "adapter", [3.0, 2.0])
    tracked = track_report(scripted_report, None, uri=store, adapters={"finetune/sft+dpo": adapter})
    history = _client(store).get_metric_history(tracked.run_id, "finetune/sft_dpo/train_loss")
    assert sorted(h.value for h in history) == [2.0, 3.0]
    saved = _client(store).list_artifacts(tracked.run_id, "adapters/finetune/sft_dpo")
    assert "adapters/finetune/sft_dpo/manifest.json" in {a.path for a in saved}


def test_a_decision_with_measured_evidence(store):
    decision = {
        "plan": "rag",
        "lane": "rag/demos",
        "mode": "measured",
        "ranked": [{"lane": "rag", "score": 2.0}, {"lane": "prompt", "score": 1.0}],
        "reasons": [{"lane": "rag", "signal": "n_labels", "value": 77, "text": "many labels"}],
        "evidence": [
            {"lane": "rag", "stage": "screen", "data_share": 0.25, "cases": 20, "value": 0.7,
             "ci_low": 0.5, "ci_high": 0.85, "seconds": 3.0},
            {"lane": "rag", "stage": "screen", "data_share": 0.5, "cases": 40, "value": 0.75,
             "ci_low": 0.6, "ci_high": 0.86, "seconds": 5.0},
        ],
    }  # fmt: skip
    tracked = track_decision(decision, task="banking", uri=store)
    client = _client(store)
    run = client.get_run(tracked.run_id)
    assert run.data.params["decision_mode"] == "measured"
    assert run.data.metrics["ranked/rag"] == 2.0
    curve = client.get_metric_history(tracked.run_id, "evidence/rag/screen")
    assert sorted((h.step, h.value) for h in curve) == [(20, 0.7), (40, 0.75)]
    assert "many labels" in run.data.tags["mlflow.note.content"]


def test_the_train_commands_take_the_tracking_options():
    result = CliRunner().invoke(cli, ["train", "sft", "--help"])
    assert "--track [mlflow]" in result.output and "--tracking-uri URI" in result.output


def test_without_mlflow_tracking_is_a_user_error_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now raises ImportError
    result = CliRunner().invoke(
        cli, ["train", "sft", str(tmp_path / "none.yaml"), "--track", "mlflow"]
    )
    assert result.exit_code == 2
    assert "pip install 'compoundai[track]'" in result.output
    with pytest.raises(Exception, match="needs MLflow"):
        Tracking.from_options({"track": "mlflow", "tracking_uri": None})


def test_options_pass_through_and_keys_are_made_safe():
    options = {"track": None, "tracking_uri": None, "limit": 3}
    tracking = Tracking.from_options(options)
    assert options == {"limit": 3} and not tracking.enabled
    assert tracking.report(None, "out") is None  # type: ignore[arg-type]
    assert safe_key("finetune/sft+dpo/accuracy") == "finetune/sft_dpo/accuracy"
    result = CliRunner().invoke(cli, ["train", "sft", "x.yaml", "--tracking-uri", "sqlite:///x"])
    assert result.exit_code == 2 and "without --track" in result.output
