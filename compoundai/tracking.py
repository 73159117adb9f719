"""Runs tracked where ML teams already look: reports, decisions and trainings logged to MLflow.

`--track mlflow` on `run`, `compare`, `decide` and `train` (the `tracking_options` decorator)
logs one MLflow run per command, the way TRL's and transformers' `report_to="mlflow"` does
for a training:

- a report (`track_report`): the task, the plan and the sampling as parameters; every lane's
  metrics with their interval ends (`<lane>/<metric>`, `.ci_low`, `.ci_high`), latency, cost and
  time; the decision check (regret and its interval); the winner and the outcome as tags; the
  report files and predictions as artifacts, and any adapter a lane names (its training curve
  as `<lane>/train_loss` per step, its folder as an artifact);
- a decision (`track_decision`): the plan, every lane's router score, the probe's and the
  measured router's evidence (one metric per lane and stage, stepped by cases), decision.json;
- a training (`track_training`): the config and the adapter manifest as parameters, the loss
  per optimizer step, throughput, MFU and the forgetting check, the adapter folder.

`MlflowClient(tracking_uri)`, not `mlflow.start_run`: the fluent API keeps the active run and
the URI in process-wide state (no global settings here). With no `--tracking-uri` MLflow picks
its default (`MLFLOW_TRACKING_URI`, else a local store in the working directory: `./mlruns`
for MLflow 2, `sqlite:///mlflow.db` plus `./mlruns` for MLflow 3). MLflow is an optional extra
imported inside these functions, so the core stays light; tracking without it is a user error
before any work. Keys keep letters, digits and `_ - . / : space`: `finetune/sft+dpo` logs as
`finetune/sft_dpo/accuracy`.

Kept in one piece (the MLflow writer, the three records, the CLI options): whoever follows
`--track` from a command finds every name it logs in this file.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from compoundai.errors import UserInputError

if TYPE_CHECKING:
    from compoundai_evaluators.report import Report

F = TypeVar("F", bound=Callable[..., Any])
BACKENDS = ("mlflow",)
INSTALL_HINT = "pip install 'compoundai[track]'"
PARAM_CHARS = 500  # MLflow 2.x before 2.? stored at most 500 characters a parameter value
REPORT_FILES = ("report.json", "report.md", "report.html", "predictions.jsonl")


def _mlflow() -> Any:
    """The `mlflow` module, or a user error that says how to install it."""
    try:
        import mlflow
    except ImportError as exc:
        raise UserInputError(
            "--track mlflow needs MLflow, which is not installed", hint=INSTALL_HINT
        ) from exc
    return mlflow


def safe_key(key: str) -> str:
    """A metric, parameter or tag key MLflow accepts (see the module docstring).

    >>> safe_key("finetune/sft+dpo/accuracy")
    'finetune/sft_dpo/accuracy'
    """
    return re.sub(r"[^\w\-./: ]", "_", key)[:250]


@dataclass(frozen=True)
class TrackedRun:
    """Where a command's record landed."""

    run_id: str
    experiment: str
    uri: str

    def __str__(self) -> str:
        return f"MLflow run {self.run_id} (experiment {self.experiment!r}) in {self.uri}"


