"""Build the results page (one table: task x lane) from the reports `reproduce.sh` wrote.

    python scripts/results_page.py out/results -o docs/results.md

Each `REPORTS_DIR/<example>/report.json` becomes rows of one table: task, lane, the task's
primary metric with its 95% paired-bootstrap interval, training and inference time, $ per 1k
cases, p50/p95 latency, and the forgetting check for lanes that train. Then, per task, the
router's plan next to the measured winner and the lanes clearly below a non-LLM baseline; then
the field's claims (`CLAIMS`), each judged from the reports' paired differences. Each report's
HTML is copied next to the page (`results/<example>.html`). Nothing is typed by hand: rerun
this after the reports change.
"""

from __future__ import annotations

import argparse
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from compoundai_evaluators import load_report
from compoundai_evaluators.report import (
    DecisionCheck,
    Difference,
    LaneResult,
    Report,
    find_difference,
    p_value,
    signed_interval,
)
from compoundai_evaluators.stats import holm


@dataclass(frozen=True)
class Claim:
    """`a` beats `b` on `metric` in `example`. A lane name, or `family:NAME` for the best
    scored lane of that family (non-LLM baselines left out)."""

    claim: str
    example: str
    metric: str
    a: str
    b: str
    note: str = ""


EXAMPLES = ["squad_docs_qa", "banking77", "snips_json", "hh_preferences"]
CLAIMS = [
    Claim("RAG beats fine-tuning for facts (Ovadia et al. 2023)", "squad_docs_qa", "f1",
          "family:rag", "finetune/sft",
          "the SFT rows are SQuAD questions about other articles: they teach the answer style, "
          "not these facts"),
    Claim("RAG beats fine-tuning for facts: against continued pretraining on the documents",
          "squad_docs_qa", "f1", "family:rag", "finetune/pretrain+sft",
          "Ovadia et al.'s setting: the documents' text trained into the weights (LoRA, "
          "3 epochs), then the same SFT"),
    Claim("QA pairs about the documents teach their facts better than the raw text "
          "(Jiang et al. 2024)", "squad_docs_qa", "f1", "finetune/qa+sft", "finetune/pretrain+sft",
          "the same LoRA stage on QA pairs the generator synthesised from the documents (kept "
          "when the chunk holds the answer and retrieves for the question) instead of their text; "
          "counts in the task's section"),
    Claim("Fine-tuning beats prompting for format: schema adherence", "snips_json",
          "schema_adherence", "finetune/sft", "family:prompt"),
    Claim("Fine-tuning beats prompting for format: slot F1", "snips_json", "slot_f1",
          "finetune/sft", "family:prompt"),
    Claim("Fine-tuning beats prompting for label discipline", "banking77", "accuracy",
          "finetune/sft", "family:prompt"),
    Claim("RAFT (retrieval-aware fine-tuning) beats RAG on domain QA (Zhang et al. 2024)",
          "squad_docs_qa", "f1", "compound", "family:rag",
          "RAFT here trains on 100 questions about other articles, with retrieved passages"),
    Claim("RAFT beats fine-tuning on domain QA", "squad_docs_qa", "f1", "compound",
          "finetune/sft"),
    Claim("DPO on top of SFT raises preference accuracy", "hh_preferences",
          "preference_accuracy", "finetune/sft+dpo", "finetune/sft",
          "200 pairs, 20 LoRA steps at lr 5e-4. DPO moves each answer's log-likelihood by a "
          "few nats, but chosen-minus-rejected margins on held-out hh pairs run to tens or "
          "hundreds of nats, mostly answer length: see `scripts/tune_dpo_hh.py`"),
    Claim("GRPO with a verifiable reward on top of SFT improves the JSON (DeepSeek-R1's recipe "
          "for checkable answers): schema adherence", "snips_json_grpo", "schema_adherence",
          "finetune/sft+grpo", "finetune/sft",
          "20 GRPO steps of 2 requests x 4 sampled answers, rewarded by schema adherence and "
          "slot F1 against the gold JSON; both lanes at the task's own settings"),
    Claim("GRPO with a verifiable reward on top of SFT improves the JSON: slot F1",
          "snips_json_grpo", "slot_f1", "finetune/sft+grpo", "finetune/sft"),
]  # fmt: skip


