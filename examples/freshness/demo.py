"""Freshness, shown: the office moves after the systems are built.

Builds three systems for the handbook task (`office.yaml`): `rag` (passages retrieved from the
index), `compound` (the same retrieval, with an adapter trained RAFT-style to answer from the
passages) and `finetune/sft` (an adapter trained on the handbook's QA pairs, no retrieval).
Each is asked where the team works. Then `docs/office.md` changes (Paris -> Lyon), the two
retrieving systems take the new file with `update_documents` (the changed chunk is replaced,
nothing is retrained), and the question is asked again: the index answers with the new fact,
the weights with the old one.

    python examples/freshness/demo.py [--workdir DIR]

It works on a copy of the example (in DIR, default a temporary folder), so the example's own
files never change. The last stdout line is the answers as JSON. Real models: SmolLM2-135M and
MiniLM from the model cache; about 3-5 minutes on a 2-core CPU, most of it training.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUESTION = "Where does the Zorbia team work?"


def run(workdir: Path, progress: bool = True) -> dict[str, dict[str, str]]:
    from compoundai.context import RunContext
    from compoundai.lanes import CompoundLane, FinetuneLane, RagLane
    from compoundai.profile import profile
    from compoundai.router import Router
    from compoundai.task import load_task

    shutil.copytree(HERE, workdir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.py"))
    task = load_task(workdir / "office.yaml")
    decision = Router().decide(profile(task))
    print(f"plan for knowledge that changes daily: {decision.plan} ({decision.lane})")
    ctx = RunContext(progress=progress)
    systems = {
        "rag": RagLane("context").build(task, ctx),
        "compound": CompoundLane().build(task, ctx),
        "finetune/sft": FinetuneLane().build(task, ctx),
    }
    before = {name: s.invoke(QUESTION).text for name, s in systems.items()}

    office = workdir / "docs" / "office.md"
    office.write_text(office.read_text(encoding="utf-8").replace("Paris", "Lyon"))
    updates = {}
    for name in ("rag", "compound"):
        report = systems[name].update_documents([workdir / "docs"])
        updates[name] = report.contract()
    after = {name: s.invoke(QUESTION).text for name, s in systems.items()}

    print(f"\n{QUESTION}")
    print(f"{'system':<14} {'before the move':<28} after the move (office.md now says Lyon)")
    for name in systems:
        print(f"{name:<14} {before[name]!r:<28} {after[name]!r}")
    print(f"index updates: {updates}")
    return {"plan": {"lane": decision.lane or ""}, "before": before, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, help="Where to copy the example [default: tmp].")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    args = parser.parse_args()
    if args.workdir:
        result = run(args.workdir, progress=not args.no_progress)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(Path(tmp) / "freshness", progress=not args.no_progress)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
