"""The rag lane: a Chroma index from `compoundai_retrievers`, and what the system does with hits.

Three variants, chosen by the task's output contract:

- **rag/knn-vote** (labels): the index holds the labelled training examples (the input is the
  document, the output sits in its metadata); the answer is the majority label of the k nearest
  examples (ties: the larger summed similarity, then the nearer example). No generator call at
  all: the cheapest lane, and a strong one (MiniLM 5-NN measured 0.92 accuracy on the whole
  banking77 test set).
- **rag/demos** (labels, JSON schema): the same neighbours given to the generator as chat turns
  (user message -> assistant answer), then the normal answer path of `CompoundSystem` (label
  likelihood, or generate and parse JSON). Measured on banking77 with SmolLM2: 0.855 exact; on
  SNIPS 0.97 valid JSON against 0.02 zero-shot.
- **rag** (free text with `documents`): the documents indexed (hybrid dense + BM25 retrieval,
  the retrievers' default), the top k passages numbered [1]..[k] in the prompt, a brief answer
  citing them, and abstention: the model is told to answer exactly `ABSTAIN_TEXT` when the
  passages do not hold the answer, and the system abstains without asking the model when even
  the best passage is far from the question (dense cosine below `min_score`, see `MIN_SCORES`).
  An abstaining answer has an empty output and `extra["abstained"] = True`, by the output
  contract's one abstention rule (`compoundai.contract`), which every free-text lane and the
  metrics share: a refusal scores the same whichever lane gave it.
- **rag/bm25** (free text with `documents`): the cheap non-LLM baseline of the docs-QA row.
  The same index searched by BM25 alone, and the answer is the sentence of the top passage
  that shares the most words with the question: what a search box would show. No generator;
  it abstains only when BM25 finds nothing.

Every answer carries `extra["retrieved_ids"]` (ranked; a document chunk is `doc_id#chunk`, an
example its id), for recall@k, and the retrieved texts: `extra["contexts"]` for passages (what
groundedness checks the answer against), `extra["neighbours"]` for examples (a label is not
expected to occur in its neighbours' texts, so they are not scored for groundedness).

The index lives under `CACHE/rag/<task>-<what>-<hash>/`, the hash covering the data, the
embedder and the chunking, so a second build with the same data reopens it without reading or
embedding anything; ingestion is idempotent anyway. A saved system carries the index records
(texts, metadata, and the vectors as safetensors) and rebuilds the index from them when the
cache no longer has it: Chroma's own files include a pickle, which a system directory must not.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from compoundai.context import RunContext
from compoundai.contract import ABSTAIN_TEXT
from compoundai.errors import UserInputError
from compoundai.generators.base import Chat, GenerationConfig, Generator
from compoundai.lanes.prompt import contract_of, shared_generator
from compoundai.system import Answer, CompoundSystem, NoGenerator, format_output
from compoundai.task import Task

CONTEXT_RULES = (
    "Answer the question using only the numbered passages. Answer briefly, in a few words, "
    "and cite the passages you used like [1]. If the passages do not contain the answer, "
    f"reply exactly: {ABSTAIN_TEXT}"
)
PASSAGE_CHARS = 1200  # each passage is cut to this many characters in the prompt
# The dense cosine under which `context` mode abstains without asking the model, per embedder.
# Measured with MiniLM on the SQuAD v2 corpus here (533 chunks): the best passage of 300
# answerable dev questions scored 0.249 at the least (1% quantile 0.339), of 100 unanswerable
# ones 0.234 (they are written about the same paragraphs: only the model can refuse those),
# while 154 questions about something else (banking77 messages, trivia) scored a median of
# 0.211 and 95% of them under 0.3. Other embedders have other scales: no threshold unless the
# lane is given one.
MIN_SCORES = {"all-minilm-l6-v2": 0.25}
PASSAGE_MODES = ("context", "bm25")  # search the task's documents; answers cite passages
NO_MODEL_MODES = ("knn-vote", "bm25")  # answer from the hits alone: the non-LLM baselines
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
_STOP = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by did do does for from had has have how in is it its of on or "
        "that the their this to was were what when where which who whom whose why with",
    )
)
STORE_FILE = "build.json"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "task"


def _digest(value: Any) -> str:
    import hashlib

    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# -- the index -----------------------------------------------------------------------------


class RagStore:
    """A built `ChromaIndex` and what it holds: `examples` (labelled) or `documents`."""

    def __init__(self, index: Any, *, key: str, holds: str, folder: Path, items: int) -> None:
        self.index = index
        self.key = key
        self.holds = holds
        self.folder = folder
        self.items = items

    # building

    @classmethod
    def for_examples(cls, task: Task, ctx: RunContext, embedder: Any) -> RagStore:
        """One record per training example: its input as the text, its output in metadata."""
        from compoundai_retrievers.chunking import ChunkingConfig
        from compoundai_retrievers.loaders import SourceDocument

        train = task.split("train")
        # Examples are short; one chunk each where the embedder's window allows.
        chunking = ChunkingConfig(chunk_size=256, chunk_overlap=0)
        key = _digest(
            ["examples", embedder.name, chunking.model_dump()]
            + [[e.id, e.input, e.output] for e in train]
        )[:16]
        docs = [
            SourceDocument(
                f"example:{e.id}",
                e.input,
                e.id,
                metadata={"example_id": e.id, "output_json": json.dumps(e.output)},
            )
            for e in train
        ]

        def fill(index: Any) -> None:
            from compoundai_retrievers.ingest import ingest_documents

            ingest_documents(docs, index)

        return cls._build(task, ctx, embedder, "examples", key, chunking, len(train), fill)

    @classmethod
    def for_documents(cls, task: Task, ctx: RunContext, embedder: Any) -> RagStore:
        """The task's documents, loaded, chunked and embedded by the retrievers' ingestion."""
        from compoundai.system import file_sha256
        from compoundai_retrievers.chunking import ChunkingConfig

        chunking = ChunkingConfig()
        files = sorted(p.resolve() for p in task.documents)
        key = _digest(
            ["documents", embedder.name, chunking.model_dump()]
            + [[str(p), file_sha256(p)] for p in files]
        )[:16]

        def fill(index: Any) -> None:
            from compoundai_retrievers.ingest import ingest

            report = ingest(files, index, cleanup="full")
            if index.count() == 0:
                problems = "; ".join(f"{e.file}: {e.message}" for e in report.errors[:5])
                raise UserInputError(
                    f"the task's documents gave nothing to index ({problems or 'no text'})",
                    hint="point `documents:` at text, Markdown, HTML, JSONL or PDF files",
                )

        return cls._build(task, ctx, embedder, "documents", key, chunking, len(files), fill)

    @classmethod
    def _build(
        cls,
        task: Task,
        ctx: RunContext,
        embedder: Any,
        holds: str,
        key: str,
        chunking: Any,
        items: int,
        fill: Any,
    ) -> RagStore:
        from compoundai_retrievers.index import ChromaIndex

        folder = ctx.cache_dir / "rag" / f"{_slug(task.name)}-{holds}-{key}"
        index = ChromaIndex.open(folder / "chroma", embedder=embedder, chunking=chunking, ctx=ctx)
        store = cls(index, key=key, holds=holds, folder=folder, items=items)
        if not store._complete():
            fill(index)
            store._mark()
        return store

    def _complete(self) -> bool:
        marker = self.folder / STORE_FILE
        if not marker.is_file():
            return False
        try:
            done = json.loads(marker.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return False
        return bool(done.get("key") == self.key and done.get("count") == self.index.count())

    def _mark(self) -> None:
        record = {
            "key": self.key,
            "holds": self.holds,
            "items": self.items,
            "count": self.index.count(),
        }
        (self.folder / STORE_FILE).write_text(json.dumps(record) + "\n", encoding="utf-8")

    # searching

    def dense(self, queries: Sequence[str], k: int) -> list[list[Any]]:
        from compoundai_retrievers.search import dense_search

        return dense_search(self.index, list(queries), k=k)

    def keyword(self, queries: Sequence[str], k: int) -> list[list[Any]]:
        from compoundai_retrievers.search import keyword_search

        return keyword_search(self.index, list(queries), k=k)

    def hybrid(self, queries: Sequence[str], k: int) -> tuple[list[list[Any]], list[float]]:
        """Reciprocal-rank fusion of dense and BM25 (as `search(mode="hybrid")`), plus each
        query's best dense cosine, which the fused scores (ranks) cannot tell."""
        from compoundai_retrievers.search import dense_search, fuse, keyword_search

        depth = max(4 * k, 50)
        dense = dense_search(self.index, list(queries), k=depth)
        keyword = keyword_search(self.index, list(queries), k=depth)
        fused = [fuse([d, b], k) for d, b in zip(dense, keyword, strict=True)]
        best = [max((h.score for h in d), default=0.0) for d in dense]
        return fused, best

    # saving

    def reference(self) -> dict[str, Any]:
        return {
            "path": str(self.index.location),
            "collection": self.index.collection.name,
            "embedder": self.index.embedder_name,
            "dim": self.index.dim,
            "chunking": self.index.chunking.model_dump(),
            "key": self.key,
            "holds": self.holds,
            "items": self.items,
            "count": self.index.count(),
        }

    def export(self, folder: Path) -> dict[str, Any]:
        """Write every record (records.jsonl) and its vector (embeddings.safetensors)."""
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        rows, vectors = [], []
        offset, page = 0, 2000
        while True:
            got = self.index.collection.get(
                limit=page, offset=offset, include=["documents", "metadatas", "embeddings"]
            )
            ids = got["ids"]
            if not ids:
                break
            embeddings = got["embeddings"]
            for i, rid in enumerate(ids):
                rows.append(
                    {"id": rid, "text": got["documents"][i], "metadata": got["metadatas"][i]}
                )
                vectors.append(np.asarray(embeddings[i], dtype=np.float32))
            offset += len(ids)
        with open(folder / "records.jsonl", "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        matrix = np.stack(vectors) if vectors else np.zeros((0, self.index.dim), np.float32)
        save_file(
            {"embeddings": np.ascontiguousarray(matrix)}, str(folder / "embeddings.safetensors")
        )
        shutil.copymode(folder / "records.jsonl", folder / "embeddings.safetensors")
        return {"records": "index/records.jsonl", "embeddings": "index/embeddings.safetensors"}

    @classmethod
    def restore(cls, ref: dict[str, Any], system_dir: Path, ctx: RunContext) -> RagStore:
        """Reopen the referenced index if it is intact, else rebuild it in the cache from the
        records saved with the system (no re-embedding)."""
        from compoundai_retrievers.chunking import ChunkingConfig
        from compoundai_retrievers.embedders import make_embedder
        from compoundai_retrievers.index import ChromaIndex

        embedder = make_embedder(ref["embedder"], ctx)
        chunking = ChunkingConfig(**ref["chunking"])
        key, holds, items = ref["key"], ref["holds"], int(ref["items"])
        original = Path(ref["path"]).parent
        folder = ctx.cache_dir / "rag" / original.name
        for candidate in (original, folder):
            if (candidate / STORE_FILE).is_file():
                index = ChromaIndex.open(
                    candidate / "chroma", embedder=embedder, ctx=ctx, create=False
                )
                store = cls(index, key=key, holds=holds, folder=candidate, items=items)
                if store._complete():
                    return store
        from safetensors.numpy import load_file

        rows = _read_jsonl(system_dir / "index" / "records.jsonl")
        vectors = load_file(str(system_dir / "index" / "embeddings.safetensors"))["embeddings"]
        if len(rows) != len(vectors):
            raise UserInputError(
                f"{system_dir / 'index'}: {len(rows)} records but {len(vectors)} vectors",
                hint="the system directory is damaged; build it again",
            )
        index = ChromaIndex.open(folder / "chroma", embedder=embedder, chunking=chunking, ctx=ctx)
        if rows:
            index.write(
                [r["id"] for r in rows],
                vectors,
                [r["text"] for r in rows],
                [r["metadata"] for r in rows],
            )
        store = cls(index, key=key, holds=holds, folder=folder, items=items)
        store._mark()
        return store


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"cannot read {path}: {exc.strerror}") from None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- the system ------------------------------------------------------------------------------