class _Logger:
    """One MLflow run being written: buffered metrics, params and tags, sent in batches."""

    def __init__(self, uri: str | None, experiment: str, run_name: str | None, kind: str) -> None:
        mlflow = _mlflow()
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        resolved = getattr(self.client, "tracking_uri", None) or uri or mlflow.get_tracking_uri()
        self.uri = str(resolved)
        found = self.client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found else self.client.create_experiment(experiment)
        run = self.client.create_run(exp_id, tags={"compoundai.kind": kind}, run_name=run_name)
        self.run_id: str = run.info.run_id
        self.experiment, self.entities = experiment, mlflow.entities
        self.metrics: list[Any] = []
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.now = int(time.time() * 1000)

    def metric(self, key: str, value: Any, step: int = 0) -> None:
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            return  # MLflow stores numbers; an undefined metric is left out, not logged as NaN
        self.metrics.append(self.entities.Metric(safe_key(key), float(value), self.now, step))

    def interval(self, key: str, value: Any, step: int = 0) -> None:
        """`key`, `key.ci_low` and `key.ci_high` of anything with those fields (or such a dict)."""
        for field, suffix in (("value", ""), ("ci_low", ".ci_low"), ("ci_high", ".ci_high")):
            got = value.get(field) if isinstance(value, Mapping) else getattr(value, field, None)
            self.metric(key + suffix, got, step)

    def param(self, key: str, value: Any) -> None:
        if value is None or value == "":
            return
        if not isinstance(value, str):
            value = json.dumps(value, default=str, ensure_ascii=False)
        self.params[safe_key(key)] = value[:PARAM_CHARS]

    def param_dict(self, values: Mapping[str, Any]) -> None:
        for key, value in values.items():
            self.param(key, value)

    def tag(self, key: str, value: Any) -> None:
        if value is not None:
            self.tags[safe_key(key)] = str(value)[:5000]

    def flush(self) -> None:
        e = self.entities
        batches = [  # MLflow's limits per log_batch call
            ("metrics", self.metrics, 1000),
            ("params", [e.Param(k, v) for k, v in self.params.items()], 100),
            ("tags", [e.RunTag(k, v) for k, v in self.tags.items()], 100),
        ]
        for kind, items, size in batches:
            for i in range(0, len(items), size):
                batch: dict[str, Any] = {kind: items[i : i + size]}
                self.client.log_batch(self.run_id, **batch)
        self.metrics, self.params, self.tags = [], {}, {}

    def text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def files(self, paths: Iterable[Path], artifact_path: str) -> None:
        for path in paths:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path), artifact_path)

    def folder(self, path: Path, artifact_path: str) -> None:
        """A folder's files, without training checkpoints (they are large and resumable state)."""
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path)
            if file.is_file() and "checkpoints" not in rel.parts:
                where = "/".join([artifact_path, *rel.parts[:-1]])
                self.client.log_artifact(self.run_id, str(file), where)

    def finish(self, write: Callable[[_Logger], None]) -> TrackedRun:
        try:
            write(self)
            self.flush()
        except BaseException:
            self.client.set_terminated(self.run_id, status="FAILED")
            raise
        self.client.set_terminated(self.run_id, status="FINISHED")
        return TrackedRun(self.run_id, self.experiment, self.uri)


def _log_training_curve(log: _Logger, prefix: str, adapter_dir: Path) -> None:
    """The loss per step, throughput and forgetting from an adapter's manifest, if it has one."""
    if not (adapter_dir / "manifest.json").is_file():
        return
    from compoundai_adapters.artifacts import read_manifest

    manifest = read_manifest(adapter_dir)
    for step, loss in enumerate(manifest.losses, start=1):
        log.metric(f"{prefix}train_loss", loss, step)
    m = manifest.metrics
    for name in ("steps", "tokens", "train_seconds", "tokens_per_s", "mfu"):
        log.metric(f"{prefix}{name}", getattr(m, name))
    for name in ("perplexity_before", "perplexity_after", "ratio"):
        log.metric(f"{prefix}forgetting.{name}", getattr(m.forgetting, name, None))
    log.param(f"{prefix}stage", manifest.stage)
    log.param(f"{prefix}base_model", manifest.base_model)


