"""Freshness, shown: a document changes after the system is built, and the index takes the new
text with no retraining (the knowledge cutoff that weights have and an index does not).

Fast ones on fakes (hash embedder, a generator that reads its passages) and the router's rule;
the real models in the slow one (`test_freshness_real.py`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from compoundai.errors import UserInputError
from compoundai.lanes import RagLane
from compoundai.profile import TaskProfile
from compoundai.router import Router, knowledge_in_weights
from compoundai.task import load_task
from compoundai.testing import FakeGenerator
from tests.conftest import BANKING

OFFICE = "# Office\n\nThe Zorbia team works from its office in {city}, next to the station.\n"
OTHERS = {
    "tea.md": "# Tea\n\nGreen tea is made from leaves that are steamed soon after picking.\n",
    "rome.md": "# Rome\n\nThe Colosseum in Rome was finished in 80 AD.\n",
}
QUESTION = "Where does the Zorbia team work?"


def write_task(folder: Path, city: str = "Paris") -> Path:
    docs = folder / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "office.md").write_text(OFFICE.format(city=city), encoding="utf-8")
    for name, text in OTHERS.items():
        (docs / name).write_text(text, encoding="utf-8")
    rows = [{"id": "q1", "question": QUESTION, "answer": city}]
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "task.yaml").write_text(
        "name: office-facts\n"
        "instructions: Answer from the documents.\n"
        "documents: [docs]\n"
        "examples: {input_field: question, output_field: answer, id_field: id, "
        "test: questions.jsonl}\n"
        "constraints: {knowledge_freshness: daily}\n"
        "models: {embedder: 'hash:64'}\n",
        encoding="utf-8",
    )
    return folder / "task.yaml"


def reading_generator() -> FakeGenerator:
    """Answers with the city its passages name (what a model given the passages does)."""

    def answer(chat):
        found = re.search(r"office in (\w+)", chat[-1]["content"])
        return f"{found.group(1)} [1]" if found else "I don't know."

    return FakeGenerator(answer)


def test_an_update_waits_for_whoever_holds_the_index_folder(tmp_path, fake_ctx):
    import threading

    from compoundai.cache_lock import filling

    task = load_task(write_task(tmp_path))
    fake_ctx.clients["generator"] = reading_generator()
    system = RagLane("context").build(task, fake_ctx)
    (tmp_path / "docs" / "office.md").write_text(OFFICE.format(city="Lyon"), encoding="utf-8")
    done = threading.Event()

    def update() -> None:
        system.update_documents([tmp_path / "docs"])
        done.set()

    # another holder of the folder's lock (a build in another process takes the same one)
    with filling(system.store.folder, "a test holding the index"):
        worker = threading.Thread(target=update)
        worker.start()
        assert not done.wait(1.0)  # blocked on the lock, not ingesting
    worker.join(timeout=60)
    assert done.is_set() and system.invoke(QUESTION).output == "Lyon"


def test_a_changed_document_is_answered_at_once_without_rebuilding(tmp_path, fake_ctx):
    task = load_task(write_task(tmp_path))
    fake_ctx.clients["generator"] = reading_generator()
    system = RagLane("context").build(task, fake_ctx)
    assert system.invoke(QUESTION).output == "Paris"
    before = system.store.index.count()
    fingerprint = system.info.fingerprint

    (tmp_path / "docs" / "office.md").write_text(OFFICE.format(city="Lyon"), encoding="utf-8")
    report = system.update_documents([tmp_path / "docs"])
    # the new chunk written, the stale one deleted, the other files not embedded again
    assert (report.replaced, report.added, report.removed, report.embedded) == (1, 0, 1, 1)
    assert system.store.index.count() == before  # replaced, not added beside the old chunk
    assert system.invoke(QUESTION).output == "Lyon"
    texts = " ".join(system.store.index.collection.get()["documents"])
    assert "Lyon" in texts and "Paris" not in texts
    # the answer cache keys on the fingerprint: answers of the old index are not reused
    assert system.info.fingerprint != fingerprint

    # a second update with nothing changed embeds and writes nothing, and keeps the key
    updated = system.info.fingerprint
    again = system.update_documents([tmp_path / "docs"])
    assert (again.added, again.replaced, again.removed, again.embedded) == (0, 0, 0, 0)
    assert system.info.fingerprint == updated


def test_two_systems_sharing_an_index_both_see_the_update(tmp_path, fake_ctx):
    # rag and compound over the same documents share one index folder in the cache
    task = load_task(write_task(tmp_path))
    fake_ctx.clients["generator"] = reading_generator()
    first = RagLane("context").build(task, fake_ctx)
    second = RagLane("context").build(task, fake_ctx)
    assert first.store.folder == second.store.folder
    old = second.info.fingerprint
    (tmp_path / "docs" / "office.md").write_text(OFFICE.format(city="Lyon"), encoding="utf-8")
    assert first.update_documents([tmp_path / "docs"]).replaced == 1
    report = second.update_documents([tmp_path / "docs"])
    assert (report.added, report.replaced, report.removed) == (0, 0, 0)  # the first did it
    # yet its answer-cache key changes with the index it answers from
    assert second.info.fingerprint != old
    assert second.info.fingerprint == first.info.fingerprint
    assert second.invoke(QUESTION).output == "Lyon"


def test_a_removed_document_is_gone_from_the_answers(tmp_path, fake_ctx):
    task = load_task(write_task(tmp_path))
    fake_ctx.clients["generator"] = reading_generator()
    system = RagLane("context").build(task, fake_ctx)
    (tmp_path / "docs" / "office.md").unlink()
    report = system.update_documents([tmp_path / "docs"])
    assert report.removed == 1
    assert system.invoke(QUESTION).output == ""  # abstains: the passage is gone


def test_a_rebuild_of_the_old_documents_does_not_trust_the_updated_index(tmp_path, fake_ctx):
    task = load_task(write_task(tmp_path))
    fake_ctx.clients["generator"] = reading_generator()
    system = RagLane("context").build(task, fake_ctx)
    (tmp_path / "docs" / "office.md").write_text(OFFICE.format(city="Lyon"), encoding="utf-8")
    system.update_documents([tmp_path / "docs"])
    # someone puts the old text back and builds from the task again: the index it finds in the
    # cache was updated since, so it is filled again, not taken as it is
    (tmp_path / "docs" / "office.md").write_text(OFFICE.format(city="Paris"), encoding="utf-8")
    rebuilt = RagLane("context").build(load_task(tmp_path / "task.yaml"), fake_ctx)
    assert rebuilt.invoke(QUESTION).output == "Paris"


def test_update_documents_is_for_document_indexes(fake_ctx):
    fake_ctx.clients["generator"] = FakeGenerator(default="card_arrival")
    system = RagLane("knn-vote").build(load_task(BANKING), fake_ctx)
    with pytest.raises(UserInputError, match="retrieves training examples"):
        system.update_documents(["whatever"])


# -- the router: facts that change never go into the weights --------------------------------


def fresh(freshness: str, **kw) -> TaskProfile:
    base = {
        "task": "t",
        "output_type": "free_text",
        "n_documents": 40,
        "corpus_tokens": 200_000,
        "n_train": 400,
        "knowledge_freshness": freshness,
    }
    return TaskProfile(**{**base, **kw})


def test_knowledge_in_weights_names_the_lanes_that_train_facts_in():
    assert knowledge_in_weights("finetune/pretrain+sft")
    assert knowledge_in_weights("finetune/pretrain+sft@25%")
    assert knowledge_in_weights("finetune/distill")
    for lane in ("finetune/sft", "finetune/sft+dpo", "compound", "rag", "prompt/stuffed"):
        assert not knowledge_in_weights(lane)


@pytest.mark.parametrize("freshness", ["daily", "realtime"])
def test_the_rules_never_plan_pretraining_for_knowledge_that_changes(freshness):
    # a rule that pushes continued pretraining as hard as it can: the plan still drops it
    from compoundai.rules import RULES, Vote

    def push_pretraining(p):
        return [Vote("finetune", 50.0, "test", True, "pretrain on the documents", "pretrain")]

    decision = Router([*RULES, push_pretraining]).decide(fresh(freshness))
    assert decision.lane == "finetune/sft"
    assert "pretrain" not in decision.stages
    why = [r.text for r in decision.reasons if r.signal == "knowledge_freshness"]
    assert any("not continued pretraining" in t for t in why), why
    # static knowledge: the same push plans it
    static = Router([*RULES, push_pretraining]).decide(fresh("static"))
    assert static.lane == "finetune/pretrain+sft"