def hit_id(hit: Any) -> str:
    """A retrieved record's id as the evaluators match it: `doc_id#chunk`, or an example's id."""
    meta = hit.metadata
    if meta.get("example_id"):
        return str(meta["example_id"])
    doc = meta.get("doc_id") or Path(str(hit.source)).name
    return f"{doc}#{meta.get('chunk', 0)}"


class RagSystem(CompoundSystem):
    """A `CompoundSystem` whose prompts (or answers) come from an index.

    `mode` is `knn-vote`, `demos` or `context` (see the module docstring); `k` the number of
    hits used; `min_score` the dense cosine under which `context` mode abstains unasked.
    """

    kind = "rag"
    MODES: ClassVar[tuple[str, ...]] = ("knn-vote", "demos", "context", "bm25")

    def __init__(
        self,
        *args: Any,
        store: RagStore,
        mode: str,
        k: int = 5,
        min_score: float | None = None,
        **kwargs: Any,
    ) -> None:
        if mode not in self.MODES:
            raise UserInputError(f"unknown rag mode {mode!r}; choose from {', '.join(self.MODES)}")
        super().__init__(*args, **kwargs)
        self.store = store
        self.mode = mode
        self.k = k
        self.min_score = min_score
        self.shots = k if mode == "demos" else 0
        # the dense search method is part of what decides the hits, so of the answers
        search = store.index.dense_method
        self.info.setdefault("fingerprint", f"rag-{mode}-{store.key}-k{k}-min{min_score}-{search}")
        self._hits: dict[str, tuple[list[Any], float]] = {}
        # What retrieving each cached input cost (ms), so an answer's latency includes its
        # retrieval even when `prompts` (e.g. for the answer cache's keys) retrieved it first.
        self._retrieval_ms: dict[str, float] = {}

    # retrieval (memoised per query: `prompts` and `batch` both need it, e.g. in `compare`)

    def retrieve(self, inputs: Sequence[str]) -> list[tuple[list[Any], float]]:
        """Hits for each input, with the best dense score."""
        todo = list(dict.fromkeys(t for t in inputs if t not in self._hits))
        if todo:
            if len(self._hits) > 50_000:
                self._hits.clear()
                self._retrieval_ms.clear()
            started = time.perf_counter()
            if self.mode == "context":
                fused, best = self.store.hybrid(todo, self.k)
                self._hits.update(zip(todo, zip(fused, best, strict=True), strict=True))
            elif self.mode == "bm25":
                for text, hits in zip(todo, self.store.keyword(todo, self.k), strict=True):
                    self._hits[text] = (hits, max((h.score for h in hits), default=0.0))
            else:
                for text, hits in zip(todo, self.neighbours(todo), strict=True):
                    self._hits[text] = (hits, max((h.score for h in hits), default=0.0))
            per_input = (time.perf_counter() - started) * 1000 / len(todo)
            self._retrieval_ms.update(dict.fromkeys(todo, per_input))
        return [self._hits[t] for t in inputs]

    def neighbours(
        self, inputs: list[str], exclude: Sequence[str | None] | None = None
    ) -> list[list[Any]]:
        """The k nearest distinct examples (an example split into chunks counts once).

        A few more than k are fetched and sorted by (score, id): equal scores then rank the
        same however the HNSW graph was built, so a reloaded system votes as the original.
        `exclude` names, per input, an example id to leave out (a training example's own
        record, when the compound lane builds its training prompts).
        """
        out = []
        skip = list(exclude) if exclude is not None else [None] * len(inputs)
        for hits, own in zip(self.store.dense(inputs, 3 * self.k + 5), skip, strict=True):
            seen: dict[str, Any] = {}
            for h in sorted(hits, key=lambda h: (-h.score, hit_id(h))):
                example = str(h.metadata.get("example_id"))
                if example != own:
                    seen.setdefault(example, h)
            out.append(list(seen.values())[: self.k])
        return out

    # prompts

    def prompts(self, inputs: Sequence[str]) -> list[Chat]:
        retrieved = self.retrieve(inputs)
        return [
            self.chat_for(text, hits) for text, (hits, _) in zip(inputs, retrieved, strict=True)
        ]

    def chat_for(self, text: str, hits: Sequence[Any]) -> Chat:
        """The prompt for `text` given its hits (anything with `.text` and `.metadata`)."""
        if self.mode in NO_MODEL_MODES:  # no model call; the hits decide the answer
            ids = ", ".join(hit_id(h) for h in hits)
            return [{"role": "system", "content": f"{self.mode} over {ids}"}, _user(text)]
        if self.mode == "demos":
            chat: Chat = [{"role": "system", "content": self.system_message()}]
            for h in reversed(hits):  # most similar last, closest to the query
                chat.append(_user(h.text))
                chat.append({"role": "assistant", "content": format_output(_output(h))})
            return [*chat, _user(text)]
        system = f"{self.instructions}\n\n{CONTEXT_RULES}"
        return [{"role": "system", "content": system}, _user(context_prompt(text, hits))]

    # answering

    def batch(self, inputs: Sequence[str]) -> list[Answer]:
        retrieved = self.retrieve(inputs)
        if self.mode == "knn-vote":
            answers = [self._vote(hits) for hits, _ in retrieved]
        elif self.mode == "bm25":
            answers = [
                best_sentence(text, hits) for text, (hits, _) in zip(inputs, retrieved, strict=True)
            ]
        elif self.mode == "demos":
            answers = self.answer(self.prompts(inputs))
        else:
            answers = self._answer_from_context(list(inputs), retrieved)
        for text, answer, (hits, best) in zip(inputs, answers, retrieved, strict=True):
            answer.latency_ms += self._retrieval_ms.get(text, 0.0)
            answer.extra["retrieved_ids"] = [hit_id(h) for h in hits]
            # passages an answer can be grounded in; retrieved examples are demonstrations
            key = "contexts" if self.mode in PASSAGE_MODES else "neighbours"
            answer.extra[key] = [h.text for h in hits]
            answer.extra["retrieval_score"] = round(float(best), 4)
        return answers

    def _vote(self, hits: list[Any]) -> Answer:
        votes: dict[str, list[float]] = {}
        for rank, h in enumerate(hits):
            label = str(_output(h))
            votes.setdefault(label, []).append(h.score - rank * 1e-9)
        if not votes:
            return Answer("", None, extra={"votes": {}})
        label = max(votes, key=lambda lb: (len(votes[lb]), sum(votes[lb]), max(votes[lb])))
        output = label if label in self.contract.labels else None
        counts = {lb: len(v) for lb, v in votes.items()}
        return Answer(label, output, extra={"votes": counts})

    def _answer_from_context(
        self, inputs: list[str], retrieved: list[tuple[list[Any], float]]
    ) -> list[Answer]:
        answers: list[Answer | None] = [None] * len(inputs)
        ask = []
        for i, (hits, best) in enumerate(retrieved):
            if not hits or (self.min_score is not None and best < self.min_score):
                reason = (
                    "nothing retrieved"
                    if not hits
                    else f"best passage cosine {best:.3f} < min_score {self.min_score}"
                )
                answers[i] = Answer(
                    ABSTAIN_TEXT, "", extra={"abstained": True, "abstain_reason": reason}
                )
            else:
                ask.append(i)
        if ask:
            # `answer` applies the contract's one abstention rule (`compoundai.contract`)
            generated = self.answer(self.prompts([inputs[i] for i in ask]))
            for i, g in zip(ask, generated, strict=True):
                hits = retrieved[i][0]
                cited = g.extra.pop("cited", [])
                g.extra["citations"] = [hit_id(hits[n - 1]) for n in cited if 0 < n <= len(hits)]
                if g.extra.get("abstained"):
                    g.extra["abstain_reason"] = "the model found no answer in the passages"
                answers[i] = g
        return [a for a in answers if a is not None]

    # saving

    def _save_parts(self, folder: Path) -> dict[str, Any]:
        files = self.store.export(folder / "index")
        return {
            "rag": {
                "mode": self.mode,
                "k": self.k,
                "min_score": self.min_score,
                "abstain_text": ABSTAIN_TEXT,
                "context_rules": CONTEXT_RULES if self.mode == "context" else None,
                "index": {**self.store.reference(), **files},
            }
        }

    @classmethod
    def _restore(
        cls, kwargs: dict[str, Any], spec: dict[str, Any], folder: Path, ctx: RunContext
    ) -> CompoundSystem:
        rag = spec["rag"]
        store = RagStore.restore(rag["index"], folder, ctx)
        kwargs.pop("shots", None)
        kwargs.pop("demos", None)
        return cls(
            **kwargs, store=store, mode=rag["mode"], k=int(rag["k"]), min_score=rag["min_score"]
        )