def track_report(
    report: Report,
    out_dir: str | Path | None = None,
    *,
    uri: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    adapters: Mapping[str, str | Path] | None = None,
    artifacts: bool = True,
    params: Mapping[str, Any] | None = None,
) -> TrackedRun:
    """Log a `compare`/`run` report as one MLflow run (see the module docstring).

    `out_dir` holds the report files logged as artifacts (under `report/`); `adapters` maps a
    lane to its adapter folder (a lane's `info["adapter"]` in the report is used too) for the
    training curve and the adapter as an artifact (under `adapters/<lane>/`); `params` are
    extra parameters (the command's options). The experiment defaults to the task's name.

    >>> report = run_task("examples/banking77/task.yaml", "out/b")  # doctest: +SKIP
    >>> track_report(report, "out/b", uri="sqlite:///mlflow.db")    # doctest: +SKIP
    TrackedRun(run_id='3f0c...', experiment='banking77-intents', uri='sqlite:///mlflow.db')
    """
    log = _Logger(uri, experiment or report.task, run_name, "report")
    known = dict(adapters or {})
    for lane in report.lanes:
        if isinstance(lane.info.get("adapter"), str):
            known.setdefault(lane.name, lane.info["adapter"])

    def write(log: _Logger) -> None:
        d = report.decision
        log.param_dict(
            {
                "task": report.task,
                "primary_metric": report.primary_metric,
                "plan": d.get("plan"),
                "plan_lane": d.get("lane"),
                "decision_mode": d.get("mode"),
                "lanes": ",".join(lane.name for lane in report.lanes),
                **{f"cases.{k}": report.cases.get(k) for k in ("split", "n", "sampling", "seed")},
                "cases.limit": report.cases.get("limit"),
                "compoundai": report.versions.get("compoundai"),
                **(params or {}),
            }
        )
        for lane in report.lanes:
            log.tag(f"{lane.name}.status", lane.status)
            if lane.status != "ok":
                continue
            log.param(f"{lane.name}.generator", lane.generator)
            for name, m in lane.metrics.items():
                log.interval(f"{lane.name}/{name}", m)
            if lane.latency_ms is not None:
                log.metric(f"{lane.name}/latency_ms.p50", lane.latency_ms.p50)
                log.metric(f"{lane.name}/latency_ms.p95", lane.latency_ms.p95)
            for key in ("usd_per_1k_cases", "build_seconds", "eval_seconds", "train_seconds"):
                log.metric(f"{lane.name}/{key}", lane.cost.get(key))
            log.metric(f"{lane.name}/n_cases", lane.n_cases)
        check = report.decision_check
        if check is not None:
            log.tag("decision_outcome", check.outcome or "not checkable")
            log.interval("decision/regret", check.regret)
        if report.router_correct is not None:
            log.metric("decision/router_correct", report.router_correct)
        log.tag("winner", report.winner or "none")
        log.tag("mlflow.note.content", report.router_note)
        log.flush()
        for lane_name, folder in known.items():
            path = Path(folder)
            _log_training_curve(log, f"{lane_name}/", path)
            if artifacts and path.is_dir():
                log.folder(path, f"adapters/{safe_key(lane_name)}")
        log.text(json.dumps(d, indent=2, default=str), "decision.json")
        if artifacts and out_dir is not None:
            log.files((Path(out_dir) / name for name in REPORT_FILES), "report")

    return log.finish(write)