def fmt_metric(m: object) -> str:
    if m is None:
        return "n/a"
    return f"{m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]"


def ok_lanes(report: Report) -> list[LaneResult]:
    return [lane for lane in report.lanes if lane.status == "ok"]


def resolve(report: Report, name: str, metric: str) -> LaneResult | None:
    """A lane by name, or the best scored LLM lane of a family (`family:NAME`)."""
    scored = [lane for lane in ok_lanes(report) if metric in lane.metrics]
    if name.startswith("family:"):
        family = name.split(":", 1)[1]
        pool = [r for r in scored if r.family == family and r.generator != "none"]
        return max(pool, key=lambda r: r.metrics[metric].value, default=None)
    exact = next((r for r in scored if r.name == name), None)
    if exact is not None:
        return exact
    # a measured run names a training lane by the data share it was built at (`@12%`)
    rungs = [r for r in scored if r.name.split("@", 1)[0] == name]
    return max(rungs, key=lambda r: r.data_share, default=None)


def claim_difference(claim: Claim, reports: dict[str, Report]) -> tuple[Difference | None, str]:
    """The paired difference a claim rests on, or None and why it is missing."""
    report = reports.get(claim.example)
    if report is None:
        return None, "not measured: no report for this task"
    a, b = resolve(report, claim.a, claim.metric), resolve(report, claim.b, claim.metric)
    if a is None or b is None:
        missing = claim.a if a is None else claim.b
        return None, f"not measured: no scored `{missing}` lane"
    d = find_difference(report.comparisons, a.name, b.name, claim.metric)
    if d is None:
        return None, f"not measured: no paired difference of {a.name} and {b.name}"
    return d, ""


def judge_claims(claims: list[Claim], reports: dict[str, Report]) -> list[list[str]]:
    """One row per claim. The claims are one family: their p-values are Holm-adjusted
    together, and a claim holds (or is reversed) only when its interval excludes zero and its
    adjusted p-value is under 0.05."""
    found = [claim_difference(c, reports) for c in claims]
    p_values = [p_value(d) if d is not None else float("nan") for d, _ in found]
    adjusted = holm(p_values)
    rows = []
    for claim, (d, why), p_adj in zip(claims, found, adjusted, strict=True):
        text = f"{claim.claim} ({claim.note})" if claim.note else claim.claim
        cells = [text, f"`{claim.example}`", f"`{claim.metric}`"]
        if d is None:
            rows.append([*cells, "-", "-", why])
            continue
        shown = f"{d.a} - {d.b}: {d.signed()}, n {d.compared}"
        if d.ci_low > 0 and p_adj < 0.05:
            verdict = "**holds**"
        elif d.ci_high < 0 and p_adj < 0.05:
            verdict = f"**reversed**: {d.b} is clearly better"
        elif d.ci_low > 0 or d.ci_high < 0:
            verdict = "not shown after Holm's correction (the unadjusted interval excludes zero)"
        else:
            verdict = "not shown: the interval contains zero"
        if "@" in d.a or "@" in d.b:
            verdict += (
                " (an `@N%` lane was trained on that share of its data only: a rung the "
                "decision stopped at, not the lane in full)"
            )
        rows.append([*cells, shown, f"{p_adj:.3g}", verdict])
    return rows


def table_rows(name: str, report: Report) -> list[str]:
    metric = report.primary_metric
    rows = []
    for lane in report.lanes:
        if lane.status != "ok":
            rows.append(f"| {name} | {lane.name} | {lane.status}: {lane.message} | | | | | |")
            continue
        cost, lat, f = lane.cost, lane.latency_ms, lane.forgetting
        forgetting = f"x{f.ratio:.3f}" if f else ""
        baseline = " (non-LLM)" if lane.generator == "none" else ""
        latency = f"{lat.p50:.0f} / {lat.p95:.0f}" if lat else "n/a"
        rows.append(
            f"| {name} | {lane.name}{baseline} | `{metric}` {fmt_metric(lane.metrics.get(metric))} "
            f"| {cost.get('train_seconds', 0):.0f} | {cost.get('inference_seconds', 0):.0f} "
            f"| {cost.get('usd_per_1k_cases', 0):.4f} | {latency} | {forgetting} |"
        )
    return rows


