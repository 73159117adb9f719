"""`CompoundSystem`: a generator, a prompt template, optional demonstrations, an output parser.

It is what every lane builds and what `compare` and the server call. The output contract
decides how an answer is produced:
- a label set: each allowed label is scored by the model's likelihood and the best one wins
  (lm-evaluation-harness style); a backend that cannot score generates freely and the text is
  snapped to the closest label;
- a JSON schema: generate, then parse (and record whether it parsed);
- free text: generate.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compoundai.context import RunContext
from compoundai.contract import free_text_output
from compoundai.data import Example
from compoundai.errors import RunTimeFailure, UserInputError
from compoundai.generators.base import Chat, Generation, GenerationConfig, Generator, Scorer

if TYPE_CHECKING:
    from compoundai.task import Task


@dataclass
class Answer:
    """One system answer: the raw text, the parsed output, and what it cost."""

    text: str
    output: Any
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutputContract:
    type: str = "free_text"
    labels: list[str] = field(default_factory=list)
    json_schema: dict[str, Any] | None = None

    def describe(self) -> str:
        """The contract as an instruction the model reads."""
        if self.type == "labels":
            return "Answer with exactly one label from this list and nothing else:\n" + "\n".join(
                self.labels
            )
        if self.type == "json_schema":
            return (
                "Answer with one JSON object that follows this JSON Schema, and nothing "
                "else:\n" + json.dumps(self.json_schema)
            )
        return "Answer briefly."


class DemoBank:
    """Labelled examples with their embeddings; picks the nearest ones as demonstrations."""

    def __init__(self, examples: Sequence[Example], embedder: Any) -> None:
        self.examples = list(examples)
        self.embedder = embedder
        self.vectors = embedder.embed([e.input for e in self.examples])

    def nearest(self, inputs: Sequence[str], k: int) -> list[list[Example]]:
        """The k most similar examples for each input, most similar last (closest to the query)."""
        queries = self.embedder.embed(list(inputs))
        sims = queries @ self.vectors.T
        picks = []
        for row in sims:
            top = row.argsort()[::-1][:k]
            picks.append([self.examples[i] for i in reversed(top)])
        return picks


def format_output(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def answer_content(answer: Answer) -> str:
    """What a reader gets: the parsed output as text, else the raw text (e.g. an abstention)."""
    if answer.output is None or answer.output == "":
        return answer.text
    return format_output(answer.output)


def text_chunks(text: str) -> list[str]:
    """`text` split at word boundaries, each piece keeping its leading space (stream pieces)."""
    return re.findall(r"\s*\S+", text) or [text]


class CompoundSystem:
    """A runnable system: `invoke` one input, `batch` many.

    >>> from compoundai.testing import FakeGenerator
    >>> sys = CompoundSystem("demo", "prompt", "Classify.", OutputContract("labels", ["a", "b"]),
    ...                      FakeGenerator({"x": "b"}))
    >>> sys.invoke("x").output
    'b'
    """

    kind = "compound"  # what `load` rebuilds from system.json (see `SYSTEM_KINDS`)

    def __init__(
        self,
        name: str,
        lane: str,
        instructions: str,
        contract: OutputContract,
        generator: Generator,
        *,
        demos: DemoBank | None = None,
        shots: int = 0,
        generation: GenerationConfig | None = None,
        ctx: RunContext | None = None,
        info: dict[str, Any] | None = None,
        contract_in_prompt: bool = True,
    ) -> None:
        self.name = name
        self.lane = lane
        self.instructions = instructions
        self.contract = contract
        self.generator = generator
        self.demos = demos
        self.shots = shots if demos is not None else 0
        self.generation = generation or GenerationConfig(
            max_new_tokens=24 if contract.type == "labels" else 256
        )
        self.ctx = ctx or RunContext()
        self.info = info or {}
        # A fine-tuned adapter learnt the contract from its training answers; its prompt is the
        # instructions alone, exactly as in training (no 77-label list to read every time).
        self.contract_in_prompt = contract_in_prompt
        # Set by `load` (and kept by a later `save`): the router's decision and the provenance.
        self.decision: dict[str, Any] | None = None
        self.provenance: dict[str, Any] | None = None

    # -- prompts ---------------------------------------------------------------------------

    def prompts(self, inputs: Sequence[str]) -> list[Chat]:
        """The chat prompt for each input: system contract, demonstrations as turns, query."""
        system = self.system_message()
        demos: list[list[Example]] = [[] for _ in inputs]
        if self.demos is not None and self.shots:
            demos = self.demos.nearest(inputs, self.shots)
        chats = []
        for text, shots in zip(inputs, demos, strict=True):
            chat: Chat = [{"role": "system", "content": system}]
            for ex in shots:
                chat.append({"role": "user", "content": ex.input})
                chat.append({"role": "assistant", "content": format_output(ex.output)})
            chat.append({"role": "user", "content": text})
            chats.append(chat)
        return chats

    def system_message(self) -> str:
        if not self.contract_in_prompt:
            return self.instructions
        return f"{self.instructions}\n\n{self.contract.describe()}"

    # -- running ---------------------------------------------------------------------------

    def invoke(self, text: str) -> Answer:
        return self.batch([text])[0]

    def batch(self, inputs: Sequence[str]) -> list[Answer]:
        return self.answer(self.prompts(inputs))

    def stream(self, text: str) -> Iterator[str]:
        """The answer's text in pieces. The whole answer is computed first: the output contract
        needs all of it (a label chosen by likelihood, JSON validated, citations stripped)."""
        yield from text_chunks(answer_content(self.invoke(text)))

    def as_runnable(self) -> Any:
        """This system as a LangChain `Runnable` (str in, the answer's text out).

        `batch` goes to the system's own `batch`, so a chain batches as the system does.

        >>> chain = system.as_runnable() | (lambda label: label.upper())  # doctest: +SKIP
        """
        from compoundai.langchain import SystemRunnable

        return SystemRunnable(system=self)

    def answer(self, chats: list[Chat]) -> list[Answer]:
        """Answer prompts already built: label likelihood, or generate and parse."""
        if self.contract.type == "labels" and isinstance(self.generator, Scorer):
            return self._choose_labels(chats)
        started = time.perf_counter()
        generations = self.generator.generate(chats, self.generation)
        per_case = (time.perf_counter() - started) * 1000 / max(len(chats), 1)
        answers = []
        for g in generations:
            latency = float(g.extra.get("latency_ms", per_case))  # type: ignore[arg-type]
            answer = Answer(g.text, None, g.prompt_tokens, g.completion_tokens, latency)
            if self.contract.type == "free_text":
                # the one abstention rule (`compoundai.contract`), the same for every lane
                said = free_text_output(g.text)
                answer.output = said.output
                if said.abstained:
                    answer.extra["abstained"] = True
                    answer.extra["abstain_reason"] = "the answer declines to answer"
                if said.cited:
                    answer.extra["cited"] = said.cited
            else:
                answer.output = self.parse(g.text)
            answers.append(answer)
        return answers

    def _choose_labels(self, chats: list[Chat]) -> list[Answer]:
        scorer: Any = self.generator
        labels = self.contract.labels
        answers = []
        for chat in self._progress(chats):
            started = time.perf_counter()
            scores = scorer.score(chat, labels)
            best = max(range(len(labels)), key=scores.__getitem__)
            latency = (time.perf_counter() - started) * 1000
            prompt_tokens = _count_tokens(self.generator, chat)
            answers.append(
                Answer(
                    labels[best], labels[best], prompt_tokens, 0, latency, {"logprob": scores[best]}
                )
            )
        return answers

    def parse(self, text: str) -> Any:
        """Turn generated text into the contract's output type (free text: see
        `compoundai.contract.free_text_output`, an abstention is the empty string)."""
        if self.contract.type == "labels":
            return snap_to_label(text, self.contract.labels)
        if self.contract.type == "json_schema":
            return parse_json(text)
        return free_text_output(text).output

    def _progress(self, items: list[Any]) -> Any:
        if not self.ctx.progress or len(items) < 8:
            return items
        from tqdm.auto import tqdm

        return tqdm(items, desc=f"{self.name}: score labels", unit="case", leave=False)

    # -- save / load -----------------------------------------------------------------------

    def save(self, path: str | Path, *, task: Task | None = None, decision: Any = None) -> Path:
        """Write the system into one versioned directory that `load` turns back into it.

        `system.json` (format version, template, contract, generator reference, decision,
        provenance), `demos.jsonl` when it has demonstrations, `adapter/` (a copy) when
        `info["adapter"]` is set, and whatever the lane adds (the rag lane: its index records).
        Only JSON, JSONL and safetensors are written. An existing system directory at `path` is
        replaced as a whole; any other non-empty directory is refused.

        >>> system.save("out/system", task=task, decision=decision)  # doctest: +SKIP
        """
        target = Path(path).expanduser()
        _check_target(target)
        tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            spec = self._spec(tmp)
            if decision is not None:
                spec["decision"] = _plain_json(
                    decision.model_dump() if hasattr(decision, "model_dump") else decision
                )
            else:
                spec["decision"] = self.decision
            if task is not None:
                spec["provenance"] = provenance(task, self.ctx)
            else:
                spec["provenance"] = self.provenance or {
                    "versions": _versions(),
                    "created": _now(),
                }
            text = json.dumps(spec, indent=2, ensure_ascii=False)
            (tmp / SYSTEM_FILE).write_text(text + "\n", encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(
        cls, path: str | Path, ctx: RunContext | None = None, *, generator: Generator | None = None
    ) -> CompoundSystem:
        """The system saved in `path`, ready to `invoke`.

        The generator is rebuilt from its reference (a local model with the saved adapter, or
        an OpenAI-compatible server); pass `generator=` (or put one in `ctx.clients`) to
        override it, which a system saved with a custom generator requires.

        >>> CompoundSystem.load("out/system").invoke("my card has not arrived")  # doctest: +SKIP
        """
        folder = Path(path).expanduser()
        spec = read_system_spec(folder)
        ctx = ctx or RunContext()
        kind = spec.get("kind", "compound")
        if kind not in SYSTEM_KINDS:
            raise UserInputError(
                f"{folder / SYSTEM_FILE}: unknown system kind {kind!r}",
                hint="it was written by another version of compoundai; rebuild it",
            )
        module, qualname = SYSTEM_KINDS[kind]
        klass = getattr(importlib.import_module(module), qualname)
        info = dict(spec.get("info") or {})
        gen_ref = dict(spec["generator"])
        if gen_ref.get("adapter"):
            info["adapter"] = str(folder / gen_ref["adapter"])
        info["system_dir"] = str(folder)
        demos = None
        if spec.get("demos"):
            from compoundai_retrievers.embedders import make_embedder

            examples = [
                Example(str(r["id"]), r["input"], r.get("output"))
                for r in _read_jsonl(folder / spec["demos"]["file"])
            ]
            demos = DemoBank(examples, make_embedder(spec["demos"]["embedder"], ctx))
        generation = dict(spec.get("generation") or {})
        generation["stop"] = tuple(generation.get("stop") or ())
        kwargs: dict[str, Any] = {
            "name": spec["name"],
            "lane": spec["lane"],
            "instructions": spec["instructions"],
            "contract": OutputContract(**spec["contract"]),
            "generator": generator or load_generator(gen_ref, folder, ctx),
            "demos": demos,
            "shots": int(spec.get("shots", 0)),
            "generation": GenerationConfig(**generation),
            "ctx": ctx,
            "info": info,
            "contract_in_prompt": bool(spec.get("contract_in_prompt", True)),
        }
        system: CompoundSystem = klass._restore(kwargs, spec, folder, ctx)
        system.decision = spec.get("decision")
        system.provenance = spec.get("provenance")
        return system

    def _spec(self, folder: Path) -> dict[str, Any]:
        """system.json's content; writes the files it refers to into `folder`."""
        gen_ref = generator_reference(self.generator, self.info, self.ctx)
        info = _plain_json(self.info)
        for key in ("system_dir",):
            info.pop(key, None)
        if gen_ref.pop("copy_base", None):
            _copy_safe(Path(gen_ref["model"]), folder / "base_model")
            gen_ref["copied_from"], gen_ref["model"] = gen_ref["model"], "base_model"
            gen_ref["model_in_system"] = True
        if self.info.get("adapter"):
            source = Path(str(self.info["adapter"]))
            if not (source / "adapter_model.safetensors").is_file():
                raise RunTimeFailure(
                    f"cannot save the adapter {source}: no adapter_model.safetensors there"
                )
            _copy_safe(source, folder / "adapter")
            gen_ref["adapter"] = "adapter"
            info["adapter"] = "adapter"
            info["adapter_copied_from"] = str(source)
        demos = None
        if self.demos is not None:
            rows = [{"id": e.id, "input": e.input, "output": e.output} for e in self.demos.examples]
            _write_jsonl(folder / "demos.jsonl", rows)
            demos = {
                "file": "demos.jsonl",
                "count": len(rows),
                "embedder": self.demos.embedder.name,
            }
        return {
            "format": SYSTEM_FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "name": self.name,
            "lane": self.lane,
            "instructions": self.instructions,
            "contract": asdict(self.contract),
            "contract_in_prompt": self.contract_in_prompt,
            "shots": self.shots,
            "generation": _plain_json(asdict(self.generation)),
            "generator": gen_ref,
            "demos": demos,
            "info": info,
            **self._save_parts(folder),
        }

    def _save_parts(self, folder: Path) -> dict[str, Any]:
        """What a subclass adds to system.json (and writes beside it); nothing here."""
        return {}

    @classmethod
    def _restore(
        cls, kwargs: dict[str, Any], spec: dict[str, Any], folder: Path, ctx: RunContext
    ) -> CompoundSystem:
        """Build the object from `load`'s common arguments; subclasses read their parts."""
        return cls(**kwargs)


