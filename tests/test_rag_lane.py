"""The rag lane with fakes (hash embedder, scripted generator); real models in the `slow` ones."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from compoundai.context import RunContext
from compoundai.contract import strip_citations
from compoundai.errors import UserInputError
from compoundai.lanes import lanes_for
from compoundai.lanes.rag import ABSTAIN_TEXT, RagLane, RetrievingSystem
from compoundai.run import run_task
from compoundai.system_dir import load_system, save_system
from compoundai.task import load_task
from compoundai.testing import FakeGenerator, HashEmbedder
from tests.conftest import BANKING

CORPUS = [
    {
        "doc_id": "paris::000",
        "title": "Paris",
        "text": "Paris is the capital of France. The Eiffel Tower was built in Paris in 1889.",
    },
    {
        "doc_id": "rome::000",
        "title": "Rome",
        "text": "Rome is the capital of Italy. The Colosseum in Rome was finished in 80 AD.",
    },
    {
        "doc_id": "normans::000",
        "title": "Normans",
        "text": "The Normans gave their name to "
        "Normandy, a region in France. Their leader Rollo swore fealty to King Charles III.",
    },
    {
        "doc_id": "tea::000",
        "title": "Tea",
        "text": "Green tea is made from leaves that are steamed or pan fired soon after picking.",
    },
]
QUESTIONS = [
    {
        "id": "q1",
        "question": "What is the capital of France?",
        "answers": ["Paris"],
        "doc_id": "paris::000",
    },
    {
        "id": "q2",
        "question": "Who was the leader of the Normans?",
        "answers": ["Rollo"],
        "doc_id": "normans::000",
    },
    {
        "id": "q3",
        "question": "When was the Colosseum in Rome finished?",
        "answers": ["80 AD"],
        "doc_id": "rome::000",
    },
    {
        "id": "q4",
        "question": "Who painted the Eiffel Tower in Paris?",
        "answers": [],
        "is_impossible": True,
        "doc_id": "paris::000",
    },
]
ANSWERS = {"q1": "Paris [1]", "q2": "Rollo [1].", "q3": "80 AD [1]"}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def docs_task(tmp_path: Path):
    _jsonl(tmp_path / "corpus.jsonl", CORPUS)
    _jsonl(tmp_path / "questions.jsonl", QUESTIONS)
    (tmp_path / "task.yaml").write_text(
        "name: city-facts\n"
        "instructions: Answer questions about the documents.\n"
        "documents: [corpus.jsonl]\n"
        "examples: {input_field: question, output_field: answers, id_field: id, "
        "test: questions.jsonl}\n"
        "metrics: [exact_match, f1, recall_at_5, abstention_accuracy]\n"
        "models: {embedder: 'hash:64'}\n",
        encoding="utf-8",
    )
    return load_task(tmp_path / "task.yaml")


def context_generator() -> FakeGenerator:
    """Answers the questions it has a scripted answer for; refuses the rest, as told to."""
    by_question = {q["question"]: ANSWERS.get(q["id"], ABSTAIN_TEXT) for q in QUESTIONS}

    def answer(chat):
        question = chat[-1]["content"].rsplit("Question: ", 1)[-1]
        return by_question.get(question, ABSTAIN_TEXT)

    return FakeGenerator(answer)


@pytest.fixture
def json_task(tmp_path: Path):
    rows = [
        ("play some jazz music", "PlayMusic", {"genre": "jazz"}),
        ("play the latest rock song", "PlayMusic", {"genre": "rock"}),
        ("put on some classical music", "PlayMusic", {"genre": "classical"}),
        ("what is the weather in paris", "GetWeather", {"city": "paris"}),
        ("will it rain in london tomorrow", "GetWeather", {"city": "london"}),
        ("weather forecast for rome", "GetWeather", {"city": "rome"}),
        ("book a table for two in rome", "BookRestaurant", {"city": "rome"}),
        ("reserve a restaurant for four", "BookRestaurant", {"party": "four"}),
    ]
    train = [{"text": t, "intent": i, "slots": s} for t, i, s in rows]
    _jsonl(tmp_path / "train.jsonl", train)
    _jsonl(tmp_path / "test.jsonl", train[:2])
    schema = {
        "type": "object",
        "properties": {"intent": {"type": "string"}, "slots": {"type": "object"}},
        "required": ["intent", "slots"],
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    (tmp_path / "task.yaml").write_text(
        "name: snips-mini\ninstructions: Extract the intent and slots.\n"
        "output: {type: json_schema, schema: schema.json}\n"
        "examples: {input_field: text, output_field: {intent: intent, slots: slots}, "
        "train: train.jsonl, test: test.jsonl}\n"
        "models: {embedder: 'hash:64'}\n"
    )
    return load_task(tmp_path / "task.yaml")


# -- label tasks ---------------------------------------------------------------------------


def test_rag_expands_to_its_variants_per_output_type(docs_task, json_task):
    banking = load_task(BANKING)
    assert [lane.name for lane in lanes_for(["rag"], banking)] == ["rag/knn-vote", "rag/demos"]
    assert [lane.name for lane in lanes_for(["rag"], json_task)] == ["rag/demos"]
    assert [lane.name for lane in lanes_for(["rag"], docs_task)] == ["rag", "rag/bm25"]
    assert [lane.name for lane in lanes_for(["rag"])] == ["rag"]  # no task: chosen at build


def test_knn_vote_is_a_majority_vote_without_any_generator_call(fake_ctx):
    task = load_task(BANKING)
    gen = FakeGenerator(default="card_arrival")
    fake_ctx.clients["generator"] = gen
    system = RagLane("knn-vote").build(task, fake_ctx)
    cases = task.split("test")[:60]
    answers = system.batch([c.input for c in cases])
    assert gen.calls == []
    train = {e.id: e for e in task.split("train")}
    for answer in answers:
        ids = answer.extra["retrieved_ids"]
        assert len(ids) == 5 and len(answer.extra["neighbours"]) == 5
        assert "contexts" not in answer.extra  # examples are not passages to ground a label in
        labels = [train[i].output for i in ids]
        assert answer.extra["neighbours"] == [train[i].input.strip() for i in ids]
        top = max(labels.count(lb) for lb in labels)
        assert labels.count(answer.output) == top  # a majority (or tied-top) label
        assert answer.output in task.labels and answer.prompt_tokens == 0
    accuracy = sum(a.output == c.output for a, c in zip(answers, cases, strict=True)) / len(cases)
    assert accuracy > 0.3  # bag-of-words neighbours; chance is 1/77


def test_latency_includes_retrieval_done_earlier_for_the_prompts(fake_ctx):
    task = load_task(BANKING)
    system = RagLane("knn-vote").build(task, fake_ctx)
    inputs = [c.input for c in task.split("test")[:10]]
    system.prompts(inputs)  # what the answer cache does first: retrieves and caches the hits
    answers = system.batch(inputs)
    assert all(a.latency_ms > 0 for a in answers)


def test_demos_are_the_retrieved_neighbours_as_chat_turns(fake_ctx):
    task = load_task(BANKING)
    gen = FakeGenerator(default="card_arrival")
    fake_ctx.clients["generator"] = gen
    system = RagLane("demos").build(task, fake_ctx)
    query = "my card has still not arrived"
    answer = system.invoke(query)
    assert answer.output == "card_arrival"  # chosen by label likelihood (scripted)
    chat = gen.calls[-1]
    assert [m["role"] for m in chat] == ["system"] + ["user", "assistant"] * 5 + ["user"]
    assert chat[-1]["content"] == query
    assert "card_arrival" in chat[0]["content"]  # the contract lists the labels
    train = {e.id: e for e in task.split("train")}
    nearest_first = [train[i] for i in answer.extra["retrieved_ids"]]
    turns = list(zip(chat[1:-1:2], chat[2:-1:2], strict=True))
    # most similar right before the query
    assert [(u["content"], a["content"]) for u, a in reversed(turns)] == [
        (e.input.strip(), e.output) for e in nearest_first
    ]


def test_json_task_gets_demos_and_parses_json(fake_ctx, json_task):
    gen = FakeGenerator(default='{"intent": "PlayMusic", "slots": {"genre": "jazz"}}')
    fake_ctx.clients["generator"] = gen
    system = lanes_for(["rag"], json_task)[0].build(json_task, fake_ctx)
    answer = system.invoke("play some smooth jazz")
    assert answer.output == {"intent": "PlayMusic", "slots": {"genre": "jazz"}}
    assistant = [m["content"] for m in gen.calls[-1] if m["role"] == "assistant"]
    assert len(assistant) == 5 and all(isinstance(json.loads(a), dict) for a in assistant)
    assert answer.extra["retrieved_ids"][0] == "train:1"  # "play some jazz music"
    with pytest.raises(UserInputError, match="knn-vote votes among labels"):
        RagLane("knn-vote").build(json_task, fake_ctx)


def test_index_is_cached_by_data_hash(fake_ctx):
    task = load_task(BANKING)
    fake_ctx.clients["generator"] = FakeGenerator(default="card_arrival")
    first = RagLane("knn-vote").build(task, fake_ctx)
    folder = first.store.folder
    assert folder.parent == fake_ctx.cache_dir / "rag" and (folder / "build.json").is_file()
    again = RagLane("demos").build(task, fake_ctx)  # same data, same index, nothing re-read
    assert again.store.folder == folder and again.store.key == first.store.key
    assert first.store.index.count() == len(task.split("train"))


# -- free text over documents --------------------------------------------------------------


def test_context_answers_cite_passages_and_carry_retrieval(fake_ctx, docs_task):
    fake_ctx.clients["generator"] = gen = context_generator()
    system = lanes_for(["rag"], docs_task)[0].build(docs_task, fake_ctx)
    assert isinstance(system, RetrievingSystem) and system.mode == "context"
    answers = system.batch([q["question"] for q in QUESTIONS])
    q1 = answers[0]
    assert q1.output == "Paris" and q1.text == "Paris [1]"
    assert q1.extra["retrieved_ids"][0] == "paris::000#0"
    assert q1.extra["citations"] == ["paris::000#0"]
    assert all(re.fullmatch(r"\w+::000#0", i) for a in answers for i in a.extra["retrieved_ids"])
    assert all(len(a.extra["contexts"]) == len(a.extra["retrieved_ids"]) for a in answers)
    prompt = gen.calls[0][-1]["content"]
    assert prompt.startswith("Passages:\n[1] (Paris) Paris is the capital")
    assert prompt.endswith("Question: What is the capital of France?")
    assert ABSTAIN_TEXT in gen.calls[0][0]["content"]
    # the unanswerable question: the model refuses, the system abstains with an empty output
    q4 = answers[3]
    assert q4.output == "" and q4.extra["abstained"] is True and q4.text == ABSTAIN_TEXT


def test_abstains_without_asking_when_retrieval_is_weak(fake_ctx, docs_task):
    fake_ctx.clients["generator"] = gen = context_generator()
    system = RagLane("context", min_score=0.5).build(docs_task, fake_ctx)
    answers = system.batch(["How do I reset my online banking passcode?", QUESTIONS[0]["question"]])
    off, on = answers
    assert off.extra["abstained"] is True and off.output == "" and off.text == ABSTAIN_TEXT
    assert "min_score" in off.extra["abstain_reason"]
    assert "retrieved_ids" in off.extra  # still reported, for recall@k
    assert on.output == "Paris"
    assert len(gen.calls) == 1  # only the answerable question reached the model


def test_bm25_baseline_answers_with_the_top_passage_sentence_without_a_model(
    fake_ctx, docs_task, tmp_path
):
    fake_ctx.clients["generator"] = gen = context_generator()
    system = RagLane("bm25").build(docs_task, fake_ctx)
    assert system.name == "rag/bm25" and system.generator.name == "none"
    q1, q2, q3, q4 = system.batch([q["question"] for q in QUESTIONS])
    assert q1.output == "Paris is the capital of France."
    assert q1.extra["citations"] == q1.extra["retrieved_ids"][:1] == ["paris::000#0"]
    # one question word each ("normans", "leader"): the tie goes to the earlier sentence
    assert q2.output == "The Normans gave their name to Normandy, a region in France."
    # three question words (colosseum, rome, finished) beat one (rome)
    assert q3.output == "The Colosseum in Rome was finished in 80 AD."
    assert q4.output.startswith("The Eiffel Tower")  # it never abstains when BM25 finds text
    none = system.batch(["zzz qqq"])[0]  # no query term in the corpus: nothing to show
    assert none.output == "" and none.extra["abstained"] is True
    assert gen.calls == []
    loaded = load_system(save_system(system, tmp_path / "sys", task=docs_task), fake_ctx)
    assert [a.output for a in loaded.batch(["Who was the leader of the Normans?"])] == [q2.output]


def test_run_says_which_lanes_lose_to_the_non_llm_baseline(fake_ctx, docs_task, tmp_path):
    fake_ctx.clients["generator"] = FakeGenerator(lambda chat: "no idea at all")  # always wrong
    run_task(docs_task, tmp_path / "out", lanes=["prompt", "rag"], ctx=fake_ctx)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    verdict = report["verdict"]
    assert verdict["baselines"] == ["rag/bm25"]
    assert verdict["below_baseline"] == {}  # 4 cases: no interval is clear of zero
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "No lane is clearly below the non-LLM baseline(s) `rag/bm25`" in markdown


def test_strip_citations():
    assert strip_citations("Rollo [2], then [1,3].") == ("Rollo, then.", [1, 2, 3])
    assert strip_citations("no citation") == ("no citation", [])


def test_run_reports_retrieval_and_abstention_metrics(fake_ctx, docs_task, tmp_path):
    fake_ctx.clients["generator"] = context_generator()
    run_task(docs_task, tmp_path / "out", lanes=["rag"], ctx=fake_ctx)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    lane, bm25 = report["lanes"]
    assert lane["name"] == "rag" and lane["status"] == "ok", lane
    assert bm25["name"] == "rag/bm25" and bm25["status"] == "ok", bm25
    # it answers all four: right on the three answerable, wrong on the unanswerable one
    assert bm25["metrics"]["abstention_accuracy"]["value"] == 0.75
    metrics = lane["metrics"]
    assert metrics["recall_at_5"]["value"] == 1.0
    assert metrics["abstention_accuracy"]["value"] == 1.0
    assert metrics["exact_match"]["value"] == 1.0


# -- missing inputs ------------------------------------------------------------------------


def test_free_text_without_documents_names_the_fix(fake_ctx, tmp_path):
    _jsonl(tmp_path / "q.jsonl", QUESTIONS)
    (tmp_path / "task.yaml").write_text(
        "name: no-docs\ninstructions: Answer.\n"
        "examples: {input_field: question, output_field: answers, train: q.jsonl, test: q.jsonl}\n"
    )
    task = load_task(tmp_path / "task.yaml")
    with pytest.raises(UserInputError, match="needs documents") as err:
        lanes_for(["rag"], task)[0].build(task, fake_ctx)
    assert "documents:" in str(err.value)
    # in a comparison the lane does not apply: the report says so instead of "failed"
    from compoundai.lanes import build_lanes

    _, failures = build_lanes(lanes_for(["rag", "compound"], task), task, fake_ctx)
    assert [(f.name, f.status) for f in failures] == [
        ("rag", "not_applicable"),
        ("compound", "not_applicable"),
    ]


def test_label_task_without_training_examples_names_the_fix(fake_ctx, tmp_path):
    (tmp_path / "t.jsonl").write_text('{"text": "hi", "label": "a"}\n')
    (tmp_path / "task.yaml").write_text(
        "name: no-train\ninstructions: Label.\noutput: {type: labels, labels: [a, b]}\n"
        "examples: {input_field: text, output_field: label, test: t.jsonl}\n"
    )
    task = load_task(tmp_path / "task.yaml")
    for lane in lanes_for(["rag"], task):
        with pytest.raises(UserInputError, match=r"examples\.train"):
            lane.build(task, fake_ctx)


# -- save / load ---------------------------------------------------------------------------


def _files(folder: Path) -> set[str]:
    return {p.suffix for p in folder.rglob("*") if p.is_file()}


def test_knn_vote_round_trip_rebuilds_the_index_from_the_system_dir(fake_ctx, tmp_path):
    task = load_task(BANKING)
    system = RagLane("knn-vote").build(task, fake_ctx)
    inputs = [c.input for c in task.split("test")[:40]]
    before = system.batch(inputs)
    saved = save_system(system, tmp_path / "sys", task=task)
    assert _files(saved) <= {".json", ".jsonl", ".safetensors"}
    spec = json.loads((saved / "system.json").read_text())
    assert spec["kind"] == "rag" and spec["generator"] == {"backend": "none"}
    assert spec["rag"]["index"]["embedder"] == "hash-embedder-64"
    # the referenced index is still there: reopened as it is
    assert load_system(saved, fake_ctx).store.folder == system.store.folder
    # gone, and a fresh cache: the index is rebuilt from the saved records, not re-embedded
    shutil.rmtree(system.store.folder)
    ctx = RunContext(cache_dir=tmp_path / "other-cache", progress=False)
    ctx.clients["embedder"] = HashEmbedder()
    loaded = load_system(saved, ctx)
    assert (
        isinstance(loaded, RetrievingSystem) and loaded.store.folder.parent == ctx.cache_dir / "rag"
    )
    after = loaded.batch(inputs)
    assert [a.output for a in after] == [b.output for b in before]
    assert [a.extra["retrieved_ids"] for a in after] == [b.extra["retrieved_ids"] for b in before]


def test_context_round_trip_same_answers(fake_ctx, docs_task, tmp_path):
    fake_ctx.clients["generator"] = context_generator()
    system = lanes_for(["rag"], docs_task)[0].build(docs_task, fake_ctx)
    questions = [q["question"] for q in QUESTIONS]
    before = system.batch(questions)
    saved = save_system(system, tmp_path / "sys", task=docs_task)
    spec = json.loads((saved / "system.json").read_text())
    assert spec["rag"]["mode"] == "context" and spec["rag"]["abstain_text"] == ABSTAIN_TEXT
    assert spec["provenance"]["data"]["documents"]["n"] == 1
    loaded = load_system(saved, fake_ctx)  # custom generator: taken from ctx.clients
    after = loaded.batch(questions)
    assert [(a.text, a.output, a.extra) for a in after] == [
        (b.text, b.output, b.extra) for b in before
    ]
    assert loaded.prompts(questions) == system.prompts(questions)


# -- real models ---------------------------------------------------------------------------


@pytest.mark.slow
def test_real_knn_vote_and_demos_on_banking77(real_ctx, tmp_path):
    """MiniLM 5-NN vote, and SmolLM2 with the same neighbours as turns, on 12 test cases."""
    from compoundai.data import sample_cases

    task = load_task(BANKING)
    cases = sample_cases(task.split("test"), 12, 0, True)
    vote = RagLane("knn-vote").build(task, real_ctx)
    answers = vote.batch([c.input for c in cases])
    accuracy = sum(a.output == c.output for a, c in zip(answers, cases, strict=True)) / len(cases)
    assert accuracy >= 0.6  # measured 0.92 on the whole test set
    demos = RagLane("demos").build(task, real_ctx)
    few = cases[:3]
    got = demos.batch([c.input for c in few])
    assert all(a.output in task.labels for a in got)
    saved = save_system(demos, tmp_path / "demos", task=task)
    loaded = load_system(saved, real_ctx)
    assert [a.output for a in loaded.batch([c.input for c in few])] == [a.output for a in got]


@pytest.mark.slow
def test_real_context_rag_on_squad_slice(real_ctx, tmp_path):
    """SmolLM2 over a slice of the SQuAD paragraphs: retrieval finds the gold paragraph."""
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad_v2_rag"
    if not (data / "corpus.jsonl").is_file():
        pytest.skip("no ../shared/data/squad_v2_rag here")
    corpus = [json.loads(x) for x in (data / "corpus.jsonl").read_text().splitlines()[:20]]
    docs = {c["doc_id"] for c in corpus}
    questions = [json.loads(x) for x in (data / "questions.jsonl").read_text().splitlines()]
    picked = [q for q in questions if q["doc_id"] in docs][1:3]
    _jsonl(tmp_path / "corpus.jsonl", corpus)
    _jsonl(tmp_path / "q.jsonl", picked)
    (tmp_path / "task.yaml").write_text(
        "name: squad-slice\ninstructions: Answer the question.\ndocuments: [corpus.jsonl]\n"
        "examples: {input_field: question, output_field: answers, id_field: id, test: q.jsonl}\n"
    )
    task = load_task(tmp_path / "task.yaml")
    system = RagLane("context").build(task, real_ctx)
    assert system.min_score == 0.25  # MiniLM's measured threshold
    answers = system.batch([q["question"] for q in picked])
    for answer, q in zip(answers, picked, strict=True):
        assert any(i.startswith(q["doc_id"] + "#") for i in answer.extra["retrieved_ids"])
        assert answer.text and answer.extra["retrieval_score"] > 0.25
    off = system.invoke("How do I reset the PIN of my bank card?")
    assert off.extra["abstained"] is True
    loaded = load_system(save_system(system, tmp_path / "sys", task=task), real_ctx)
    assert [a.text for a in loaded.batch([q["question"] for q in picked])] == [
        a.text for a in answers
    ]