def router_line(decision: dict, winner: str | None, check: DecisionCheck | None) -> str:
    """The decision check as a bullet: plan, its lane, the winner, outcome and regret."""
    head = f"- **Router**: plan `{decision['plan']}`"
    if check is None:
        return f"{head}; measured winner `{winner}` (no decision check in this report)."
    c = check
    words = {
        "matched": "**matched** (the plan's lane is the winner)",
        "tied": f"**tied** with the winner (within {c.margin:g})",
        "wrong": "**wrong**",
        None: "could not be checked",
    }[c.outcome]
    line = f"{head}, built as `{c.chosen_lane}`; measured winner `{winner}`: {words}."
    if c.regret is not None and c.outcome != "matched":
        r = c.regret
        line += (
            f" Regret {signed_interval(r.value, r.ci_low, r.ci_high)} {c.metric} over {c.n} cases."
        )
        if "breaks the task's constraints" in c.note:
            line += f" Why: {c.note}."
    elif c.outcome is None:
        line += f" {c.note}."
    return line


def task_notes(name: str, report: Report, folder: Path) -> list[str]:
    cases = report.cases
    decision = report.decision
    check = report.decision_check or (report.verdict.decision_check if report.verdict else None)
    wall = folder / "wall_seconds"
    took = ""
    if wall.is_file():
        minutes = int(wall.read_text()) / 60
        ok = ok_lanes(report)
        fresh = [lane.name for lane in ok if lane.cached < lane.n_cases]
        cached = [lane.name for lane in ok if lane.cached >= lane.n_cases]
        # an adapter taken from the cache builds in seconds; training takes minutes
        reused = [
            lane.name
            for lane in ok
            if float(lane.cost.get("train_seconds") or 0)
            > 4 * float(lane.cost.get("build_seconds") or 0)
        ]
        if ok and not fresh:
            took = (
                f" The last run took {minutes:.1f} min, reusing every answer and adapter of "
                "an earlier run of the same command (the answer and adapter caches)."
            )
        elif cached or reused:
            parts = [f"answered {', '.join(fresh)} afresh"]
            if cached:
                parts.append(f"took the answers of {', '.join(cached)} from the cache")
            if reused:
                parts.append(f"reused the adapters of {', '.join(reused)}")
            took = (
                f" The last run took {minutes:.1f} min: it {'; '.join(parts)} (caches of "
                "earlier runs of the same command; the table's train and inference seconds are "
                "each lane's own measured costs)."
            )
        else:
            took = f" The run took {minutes:.1f} min, training included."
    commit = folder / "commit"
    if commit.is_file():
        took += f" Run {report.created[:10]} at commit `{commit.read_text().strip()}`."
    note = folder / "note"  # what the person who ran it saw and the numbers do not say
    if note.is_file():
        took += " " + " ".join(note.read_text(encoding="utf-8").split())
    lines = [
        f"### {report.task} (`examples/{name}`)",
        "",
        f"{cases.get('sampling', '')} of the `{cases.get('split', 'test')}` split; primary "
        f"metric `{report.primary_metric}`. Full report: "
        f"[results/{name}.html](results/{name}.html).{took}",
        "",
        router_line(decision, report.winner, check),
    ]
    v = report.verdict
    if v is not None and v.tied_with_winner:
        lines.append(
            f"- Statistically tied with the winner: {', '.join(v.tied_with_winner)}; the "
            f"cheapest of these is `{v.cheapest_equivalent}`."
        )
    if v is not None and v.baselines:
        base = ", ".join(f"`{b}`" for b in v.baselines)
        if v.below_baseline:
            lines.append(f"- Clearly **below the non-LLM baseline** {base}:")
            lines += [f"  - {lane}: {why}" for lane, why in v.below_baseline.items()]
        else:
            lines.append(f"- No lane is clearly below the non-LLM baseline {base}.")
    for lane in report.lanes:
        synth = (lane.info or {}).get("synth") if lane.status == "ok" else None
        if synth:
            lines.append(
                f"- {lane.name} trained on {synth.get('kept', 0)} of {synth.get('generated', 0)} "
                f"QA pairs the generator wrote about the {synth.get('chunks', 0)} chunks "
                f"(acceptance {synth.get('acceptance_rate', 0):.1%}; rejected: "
                f"{synth.get('unsupported', 0)} answers not in their chunk, "
                f"{synth.get('not_retrieved', 0)} questions not retrieving it, "
                f"{synth.get('duplicates', 0)} duplicates, {synth.get('unparsable', 0)} "
                f"unparsable), written in {synth.get('seconds', 0):.0f} s."
            )
    if v is not None:
        for gate in v.release:
            lines.append(
                f"- Release gate, {gate.lane}: {'ships' if gate.ships else 'does not ship'} "
                f"({'; '.join(gate.reasons)})"
            )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/results.md"))
    args = parser.parse_args()
    found = sorted(p.parent for p in args.reports.glob("*/report.json"))
    if not found:
        raise SystemExit(f"no */report.json under {args.reports}")
    html_dir = args.out.parent / "results"
    html_dir.mkdir(parents=True, exist_ok=True)
    reports = {folder.name: load_report(folder) for folder in found}
    first = next(iter(reports.values()))
    versions = ", ".join(f"{k} {v}" for k, v in first.versions.items())
    lines = [
        "# Results",
        "",
        "Generated by `scripts/results_page.py` from the reports `scripts/reproduce.sh` wrote "
        "(do not edit by hand). Every lane of each task is scored on the same held-out cases of "
        "its **test** split, sampled with a fixed seed (stratified by label where there are "
        "labels); intervals are 95% paired-bootstrap intervals. Models: SmolLM2-135M-Instruct "
        "(generator, LoRA adapters) and all-MiniLM-L6-v2 (embedder), on "
        f"{platform.machine()} CPU; {versions}. Each task's section says when its run was "
        "made (examples may run in separate sittings: `scripts/reproduce.sh EXAMPLE`).",
        "",
        "Cost columns: train s is the adapter's training time (0 when the lane trains nothing); "
        "inference s the summed per-case latency; $ / 1k cases the estimate from the price "
        "table in each report. Forgetting: general-text perplexity after / before training "
        "(the release gate allows x1.10).",
        "",
        "| task | lane | main metric [95% CI] | train s | inference s | $ / 1k cases "
        "| p50 / p95 ms | forgetting |",
        "|---|---|---|---|---|---|---|---|",
    ]
    missing = [ex for ex in EXAMPLES if ex not in reports]
    if missing:
        lines[4:4] = [
            f"Not in this page yet: {', '.join(missing)} (no recorded run yet; "
            f"`scripts/reproduce.sh {' '.join(missing)}` adds them).",
            "",
        ]
    changes = args.out.parent / "results" / "changes.md"  # hand-written: what moved and why
    for name, report in reports.items():
        lines += table_rows(name, report)
    if changes.is_file():
        lines += ["", *changes.read_text(encoding="utf-8").rstrip().splitlines()]
    lines += ["", "## Per task", ""]
    for folder in found:
        lines += task_notes(folder.name, reports[folder.name], folder)
        # a full run's record keeps report.json only; reproduce.sh copies its HTML
        if (folder / "report.html").is_file():
            shutil.copyfile(folder / "report.html", html_dir / f"{folder.name}.html")
    lines += [
        "## The field's claims, on this stack",
        "",
        "Each claim is the paired difference of two lanes on the same cases; `family:` picks "
        "that family's best LLM lane. The claims are one family of comparisons, so their "
        "p-values are adjusted together (Holm). A claim *holds* when the 95% interval is "
        "above zero and the adjusted p-value is under 0.05, is *reversed* when both say the "
        "other way, and is *not shown* otherwise.",
        "",
        "| claim | task | metric | difference [95% CI], n | p (Holm) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in judge_claims(CLAIMS, reports)]
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