def track_decision(
    decision: Any,
    *,
    task: str,
    uri: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> TrackedRun:
    """Log the router's decision (a `Decision` or its dump) as one MLflow run.

    Each lane's router score is `ranked/<lane>`; the probe's dev scores `probe/<lane>` with
    intervals; the measured router's evidence `evidence/<lane>/<stage>` stepped by its cases
    (so MLflow draws the learning curve); decision.json is the artifact.

    >>> track_decision(Router().decide(profile(task)), task=task.name)  # doctest: +SKIP
    """
    data: dict[str, Any] = decision.model_dump() if hasattr(decision, "model_dump") else decision
    log = _Logger(uri, experiment or task, run_name, "decision")

    def write(log: _Logger) -> None:
        mode = data.get("mode") or ("probe" if data.get("probe") else "rules")
        stages = ",".join(data.get("stages") or [])
        log.param_dict(
            {"task": task, "plan": data.get("plan"), "plan_lane": data.get("lane")}
            | {"decision_mode": mode, "stages": stages, **(params or {})}
        )
        for rank in data.get("ranked") or []:
            log.metric(f"ranked/{rank['lane']}", rank.get("score"))
        probe = data.get("probe") or {}
        for lane in probe.get("lanes", []):
            if lane.get("status") == "ok":
                log.interval(f"probe/{lane['lane']}", lane)
        for row in data.get("evidence") or []:
            key = f"evidence/{row.get('lane')}/{row.get('stage')}"
            step = int(row.get("cases") or 0)
            log.interval(key, row, step)
            log.metric(f"{key}.seconds", row.get("seconds"), step)
        reasons = [
            f"[{r['lane']}] {r['signal']}={r['value']}: {r['text']}" for r in data["reasons"]
        ]
        log.tag("mlflow.note.content", "\n".join(reasons))
        log.flush()
        log.text(json.dumps(data, indent=2, default=str), "decision.json")

    return log.finish(write)


def _scalars(config: Mapping[str, Any], prefix: str = "config.") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_scalars(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def track_training(
    adapter_dir: str | Path,
    *,
    uri: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    config: Mapping[str, Any] | None = None,
    artifacts: bool = True,
) -> TrackedRun:
    """Log a trained adapter (its `manifest.json`) as one MLflow run.

    The loss of every optimizer step is `train_loss` (step 1, 2, ...); tokens/s, MFU, steps and
    the forgetting check are metrics; `config` (the stage's settings) and the manifest's base
    model, stage, LoRA settings and data hashes are parameters; the adapter folder is the
    `adapter/` artifact. The experiment defaults to `compoundai-train`.

    >>> track_training("out/banking77-sft/adapter", config=config.model_dump())  # doctest: +SKIP
    """
    folder = Path(adapter_dir)
    if not (folder / "manifest.json").is_file():
        raise UserInputError(f"{folder} holds no adapter manifest.json to track")
    from compoundai_adapters.artifacts import read_manifest

    manifest = read_manifest(folder)
    name = run_name or f"{manifest.stage} {folder.parent.name}"
    log = _Logger(uri, experiment or "compoundai-train", name, "training")

    def write(log: _Logger) -> None:
        _log_training_curve(log, "", folder)
        log.param("precision", manifest.precision)
        log.param_dict(
            {
                **_scalars(manifest.lora or {}, "lora."),
                **_scalars(manifest.data, "data."),
                **{key: getattr(manifest, key) for key in ("examples", "pairs", "documents")},
                **_scalars(config or manifest.config),
            }
        )
        log.flush()
        if artifacts:
            log.folder(folder, "adapter")

    return log.finish(write)


# -- the CLI side: options, and what a command does with them ---------------------------------


@dataclass(frozen=True)
class Tracking:
    """What `--track` and `--tracking-uri` asked for; every method is a no-op when off.

    >>> Tracking().report(report, "out")  is None   # not asked to track  # doctest: +SKIP
    True
    """

    backend: str | None = None
    uri: str | None = None
    announce: bool = True  # say on stderr where the run landed

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Tracking:
        """Take `track` and `tracking_uri` out of a command's keyword arguments (so the rest can
        be passed on as they are) and check MLflow is there before any work starts."""
        tracking = cls(options.pop("track", None), options.pop("tracking_uri", None))
        tracking.check()
        return tracking

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    def check(self) -> None:
        if self.backend is None:
            if self.uri is not None:
                raise UserInputError(
                    "--tracking-uri is given without --track", hint="add --track mlflow"
                )
            return
        if self.backend not in BACKENDS:
            raise UserInputError(f"unknown tracking backend {self.backend!r}; known: mlflow")
        _mlflow()

    def report(self, report: Report, out_dir: str | Path, **kwargs: Any) -> TrackedRun | None:
        return self._track(track_report, report, out_dir, **kwargs)

    def decision(self, decision: Any, *, task: str, **kwargs: Any) -> TrackedRun | None:
        return self._track(track_decision, decision, task=task, **kwargs)

    def training(self, adapter_dir: str | Path, **kwargs: Any) -> TrackedRun | None:
        return self._track(track_training, adapter_dir, **kwargs)

    def _track(self, log: Callable[..., TrackedRun], *args: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return None
        tracked = log(*args, uri=self.uri, **kwargs)
        if self.announce:
            print(f"tracked: {tracked}", file=sys.stderr)
        return tracked


def tracking_options(fn: F) -> F:
    """Add `--track [mlflow]` and `--tracking-uri URI` to a click command.

    The command receives `track` and `tracking_uri`; `Tracking.from_options(kwargs)` (or
    `Tracking(track, tracking_uri)`) turns them into what to do.

    >>> @click.command()
    ... @tracking_options
    ... def run(track, tracking_uri): ...   # doctest: +SKIP
    """
    import click

    fn = click.option(
        "--tracking-uri",
        metavar="URI",
        default=None,
        help="MLflow tracking URI [default: MLflow's own: $MLFLOW_TRACKING_URI, else a local "
        "store in the working directory].",
    )(fn)
    return click.option(
        "--track",
        type=click.Choice(BACKENDS),
        default=None,
        help="Log parameters, metrics and artifacts to an experiment tracker "
        f"(needs {INSTALL_HINT}).",
    )(fn)
