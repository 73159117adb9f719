"""The `compoundai` command: thin click commands over the library.

Logic lives in the library; this module parses flags, builds a `RunContext`, and turns
errors into exit codes: 0 success, 2 the user's input is wrong (every problem listed),
1 a failure at run time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from compoundai.cli_common import _ctx, _errors_to_exit_codes
from compoundai.context import default_cache_dir

F = TypeVar("F", bound=Callable[..., Any])


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
    "--probe",
    "probe_cases",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Also measure the cheap lanes (prompt, rag) on N dev cases; they can overturn the rules.",
)
@click.option(
    "--good-enough",
    type=click.FloatRange(0, 1),
    default=0.9,
    show_default=True,
    help="With --probe: a cheap lane whose interval's lower end reaches this makes "
    "training unnecessary.",
)
@click.pass_obj
@_errors_to_exit_codes
def decide(
    obj: dict[str, Any],
    task_file: Path,
    as_json: bool,
    probe_cases: int | None,
    good_enough: float,
) -> None:
    """Print the router's decision for TASK_FILE, with the reasons behind it."""
    from compoundai.profile import profile
    from compoundai.router import Router
    from compoundai.task import load_task

    task = load_task(task_file)
    ctx = _ctx(obj)
    decision = Router().decide(profile(task, ctx))
    if probe_cases is not None:
        from compoundai.probe import probe

        decision = probe(task, decision, ctx, cases=probe_cases, good_enough=good_enough)
    if as_json:
        exclude = {"stages"} | ({"probe"} if decision.probe is None else set())
        click.echo(decision.model_dump_json(indent=2, exclude=exclude))
        return
    click.echo(f"plan: {decision.plan}")
    if decision.probe is not None:
        p = decision.probe
        click.echo(f"probe ({p['cases']} dev cases, {p['metric']}): {p['note']}")
        for lane in p["lanes"]:
            if lane["status"] == "ok":
                click.echo(
                    f"  {lane['lane']:<18} {lane['value']:.3f} "
                    f"[{lane['ci_low']:.3f}, {lane['ci_high']:.3f}]"
                )
            else:
                click.echo(f"  {lane['lane']:<18} {lane['status']}: {lane['message']}")
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
            "--limit", type=int, help="Evaluate a label-stratified sample of N held-out cases."
        )(fn)
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
@click.pass_obj
@_errors_to_exit_codes
def run(
    obj: dict[str, Any], task_file: Path, out_dir: Path, lanes: str | None, **options: Any
) -> None:
    """The main job: decide, build and compare every lane on TASK_FILE; write the report."""
    _run_and_print(obj, task_file, out_dir, _lane_list(lanes), **options)


@cli.command()
@_report_options("prompt,rag,finetune,compound", "Comma-separated lanes to compare.")
@click.pass_obj
@_errors_to_exit_codes
def compare(
    obj: dict[str, Any], task_file: Path, out_dir: Path, lanes: str, **options: Any
) -> None:
    """Compare the given lanes on the same held-out cases of TASK_FILE.

    Writes report.json (the source of truth), report.md, report.html (plots, no network
    needed) and predictions.jsonl. Answers are cached in OUT_DIR/cache, so a re-run only
    generates what changed.
    """
    _run_and_print(obj, task_file, out_dir, _lane_list(lanes), **options)


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
) -> None:
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
    )
    click.echo(f"plan: {report.decision['plan']}")
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
    click.echo(f"winner: {report.winner}; report: {out_dir / 'report.html'}")


@cli.command("report")
@click.argument("report_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@_errors_to_exit_codes
def report_cmd(report_dir: Path) -> None:
    """Render report.md and report.html again from REPORT_DIR/report.json."""
    from pydantic import ValidationError

    from compoundai.errors import UserInputError
    from compoundai_evaluators import load_report, write_reports

    try:
        report = load_report(report_dir)
    except (OSError, ValidationError) as exc:
        raise UserInputError(
            f"cannot read {report_dir / 'report.json'}: {exc}".split("\n")[0],
            hint="point at a directory written by `compoundai compare` or `compoundai run`",
        ) from None
    written = write_reports(report, report_dir)
    click.echo(f"{written['md']}\n{written['html']}")


# Command groups that live in their own modules (they share compoundai.cli_common).
from compoundai.cli_build import build  # noqa: E402
from compoundai.cli_index import index  # noqa: E402
from compoundai.cli_serve import serve  # noqa: E402
from compoundai.cli_train import train  # noqa: E402
from compoundai.cli_ui import ui  # noqa: E402

cli.add_command(build)
cli.add_command(index)
cli.add_command(serve)
cli.add_command(train)
cli.add_command(ui)


def main() -> None:
    cli(prog_name="compoundai")
