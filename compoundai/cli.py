"""The `compoundai` command: thin click commands over the library.

Logic lives in the library; this module parses flags, builds a `RunContext`, and turns
errors into exit codes: 0 success, 2 the user's input is wrong (every problem listed),
1 a failure at run time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from compoundai.cli_common import _ctx, _errors_to_exit_codes
from compoundai.context import default_cache_dir
from compoundai.tracking import Tracking, tracking_options

F = TypeVar("F", bound=Callable[..., Any])
STRICT_HELP = (
    "Exit 2 when held-out inputs also occur in the training split (leakage), instead of "
    "warning with the count."
)


@click.group()
@click.version_option(package_name="compoundai")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Model and data cache [default: $COMPOUNDAI_CACHE or ~/.cache/compoundai].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for every RNG.")
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1, or auto.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.pass_context
def cli(
    click_ctx: click.Context, cache_dir: Path | None, seed: int, device: str, no_progress: bool
) -> None:
    """Decide between prompting, RAG and fine-tuning; build it; prove it with a report."""
    if no_progress:  # transformers and huggingface_hub read this when they are imported
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    click_ctx.obj = {
        "cache_dir": cache_dir or default_cache_dir(),
        "seed": seed,
        "device": device,
        "progress": not no_progress,
    }


@cli.group()
def models() -> None:
    """Materialise and list the offline default models."""


@models.command("pull")
@click.argument("name", required=False)
@click.option("--force", is_flag=True, help="Convert again even if cached.")
@click.pass_obj
@_errors_to_exit_codes
def models_pull(obj: dict[str, Any], name: str | None, force: bool) -> None:
    """Materialise NAME (default: every bundled model) into the cache."""
    from compoundai.models import BUNDLED, ModelStore

    store = ModelStore(_ctx(obj))
    for model in [name] if name else list(BUNDLED):
        cached = store.is_cached(model) and not force
        click.echo(f"{model}: {'already cached' if cached else 'pulling...'}", err=True)
        path = store.pull(model, force=force)
        click.echo(f"{model}\t{path}")


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@_errors_to_exit_codes
def models_list(obj: dict[str, Any], as_json: bool) -> None:
    """Show the cached models, where they are and how big."""
    from compoundai.models import BUNDLED, ModelStore

    store = ModelStore(_ctx(obj))
    cached = {m.name: m for m in store.list()}
    rows = []
    for name in sorted(set(BUNDLED) | set(cached)):
        m = cached.get(name)
        rows.append(
            {
                "name": name,
                "cached": m is not None,
                "path": str(m.path if m else store.path_of(name)),
                "size_mb": round(m.size_bytes / 1e6, 1) if m else None,
                "kind": m.kind if m else BUNDLED[name].kind,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"cache: {store.root}")
    for r in rows:
        state = f"{r['size_mb']} MB" if r["cached"] else "not pulled (compoundai models pull)"
        click.echo(f"  {r['name']:<24} {r['kind']:<10} {state:<12} {r['path']}")


@cli.command()
@click.argument("task_file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.option(
    "--rules-only",
    is_flag=True,
    help="Decide from the rules alone, instantly, without measuring anything.",
)
@click.option(
    "--budget-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Wall-clock budget of the measured decision [default: the task's decide.budget_minutes].",
)
@click.option(
    "--lanes", default=None, help="Comma-separated lanes to decide among [default: every lane]."
)
@click.option("--strict", is_flag=True, help="Fail on leaked held-out cases (see run --help).")
@tracking_options
@click.pass_obj
@_errors_to_exit_codes
def decide(
    obj: dict[str, Any],
    task_file: Path,
    as_json: bool,
    rules_only: bool,
    budget_minutes: float | None,
    lanes: str | None,
    strict: bool,
    track: str | None,
    tracking_uri: str | None,
) -> None:
    """Decide for TASK_FILE by measuring the lanes on its dev split (a budgeted bake-off).

    Cheap lanes are screened on a small dev sample, training lanes are trained on growing
    shares of their data while they can still reach the leader, and the plan is the cheapest
    lane tied with the best. Every measurement is printed (and kept in --json's `evidence`).
    """
    from compoundai.run import decide as make_decision
    from compoundai.task import load_task

    tracking = Tracking(track, tracking_uri)
    tracking.check()
    task = load_task(task_file, strict=strict)
    ctx = _ctx(obj)
    decision = make_decision(
        task,
        ctx,
        mode="rules" if rules_only else "measured",
        lanes=_lane_list(lanes),
        budget_minutes=budget_minutes,
    )
    tracking.decision(decision, task=task.spec.name)
    if as_json:
        click.echo(decision.model_dump_json(indent=2, exclude={"stages"}))
        return
    print_decision(decision)


def print_decision(decision: Any) -> None:
    """The decision as text: plan, evidence (measured mode), ranking and reasons."""
    click.echo(f"plan: {decision.plan} (lane {decision.lane}; {decision.mode})")
    if decision.mode == "measured":
        click.echo(
            f"measured on {decision.split} ({decision.metric}) in {decision.seconds:.0f} s; "
            f"the rules alone: {decision.rule_plan}"
        )
        for e in decision.evidence:
            if e.value is None:
                click.echo(f"  [{e.stage}] {e.lane}: {e.note}")
                continue
            share = f" {e.data_share:.0%} data" if e.data_share is not None else ""
            click.echo(
                f"  [{e.stage}] {e.lane:<22} {e.value:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}] "
                f"on {e.cases}{share}, {e.seconds:.0f} s{f' ({e.note})' if e.note else ''}"
            )
    click.echo("ranked: " + ", ".join(f"{r.lane} ({r.score:g})" for r in decision.ranked))
    click.echo("reasons:")
    for r in decision.reasons:
        click.echo(f"  - [{r.lane}] {r.signal}={r.value}: {r.text}")


def _lane_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _report_options(default_lanes: str | None, lanes_help: str) -> Callable[[F], F]:
    """The options `run` and `compare` share."""

    def decorate(fn: F) -> F:
        fn = click.option(
            "--max-forgetting",
            type=float,
            default=0.10,
            show_default=True,
            help="Release gate: the most general-text perplexity may rise (0.10 = 10%).",
        )(fn)
        fn = click.option(
            "--general-text",
            type=click.Path(path_type=Path, exists=True, dir_okay=False),
            help="Text file for general-text perplexity of local lanes (forgetting).",
        )(fn)
        fn = click.option(
            "--judge-base-url", help="OpenAI-compatible endpoint of the judge [default: OpenAI]."
        )(fn)
        fn = click.option(
            "--judge-model", help="Grade answers with this LLM judge too (off by default)."
        )(fn)
        fn = click.option(
            "--prices",
            type=click.Path(path_type=Path, exists=True, dir_okay=False),
            help="Price table (YAML/JSON) for the $ estimates [default: local compute $0.10/h].",
        )(fn)
        fn = click.option(
            "--no-cache", is_flag=True, help="Regenerate every answer (ignore OUT_DIR/cache)."
        )(fn)
        fn = click.option(
            "--limit",
            type=int,
            help="Evaluate a label-stratified sample of N held-out cases (and N preference pairs).",
        )(fn)
        fn = click.option(
            "--budget-minutes",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="Budget of the measured decision on dev [default: the task's].",
        )(fn)
        fn = click.option("--strict", is_flag=True, help=STRICT_HELP)(fn)
        fn = click.option(
            "--lanes",
            default=default_lanes,
            show_default=default_lanes is not None,
            help=lanes_help,
        )(fn)
        fn = click.option(
            "-o",
            "--out",
            "out_dir",
            type=click.Path(path_type=Path),
            required=True,
            help="Directory for report.json, report.md, report.html and predictions.jsonl.",
        )(fn)
        return click.argument("task_file", type=click.Path(path_type=Path))(fn)

    return decorate


@cli.command()
@_report_options(None, "Comma-separated lanes [default: every lane].")
@click.option(
    "--full", is_flag=True, help="Train every lane in full (with the settings chosen on dev)."
)
@click.option(
    "--rules-only", is_flag=True, help="Decide by the rules alone and build every lane as is."
)
@tracking_options
@click.pass_obj
@_errors_to_exit_codes
def run(
    obj: dict[str, Any],
    task_file: Path,
    out_dir: Path,
    lanes: str | None,
    full: bool,
    rules_only: bool,
    **options: Any,
) -> None:
    """The main job: decide by measuring on dev, build the plan, compare on test, report.

    The report compares the plan's lane (built in full), every cheap lane, and every other
    training lane at the share of its data the decision stopped it at (`finetune/sft@25%`).
    """
    mode = "rules" if rules_only else "full" if full else "measured"
    tracking = Tracking.from_options(options)  # checks MLflow is there before any work
    report = _run_and_print(obj, task_file, out_dir, _lane_list(lanes), mode=mode, **options)
    tracking.report(report, out_dir, params={"mode": mode})


@cli.command()
@_report_options("prompt,rag,finetune,compound", "Comma-separated lanes to compare.")
@tracking_options
@click.pass_obj
@_errors_to_exit_codes
def compare(
    obj: dict[str, Any], task_file: Path, out_dir: Path, lanes: str, **options: Any
) -> None:
    """Compare the given lanes on the same held-out cases of TASK_FILE.

    Lanes that train are trained in full, with the settings (learning rate, optimizer steps)
    a measured decision chose on the dev split. Writes report.json (the source of truth),
    report.md, report.html (plots, no network needed) and predictions.jsonl. Answers are
    cached in OUT_DIR/cache, so a re-run only generates what changed.
    """
    tracking = Tracking.from_options(options)
    report = _run_and_print(obj, task_file, out_dir, _lane_list(lanes), mode="full", **options)
    tracking.report(report, out_dir, params={"mode": "full"})


def _run_and_print(
    obj: dict[str, Any],
    task_file: Path,
    out_dir: Path,
    lanes: list[str] | None,
    *,
    limit: int | None,
    no_cache: bool,
    prices: Path | None,
    judge_model: str | None,
    judge_base_url: str | None,
    general_text: Path | None,
    max_forgetting: float,
    budget_minutes: float | None,
    strict: bool,
    mode: str,
) -> Any:
    from compoundai.run import run_task

    judge = None
    if judge_model:
        from compoundai_evaluators import LLMJudge

        judge = LLMJudge(judge_model, base_url=judge_base_url)
    report = run_task(
        task_file,
        out_dir,
        lanes=lanes,
        limit=limit,
        ctx=_ctx(obj),
        cache=not no_cache,
        prices=prices,
        judge=judge,
        general_text=general_text,
        max_forgetting=max_forgetting,
        mode=mode,
        budget_minutes=budget_minutes,
        strict=strict,
    )
    d = report.decision
    click.echo(f"plan: {d['plan']} (lane {d.get('lane')}; decided by {d.get('mode', 'rules')})")
    for lane in report.lanes:
        if lane.status != "ok":
            click.echo(f"  {lane.name:<18} {lane.status}: {lane.message}")
            continue
        m = lane.metrics.get(report.primary_metric)
        score = f"{m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]" if m else "n/a"
        p50 = f"  p50 {lane.latency_ms.p50:.0f} ms" if lane.latency_ms else ""
        click.echo(f"  {lane.name:<18} {report.primary_metric} {score}{p50}")
    if report.verdict and report.verdict.tied_with_winner:
        click.echo(
            f"  tied with the winner: {', '.join(report.verdict.tied_with_winner)} "
            f"(cheapest: {report.verdict.cheapest_equivalent})"
        )
    check = report.decision_check
    if check is not None:
        click.echo(f"decision check on {report.cases.get('split')}: {check.outcome} ({check.note})")
    click.echo(f"winner: {report.winner}; report: {out_dir / 'report.html'}")
    return report


@cli.command("report")
@click.argument("report_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option(
    "--rejudge",
    is_flag=True,
    help="Also recompute the verdict and the decision check from the saved measurements with "
    "this version's rules (nothing is run again), and save them in report.json.",
)
@_errors_to_exit_codes
def report_cmd(report_dir: Path, rejudge: bool) -> None:
    """Render report.md and report.html again from REPORT_DIR/report.json."""
    from pydantic import ValidationError

    from compoundai.errors import UserInputError
    from compoundai_evaluators import load_report, write_reports
    from compoundai_evaluators.publish import rejudge_report

    try:
        report = load_report(report_dir)
    except (OSError, ValidationError) as exc:
        raise UserInputError(
            f"cannot read {report_dir / 'report.json'}: {exc}".split("\n")[0],
            hint="point at a directory written by `compoundai compare` or `compoundai run`",
        ) from None
    if rejudge:
        before = report.decision_check.outcome if report.decision_check else None
        report = rejudge_report(report)
        after = report.decision_check.outcome if report.decision_check else None
        click.echo(
            f"rejudged: winner {report.winner}; decision check {before} -> {after}", err=True
        )
    written = write_reports(report, report_dir)
    click.echo(f"{written['md']}\n{written['html']}")


# Command groups that live in their own modules (they share compoundai.cli_common).
from compoundai.cli_build import build  # noqa: E402
from compoundai.cli_index import index  # noqa: E402
from compoundai.cli_serve import serve  # noqa: E402
from compoundai.cli_synth import synth  # noqa: E402
from compoundai.cli_train import train  # noqa: E402
from compoundai.cli_ui import ui  # noqa: E402

cli.add_command(build)
cli.add_command(index)
cli.add_command(serve)
cli.add_command(synth)
cli.add_command(train)
cli.add_command(ui)


def main() -> None:
    cli(prog_name="compoundai")