# -- the saved-system format ---------------------------------------------------------------

SYSTEM_FORMAT = "compoundai-system"
FORMAT_VERSION = 1
SYSTEM_FILE = "system.json"
# `kind` in system.json -> the class `load` rebuilds (a closed list: no import by file content).
SYSTEM_KINDS = {
    "compound": ("compoundai.system", "CompoundSystem"),
    "rag": ("compoundai.lanes.rag", "RagSystem"),
}
# Never copied into a system directory: pickles and other opaque binaries.
_SAFE_SUFFIXES = {".json", ".jsonl", ".safetensors", ".txt", ".md", ".jinja"}


def read_system_spec(folder: Path) -> dict[str, Any]:
    """system.json of a saved system, checked for its format and version."""
    path = folder / SYSTEM_FILE
    if not path.is_file():
        raise UserInputError(
            f"{folder} is not a compoundai system (no {SYSTEM_FILE})",
            hint="build one with `compoundai build TASK.yaml -o SYSTEM_DIR`",
        )
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(spec, dict) or spec.get("format") != SYSTEM_FORMAT:
        raise UserInputError(f"{path} is not a compoundai system file")
    version = spec.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserInputError(
            f"{path} has format version {version!r}; this compoundai reads up to {FORMAT_VERSION}",
            hint="upgrade compoundai, or rebuild the system with this version",
        )
    return spec


