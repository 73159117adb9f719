"""`compoundai build TASK.yaml -o SYSTEM_DIR [--lane NAME]`: decide, build one lane, save it.

The saved directory is what `compoundai.load_system(SYSTEM_DIR)` reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from compoundai.cli_common import _ctx, _errors_to_exit_codes


@click.command()
@click.argument("task_file", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory to save the system in (replaced if it holds a system already).",
)
@click.option(
    "--lane",
    "--lanes",
    "lane",
    help="Lane or variant to build (prompt, rag, finetune, rag/demos, prompt/5-shot, ...) "
    "[default: the router's first lane]. Several, comma-separated, go to SYSTEM_DIR/<lane>.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary as the last line.")
@click.option(
    "--rules-only",
    is_flag=True,
    help="Without --lane: build the rules' plan instead of measuring the decision on dev.",
)
@click.option(
    "--budget-minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Budget of the measured decision [default: the task's decide.budget_minutes].",
)
@click.option("--strict", is_flag=True, help="Exit 2 on leaked held-out cases.")
@click.pass_obj
@_errors_to_exit_codes
def build(
    obj: dict[str, Any],
    task_file: Path,
    out_dir: Path,
    lane: str | None,
    as_json: bool,
    rules_only: bool,
    budget_minutes: float | None,
    strict: bool,
) -> None:
    """Build the system the decision chooses for TASK_FILE (or --lane) and save it to SYSTEM_DIR.

    Without --lane the decision is measured on dev, as `compoundai decide` measures it.

    Prints a one-line summary and where the system went; load it in Python with
    `compoundai.load_system(SYSTEM_DIR)`. A lane this version cannot build is a user error
    (exit 2) that names the lanes to try instead.
    """
    from compoundai.build import build_system
    from compoundai.task import load_task

    task = load_task(task_file, strict=strict)
    names = [n.strip() for n in lane.split(",") if n.strip()] if lane else [None]
    ctx = _ctx(obj)
    summaries = []
    for name in names:
        target = out_dir if len(names) == 1 else out_dir / str(name).replace("/", "-")
        result = build_system(
            task, target, lane=name, ctx=ctx, rules_only=rules_only, budget_minutes=budget_minutes
        )
        summary = result.summary()
        summaries.append(summary)
        how = f"router plan: {summary['plan']}" if result.routed else "lane given"
        extra = ", adapter" if summary["adapter"] else ""
        click.echo(
            f"built {summary['lane']} ({how}; {summary['output']} output, generator "
            f"{summary['generator']}{extra}) in {summary['build_seconds']:.1f}s"
        )
        click.echo(f"saved to {result.path}")
    if as_json:
        click.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries))