def best_sentence(question: str, hits: Sequence[Any]) -> Answer:
    """The sentence of the top hit sharing the most content words with the question (the
    earlier one on a tie); an abstention when there is no hit.

    >>> from types import SimpleNamespace as H
    >>> hit = H(id="c1", text="Paris is in France. The Seine flows through Paris.", metadata={})
    >>> best_sentence("Which river flows through Paris?", [hit]).output
    'The Seine flows through Paris.'
    """
    if not hits:
        return Answer(ABSTAIN_TEXT, "", extra={"abstained": True, "abstain_reason": "no hit"})
    asked = {w for w in _WORD.findall(question.lower()) if w not in _STOP}
    sentences = [s.strip() for s in _SENTENCE_END.split(" ".join(hits[0].text.split()))]
    sentences = [s for s in sentences if s] or [hits[0].text.strip()]
    best = max(
        enumerate(sentences),
        key=lambda p: (len(asked & set(_WORD.findall(p[1].lower()))), -p[0]),
    )[1]
    return Answer(best, best, extra={"citations": [hit_id(hits[0])]})


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _output(hit: Any) -> Any:
    raw = hit.metadata.get("output_json")
    return json.loads(raw) if isinstance(raw, str) else raw


def context_prompt(question: str, hits: Sequence[Any]) -> str:
    """The user turn of `context` mode: numbered passages, then the question."""
    lines = ["Passages:"]
    for n, h in enumerate(hits, start=1):
        title = h.metadata.get("title")
        text = " ".join(h.text.split())[:PASSAGE_CHARS]
        lines.append(f"[{n}] {f'({title}) ' if title else ''}{text}")
    return "\n".join(lines) + f"\n\nQuestion: {question}"