class NoGenerator:
    """The generator slot of a system that never generates (the rag lane's kNN vote)."""

    name = "none"

    def generate(
        self, prompts: Sequence[Chat], config: GenerationConfig | None = None
    ) -> list[Generation]:
        raise RunTimeFailure("this system answers without a generator; it cannot generate")


def generator_reference(generator: Any, info: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """How to rebuild the generator: a local model (name or path) or a server + model."""
    if isinstance(generator, NoGenerator):
        return {"backend": "none"}
    kind = type(generator).__name__
    if kind == "OpenAIGenerator":
        return {
            "backend": "openai",
            "model": generator.name,
            "base_url": getattr(generator, "base_url", None),
        }
    if kind == "LocalGenerator":
        model = str(info.get("base_model") or generator.name)
        ref: dict[str, Any] = {"backend": "local", "model": model}
        path = Path(model)
        # A model derived during the build (e.g. the SFT-merged base that DPO trained on)
        # lives in the cache, which may be cleared: it travels with the system.
        if path.is_dir() and _inside(path, ctx.cache_dir) and not _inside(path, ctx.models_dir):
            ref["copy_base"] = True
        return ref
    return {
        "backend": "custom",
        "model": getattr(generator, "name", ""),
        "class": f"{type(generator).__module__}.{type(generator).__qualname__}",
    }


def load_generator(ref: dict[str, Any], folder: Path, ctx: RunContext) -> Generator:
    """The generator a saved system refers to (`generator_reference`'s inverse)."""
    backend = ref.get("backend")
    if backend == "none":
        return NoGenerator()
    if backend == "openai":
        from compoundai.generators.openai_backend import OpenAIGenerator

        return OpenAIGenerator(ref["model"], base_url=ref.get("base_url"))
    if backend == "local":
        from compoundai.generators.local import LocalGenerator

        model = str(folder / ref["model"]) if ref.get("model_in_system") else ref["model"]
        adapter = folder / ref["adapter"] if ref.get("adapter") else None
        return LocalGenerator(model, ctx=ctx, adapter=adapter)
    injected = ctx.clients.get("generator")
    if injected is not None:
        return injected
    raise UserInputError(
        f"the system in {folder} was saved with a custom generator ({ref.get('class')})",
        hint="pass generator=... to CompoundSystem.load (or put one in ctx.clients)",
    )


def provenance(task: Task, ctx: RunContext | None = None) -> dict[str, Any]:
    """What a system was built from: the task file and data, hashed, and the versions."""
    data: dict[str, Any] = {}
    for split, rows in sorted(task.examples.items()):
        data[f"examples.{split}"] = {
            "n": len(rows),
            "sha256": _digest([[e.id, e.input, e.output] for e in rows]),
        }
    for split, pairs in sorted(task.preferences.items()):
        data[f"preferences.{split}"] = {
            "n": len(pairs),
            "sha256": _digest([[p.id, p.prompt, p.chosen, p.rejected] for p in pairs]),
        }
    if task.documents:
        data["documents"] = {
            "n": len(task.documents),
            "sha256": _digest([[p.name, file_sha256(p)] for p in task.documents]),
        }
    return {
        "task": task.name,
        "task_file": str(task.path.resolve()),
        "task_sha256": file_sha256(task.path),
        "data": data,
        "seed": (ctx or RunContext()).seed,
        "versions": _versions(),
        "created": _now(),
    }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _versions() -> dict[str, str]:
    from compoundai.run import versions

    return versions()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _plain_json(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise UserInputError(f"{target} is a file; give a directory for the system")
    if target.is_dir() and any(target.iterdir()) and not (target / SYSTEM_FILE).is_file():
        raise UserInputError(
            f"{target} is not empty and holds no compoundai system; refusing to overwrite it",
            hint="choose a new or empty directory",
        )


def _copy_safe(source: Path, dest: Path) -> None:
    """Copy a model or adapter folder, JSON/text/safetensors files only (no pickles)."""
    if not source.is_dir():
        raise RunTimeFailure(f"cannot copy {source} into the system: not a directory")
    for file in sorted(source.rglob("*")):
        rel = file.relative_to(source)
        if not file.is_file() or rel.parts[0] in {"checkpoints"} or file.name.startswith("."):
            continue
        if file.suffix.lower() not in _SAFE_SUFFIXES:
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, dest / rel)


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserInputError(f"cannot read {path}: {exc.strerror}") from None
    return [json.loads(line) for line in lines if line.strip()]


def _count_tokens(generator: Any, chat: Chat) -> int:
    if hasattr(generator, "count_tokens") and hasattr(generator, "render"):
        return int(generator.count_tokens(generator.render(chat)))
    return sum(len(m["content"].split()) for m in chat)


def snap_to_label(text: str, labels: Sequence[str]) -> str | None:
    """The label the text names: exact, then contained, then the closest by spelling."""
    cleaned = text.strip().strip("\"'`.").strip()
    if cleaned in labels:
        return cleaned
    lowered = cleaned.lower()
    for label in sorted(labels, key=len, reverse=True):
        if label.lower() in lowered:
            return label
    close = difflib.get_close_matches(lowered, [lb.lower() for lb in labels], n=1, cutoff=0.0)
    if close:
        return next(lb for lb in labels if lb.lower() == close[0])
    return None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: str) -> Any:
    """The first JSON object in the text, or None. `NaN` and `Infinity` are not JSON.

    >>> parse_json('Sure: {"a": 1} done'), parse_json('{"a": NaN}')
    ({'a': 1}, None)
    """
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(text[start:])
    except (json.JSONDecodeError, ValueError):
        return None
    return value
