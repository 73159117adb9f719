"""Copy a slice of ../shared/data/squad_v2_rag into examples/squad_docs_qa/data.

- `corpus.jsonl`: every paragraph of the first `--articles` articles of the evaluation corpus
  (SQuAD 2.0 dev, upstream order), unchanged: `doc_id, title, text`.
- `dev.jsonl` / `test.jsonl`: the questions about those paragraphs, answerable and
  unanswerable, on the upstream file's own `split` field (never mixed). Each row keeps
  `id, question, doc_id, title`, `answer` is the list of gold answers (SQuAD scores the best
  match; `[]` for an unanswerable question) and unanswerable rows carry `is_impossible: true`.
- `train.jsonl`: questions from SQuAD 1.1 *train* articles (no article shared with the corpus),
  the first question of each of the first `--train` paragraphs. `answer` is the one gold string
  (a training target), and `context` is the gold paragraph's text, for retrieval-augmented
  fine-tuning.

Only deterministic subsetting and field renaming; no text is edited. Re-running this script
reproduces the committed files exactly.

    python scripts/make_squad_docs_qa_example.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SOURCES = """\
# Data: SQuAD (CC BY-SA 4.0)

Written by `scripts/make_squad_docs_qa_example.py` from `../shared/data/squad_v2_rag` (see its
`SOURCES.md` for the upstream repository, commit and conversion).

- **Upstream:** SQuAD 2.0 development set and SQuAD 1.1 training set, Rajpurkar, Jia & Liang
  (2018) and Rajpurkar et al. (2016), https://rajpurkar.github.io/SQuAD-explorer/
- **Licence:** CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/). These files are
  a share-alike adaptation (subset and field renaming only; no text edited).
- `corpus.jsonl`: all {n_corpus} paragraphs of the first {articles} SQuAD 2.0 dev articles
  ({titles}).
- `dev.jsonl` ({n_dev} rows: {n_dev_ans} answerable, {n_dev_imp} unanswerable) and `test.jsonl`
  ({n_test} rows: {n_test_ans} answerable, {n_test_imp} unanswerable): every question of
  `questions.jsonl` and `unanswerable.jsonl` about those paragraphs, split by the shared
  folder's `split` field (paragraph number mod 3). `answer` holds the gold answers (`[]` when
  unanswerable).
- `train.jsonl` ({n_train} rows): the first question of each of the first {n_train} paragraphs
  of `train_questions.jsonl` (SQuAD 1.1 train, articles disjoint from the corpus), with its one
  gold answer as `answer` and its gold paragraph from `train_corpus.jsonl` as `context`.
"""


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path.name}: {len(rows)} rows, {path.stat().st_size // 1024} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--articles", type=int, default=6)
    parser.add_argument("--train", type=int, default=100)
    args = parser.parse_args()
    src = args.shared / "squad_v2_rag"
    out = Path(__file__).resolve().parent.parent / "examples" / "squad_docs_qa" / "data"
    out.mkdir(parents=True, exist_ok=True)

    corpus_all = read(src / "corpus.jsonl")
    titles: list[str] = []
    for row in corpus_all:
        if row["title"] not in titles:
            titles.append(row["title"])
    kept_titles = titles[: args.articles]
    corpus = [r for r in corpus_all if r["title"] in kept_titles]
    kept_docs = {r["doc_id"] for r in corpus}

    # answerable and unanswerable questions of each paragraph, in corpus order
    order = {r["doc_id"]: i for i, r in enumerate(corpus)}
    questions = read(src / "questions.jsonl") + read(src / "unanswerable.jsonl")
    questions = [q for q in questions if q["doc_id"] in kept_docs]
    questions.sort(key=lambda q: (order[q["doc_id"]], bool(q.get("is_impossible"))))
    splits: dict[str, list[dict[str, Any]]] = {"dev": [], "test": []}
    for q in questions:
        row = {
            "id": q["id"],
            "question": q["question"],
            "answer": q["answers"],
            "doc_id": q["doc_id"],
            "title": q["title"],
        }
        if q.get("is_impossible"):
            row["is_impossible"] = True
        splits[q["split"]].append(row)

    paragraphs = {r["doc_id"]: r["text"] for r in read(src / "train_corpus.jsonl")}
    train, seen = [], set()
    for q in read(src / "train_questions.jsonl"):
        if q["doc_id"] in seen:
            continue
        seen.add(q["doc_id"])
        train.append(
            {
                "id": q["id"],
                "question": q["question"],
                "answer": q["answers"][0],
                "doc_id": q["doc_id"],
                "title": q["title"],
                "context": paragraphs[q["doc_id"]],
            }
        )
        if len(train) == args.train:
            break

    write(out / "corpus.jsonl", corpus)
    write(out / "train.jsonl", train)
    for name, rows in splits.items():
        write(out / f"{name}.jsonl", rows)

    def count(rows: list[dict[str, Any]], impossible: bool) -> int:
        return sum(bool(r.get("is_impossible")) == impossible for r in rows)

    (out / "SOURCES.md").write_text(
        SOURCES.format(
            n_corpus=len(corpus),
            articles=len(kept_titles),
            titles=", ".join(kept_titles),
            n_dev=len(splits["dev"]),
            n_dev_ans=count(splits["dev"], False),
            n_dev_imp=count(splits["dev"], True),
            n_test=len(splits["test"]),
            n_test_ans=count(splits["test"], False),
            n_test_imp=count(splits["test"], True),
            n_train=len(train),
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