# -- the lane --------------------------------------------------------------------------------


class RagLane:
    """One rag variant: `knn-vote`, `demos`, `context`, `bm25`, or `auto` (chosen from the
    task)."""

    family = "rag"
    NAMES: ClassVar[dict[str, str]] = {
        "knn-vote": "rag/knn-vote",
        "demos": "rag/demos",
        "context": "rag",
        "bm25": "rag/bm25",
        "auto": "rag",
    }

    def __init__(self, mode: str = "auto", *, k: int = 5, min_score: float | None = None) -> None:
        if mode not in self.NAMES:
            raise UserInputError(
                f"unknown rag variant {mode!r}; choose from {', '.join(self.NAMES)}"
            )
        self.mode = mode
        self.k = k
        self.min_score = min_score
        self.name = self.NAMES[mode]

    @classmethod
    def variants(cls, task: Task | None) -> list[RagLane]:
        """The variants a report compares for this task: with labels the kNN vote (the
        non-LLM baseline) and demos; with documents the passages and the BM25 sentence (the
        non-LLM baseline)."""
        if task is None:
            return [cls("auto")]
        kind = task.spec.output.type
        if kind == "labels":
            return [cls("knn-vote"), cls("demos")]
        if kind == "json_schema":
            return [cls("demos")]
        if task.documents:
            return [cls("context"), cls("bm25")]
        return [cls("context")]

    def _mode_for(self, task: Task) -> str:
        kind = task.spec.output.type
        if self.mode == "auto":
            return {"labels": "knn-vote", "json_schema": "demos"}.get(kind, "context")
        if self.mode == "knn-vote" and kind != "labels":
            raise UserInputError(
                f"rag/knn-vote votes among labels, but this task's output is {kind}",
                hint="use rag/demos for a JSON schema, or rag for free text",
            )
        if self.mode in PASSAGE_MODES and kind != "free_text":
            raise UserInputError(
                f"the rag {self.mode} variant answers free text, but this task's output is {kind}",
                hint="use rag/demos (or rag/knn-vote for labels)",
            )
        if self.mode == "demos" and kind == "free_text":
            raise UserInputError(
                "rag/demos retrieves labelled examples for label and JSON tasks; this task is "
                "free text",
                hint="use rag (documents with citations) for free text",
            )
        return self.mode

    def build(
        self, task: Task, ctx: RunContext, *, generator: Generator | None = None
    ) -> CompoundSystem:
        """The rag system; `generator` replaces the task's (the compound lane passes a
        placeholder, since it brings its own adapter, so the base model is not loaded)."""
        from compoundai_retrievers.embedders import make_embedder

        mode = self._mode_for(task)
        name = self.NAMES[mode]
        if mode in PASSAGE_MODES:
            if not task.documents:
                raise UserInputError(
                    f"{name} needs documents to retrieve from, and the task has none",
                    hint="add `documents:` (files, folders or globs of the corpus) to the "
                    "task file, or compare other lanes (--lanes prompt,finetune)",
                )
        elif not task.split("train"):
            raise UserInputError(
                f"{name} retrieves labelled training examples, and the task has none",
                hint="add examples.train (a JSONL of inputs and outputs) to the task file",
            )
        embedder = make_embedder(task.spec.models.embedder, ctx)
        ctx.clients.setdefault("embedder", embedder)
        if mode in PASSAGE_MODES:
            store = RagStore.for_documents(task, ctx, embedder)
        else:
            store = RagStore.for_examples(task, ctx, embedder)
        # kNN vote and the BM25 sentence never call the generator: do not load one for them.
        if generator is None:
            no_model = mode in NO_MODEL_MODES
            generator = NoGenerator() if no_model else shared_generator(task, ctx)
        min_score = self.min_score if self.min_score is not None else MIN_SCORES.get(embedder.name)
        return RagSystem(
            name,
            self.family,
            task.spec.instructions,
            contract_of(task),
            generator,
            ctx=ctx,
            info={"k": self.k, "index": str(store.folder), "holds": store.holds},
            generation=GenerationConfig(max_new_tokens=64) if mode == "context" else None,
            store=store,
            mode=mode,
            k=self.k,
            min_score=min_score if mode == "context" else None,
        )
