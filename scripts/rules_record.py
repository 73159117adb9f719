"""The record the rules learn from: measured winners and ties, per task, with their profiles.

    python scripts/rules_record.py out/results [more report dirs...]   # merge reports in
    python scripts/rules_record.py --show                              # print the table

Each `*/report.json` under the given folders (what `compoundai run` or `scripts/reproduce.sh`
wrote, for the bundled examples or any task of yours) becomes one row: the task's profile (the
signals the rules read), the measured winner on the test split, and the lane families whose best
lane is tied with it (the report's own tie rule: within the margin). Rows are merged into
`compoundai/resources/rules_record.json` by task name, so a newer report replaces an older
one. `tests/test_rules_record.py` runs the rules (`compoundai.rules`) on every row's profile
and fails when their top family is neither the winner's nor tied with it: a rule that
contradicts the record is a rule to change.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "compoundai" / "resources" / "rules_record.json"


def row_of(report_dir: Path) -> dict[str, Any]:
    """One record row from a report directory."""
    from compoundai_evaluators import load_report

    report = load_report(report_dir)
    family = {lane.name: lane.family for lane in report.lanes}
    winner = report.winner
    tied = sorted(
        {family[v.lane] for v in (report.verdict.versus_winner if report.verdict else []) if v.tied}
    )
    return {
        "task": report.task,
        "source": f"{report_dir.name}/report.json, {report.created[:10]}",
        "split": report.cases.get("split"),
        "cases": report.cases.get("n"),
        "metric": report.primary_metric,
        "winner": winner,
        "winner_family": family.get(winner or ""),
        "tied_families": [f for f in tied if f != family.get(winner or "")],
        "profile": report.profile,
    }


def load_record() -> list[dict[str, Any]]:
    if not RECORD.is_file():
        return []
    return list(json.loads(RECORD.read_text(encoding="utf-8"))["rows"])


def save_record(rows: list[dict[str, Any]]) -> None:
    data = {
        "about": "measured test winners and ties of real runs; see scripts/rules_record.py",
        "rows": sorted(rows, key=lambda r: r["task"]),
    }
    RECORD.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| task | output | labels | train | documents | pairs | winner | tied families |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = r["profile"]
        lines.append(
            f"| {r['task']} | {p.get('output_type')} | {p.get('n_labels')} | "
            f"{p.get('n_train')} | {p.get('n_documents')} | {p.get('n_preference_pairs')} | "
            f"{r['winner']} ({r['winner_family']}) | {', '.join(r['tied_families']) or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="*", type=Path, help="folders holding */report.json")
    parser.add_argument("--show", action="store_true", help="print the record as a table")
    args = parser.parse_args()
    rows = {r["task"]: r for r in load_record()}
    for folder in args.dirs:
        for report in sorted(folder.glob("*/report.json")) + sorted(folder.glob("report.json")):
            row = row_of(report.parent)
            rows[row["task"]] = row
            print(f"recorded {row['task']}: {row['winner']} (tied: {row['tied_families']})")
    if args.dirs:
        save_record(list(rows.values()))
    if args.show or not args.dirs:
        print(table(sorted(rows.values(), key=lambda r: r["task"])))


if __name__ == "__main__":
    main()
