"""`prompt/stuffed`: all documents in the prompt when they fit; refused with the size when not."""

from __future__ import annotations

import json
from pathlib import Path

from compoundai.lanes import lanes_for
from compoundai.lanes.stuffed import StuffedLane, StuffedSystem
from compoundai.run import run_task
from compoundai.system_dir import load_system, save_system
from compoundai.task import load_task
from compoundai.testing import FakeGenerator

FAQ = {
    "shipping.md": "# Shipping\n\nOrders ship within two business days. Express delivery costs "
    "nine euros.\n\nWe ship to every country of the European Union.",
    "returns.md": "# Returns\n\nYou may return an item within thirty days. Refunds reach your "
    "card in five days.",
    "accounts.md": "# Accounts\n\nTo reset your password, open Settings and choose Security.",
}
QUESTIONS = [
    {"id": "q1", "question": "How long do I have to return an item?", "answer": ["thirty days"]},
    {"id": "q2", "question": "How much is express delivery?", "answer": ["nine euros"]},
    {"id": "q3", "question": "Do you sell gift cards?", "answer": []},
]


def faq_task(tmp_path: Path):
    docs = tmp_path / "faq"
    docs.mkdir()
    for name, text in FAQ.items():
        (docs / name).write_text(text, encoding="utf-8")
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    (tmp_path / "task.yaml").write_text(
        "name: shop-faq\ninstructions: Answer from the FAQ.\n"
        "documents: [faq/*.md]\n"
        "examples: {input_field: question, output_field: answer, id_field: id, test: q.jsonl}\n"
        "models: {embedder: 'hash:64'}\n"
    )
    return load_task(tmp_path / "task.yaml")


def faq_reader(chat: list[dict[str, str]]) -> str:
    """Answers what the stuffed context holds, citing the passage number, else abstains."""
    system, question = chat[0]["content"], chat[-1]["content"]
    for line in system.splitlines():
        if "thirty days" in line and "return" in question:
            return f"thirty days {line.split(']')[0]}]"
        if "nine euros" in line and "express" in question:
            return f"nine euros {line.split(']')[0]}]"
    return "I don't know."


def test_stuffed_puts_every_document_in_the_prompt_and_cites(tmp_path, fake_ctx):
    task = faq_task(tmp_path)
    assert "prompt/stuffed" in [lane.name for lane in lanes_for(["prompt"], task)]
    fake_ctx.clients["generator"] = FakeGenerator(faq_reader)
    system = StuffedLane().build(task, fake_ctx)
    assert isinstance(system, StuffedSystem) and len(system.passages) >= 3
    prompt = system.prompts(["How much is express delivery?"])[0]
    assert all(text.split("\n\n")[-1][:20] in prompt[0]["content"] for text in FAQ.values())
    answers = system.batch([q["question"] for q in QUESTIONS])
    assert [a.output for a in answers] == ["thirty days", "nine euros", ""]
    assert answers[0].extra["citations"][0].startswith("returns.md#")
    assert answers[2].extra["abstained"] is True
    again = load_system(save_system(system, tmp_path / "sys"), fake_ctx)
    assert [a.output for a in again.batch(["How much is express delivery?"])] == ["nine euros"]


def test_stuffed_scores_where_zero_shot_cannot(tmp_path, fake_ctx):
    task = faq_task(tmp_path)
    fake_ctx.clients["generator"] = FakeGenerator(faq_reader)
    report = run_task(task, tmp_path / "out", lanes=["prompt"], ctx=fake_ctx, mode="rules")
    f1 = {lane.name: lane.metrics["f1"].value for lane in report.lanes if lane.status == "ok"}
    assert f1["prompt/stuffed"] == 1.0 and f1["prompt/zero-shot"] < 0.5


def test_documents_that_do_not_fit_are_refused_with_their_size(fake_ctx):
    squad = load_task(Path(__file__).resolve().parent.parent / "examples/squad_docs_qa/task.yaml")
    fake_ctx.clients["generator"] = FakeGenerator(default="x")
    try:
        StuffedLane().build(squad, fake_ctx)
    except Exception as exc:  # LaneNotBuiltError, a user error
        assert "do not fit" in str(exc) and "8192-token window" in str(exc)
    else:
        raise AssertionError("the squad corpus cannot fit in the window")
