"""A system directory: one built system saved to disk, and loaded back into the same system.

Why a module of its own: the runtime system (`compoundai.system`) answers questions; this is
the on-disk format, and a system directory is untrusted input (it can be copied from anywhere
and edited by hand), so it is read through one typed model, `SystemFile`, that names every field
and rejects any it does not know, instead of `spec["generator"]["model"]` lookups that fail with
a `KeyError` on a damaged file. The kinds a file may name are an explicit registry (`KINDS`),
never a class imported by name from the file's content.

Layout: `system.json` (format and version, template, output contract, decoding settings, the
generator reference, the build facts, the decision and the provenance: task file and data
hashes, versions), `demos.jsonl` when the system has demonstrations, `adapter/` (a copy) when
its generator serves one, `base_model/` when that base was derived during the build, and what
the kind adds (the rag systems: `index/records.jsonl` + `index/embeddings.safetensors`). Only
JSON, JSONL, text and safetensors are written: no pickles.

    >>> save_system(system, "out/system", task=task, decision=decision)  # doctest: +SKIP
    >>> load_system("out/system").invoke("my card has not arrived")      # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field

from compoundai.config import Strict, validate
from compoundai.context import RunContext
from compoundai.contract import BuildInfo, OutputContract
from compoundai.data import Example, read_jsonl, write_jsonl
from compoundai.errors import RunTimeFailure, UserInputError
from compoundai.generators.base import GenerationConfig, Generator
from compoundai.generators.local import LocalGenerator
from compoundai.generators.openai_backend import OpenAIGenerator
from compoundai.lanes.rag.lane import SYSTEMS as RAG_SYSTEMS
from compoundai.lanes.rag.systems import RetrievingSystem
from compoundai.lanes.stuffed import StuffedSystem
from compoundai.provenance import file_sha256, json_digest, now, versions
from compoundai.safe_files import copy_safe, is_inside
from compoundai.system import CompoundSystem, DemoBank, NoGenerator
from compoundai.system_trust import MODEL_WEIGHTS, check_system_dir, confined

if TYPE_CHECKING:
    from compoundai.task import Task

SYSTEM_FORMAT = "compoundai-system"
FORMAT_VERSION = 1
SYSTEM_FILE = "system.json"
# Never copied into a system directory: pickles and other opaque binaries.


# -- the file ----------------------------------------------------------------------------------


class ContractSpec(Strict):
    type: Literal["free_text", "labels", "json_schema"] = "free_text"
    labels: list[str] = Field(default_factory=list)
    json_schema: dict[str, Any] | None = None


class GenerationSpec(Strict):
    max_new_tokens: int = Field(64, gt=0, le=32_768)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = Field(None, ge=0, lt=2**32)
    stop: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, max_length=16)


class GeneratorRef(Strict):
    """How to rebuild the generator: a local model (name or path) or a server + model."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    backend: Literal["local", "openai", "none", "custom"]
    model: str = ""
    base_url: str | None = None
    adapter: str | None = None  # relative to the system directory
    model_in_system: bool = False  # `model` is a folder inside the system directory
    copied_from: str | None = None
    class_: str | None = Field(None, alias="class")


class DemosRef(Strict):
    file: str
    count: int = Field(ge=0)
    embedder: str


class IndexRef(Strict):
    """Where a rag system's index was built, and the records saved with the system."""

    path: str
    collection: str
    embedder: str
    dim: int = Field(gt=0)
    chunking: dict[str, int]
    key: str
    holds: Literal["examples", "documents"]
    items: int = Field(ge=0)
    count: int = Field(ge=0)
    records: str
    embeddings: str


class RagSpec(Strict):
    mode: Literal["knn-vote", "demos", "context", "bm25"]
    k: int = Field(gt=0)
    min_score: float | None = None
    abstain_text: str
    context_rules: str | None = None
    index: IndexRef


class StuffedSpec(Strict):
    passages: str
    count: int = Field(ge=0)


class SystemFile(Strict):
    """`system.json`, validated: what `load_system` trusts, field by field."""

    format: Literal["compoundai-system"]
    format_version: int = Field(ge=1, le=FORMAT_VERSION)
    kind: Literal["compound", "rag", "stuffed"]
    name: str = Field(min_length=1)
    lane: str = Field(min_length=1)
    instructions: str
    contract: ContractSpec
    contract_in_prompt: bool = True
    shots: int = Field(0, ge=0)
    generation: GenerationSpec
    generator: GeneratorRef
    demos: DemosRef | None = None
    info: BuildInfo = Field(default_factory=BuildInfo)
    rag: RagSpec | None = None
    stuffed: StuffedSpec | None = None
    decision: dict[str, Any] | None = None
    provenance: dict[str, Any] | None = None


# `kind` in system.json -> the class `load_system` rebuilds (a closed list).
KINDS: dict[str, type[CompoundSystem]] = {
    "compound": CompoundSystem,
    "rag": RetrievingSystem,
    "stuffed": StuffedSystem,
}


def read_system_file(folder: Path) -> SystemFile:
    """system.json of a saved system, validated; a user error naming every bad field."""
    path = folder / SYSTEM_FILE
    if path.is_symlink():
        confined(folder, SYSTEM_FILE, SYSTEM_FILE)  # a link that stays inside is fine
    if not path.is_file():
        raise UserInputError(
            f"{folder} is not a compoundai system (no {SYSTEM_FILE})",
            hint="build one with `compoundai build TASK.yaml -o SYSTEM_DIR`",
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != SYSTEM_FORMAT:
        raise UserInputError(f"{path} is not a compoundai system file")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserInputError(
            f"{path} has format version {version!r}; this compoundai reads up to {FORMAT_VERSION}",
            hint="upgrade compoundai, or rebuild the system with this version",
        )
    saved, problems = validate(SystemFile, raw, path, None)
    if saved is None:
        raise UserInputError(problems, hint="the system directory is damaged; build it again")
    return saved


# -- saving ------------------------------------------------------------------------------------


def save_system(
    system: CompoundSystem,
    path: str | Path,
    *,
    task: Task | None = None,
    decision: Any = None,
) -> Path:
    """Write `system` into one versioned directory that `load_system` turns back into it.

    An existing system directory at `path` is replaced as a whole (written beside it, then
    renamed); any other non-empty directory is refused.
    """
    target = Path(path).expanduser()
    _check_target(target)
    tmp = target.parent / f".{target.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        saved = _system_file(system, tmp)
        if decision is not None:
            dumped = decision.model_dump() if hasattr(decision, "model_dump") else decision
            saved.decision = json.loads(json.dumps(dumped, ensure_ascii=False, default=str))
        else:
            saved.decision = system.decision
        if task is not None:
            saved.provenance = provenance(task, system.ctx)
        else:
            saved.provenance = system.provenance or {"versions": versions(), "created": now()}
        data = saved.model_dump(mode="json", by_alias=True)
        data["generator"] = saved.generator.model_dump(by_alias=True, exclude_defaults=True)
        text = json.dumps(data, indent=2, ensure_ascii=False)
        (tmp / SYSTEM_FILE).write_text(text + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _system_file(system: CompoundSystem, folder: Path) -> SystemFile:
    """system.json's content; writes the files it refers to into `folder`."""
    gen_ref, copy_base = generator_reference(system.generator, system.info, system.ctx)
    info = system.info.model_copy()
    if copy_base:
        base = Path(gen_ref.model)
        if not any((base / name).is_file() for name in MODEL_WEIGHTS):
            raise RunTimeFailure(
                f"cannot save the base model {base}: no safetensors weights there "
                "(pickled .bin weights are never copied or loaded)"
            )
        copy_safe(base, folder / "base_model")
        gen_ref.copied_from, gen_ref.model = gen_ref.model, "base_model"
        gen_ref.model_in_system = True
    if system.info.adapter:
        source = Path(system.info.adapter)
        if not (source / "adapter_model.safetensors").is_file():
            raise RunTimeFailure(
                f"cannot save the adapter {source}: no adapter_model.safetensors there"
            )
        copy_safe(source, folder / "adapter")
        gen_ref.adapter = "adapter"
        info.adapter = "adapter"
        info.adapter_copied_from = str(source)
    demos = None
    if system.demos is not None:
        rows = [{"id": e.id, "input": e.input, "output": e.output} for e in system.demos.examples]
        write_jsonl(folder / "demos.jsonl", rows)
        demos = DemosRef(file="demos.jsonl", count=len(rows), embedder=system.demos.embedder.name)
    generation = asdict(system.generation)
    return SystemFile(
        format=SYSTEM_FORMAT,
        format_version=FORMAT_VERSION,
        kind=system.kind,
        name=system.name,
        lane=system.lane,
        instructions=system.instructions,
        contract=ContractSpec(**asdict(system.contract)),
        contract_in_prompt=system.contract_in_prompt,
        shots=system.shots,
        generation=GenerationSpec(**{**generation, "stop": list(generation["stop"])}),
        generator=gen_ref,
        demos=demos,
        info=info,
        **system.save_parts(folder),
    )


def generator_reference(
    generator: Any, info: BuildInfo, ctx: RunContext
) -> tuple[GeneratorRef, bool]:
    """How to rebuild the generator, and whether its base model must travel with the system."""
    if isinstance(generator, NoGenerator):
        return GeneratorRef(backend="none"), False
    if isinstance(generator, OpenAIGenerator):
        return GeneratorRef(
            backend="openai", model=generator.name, base_url=generator.base_url
        ), False
    if isinstance(generator, LocalGenerator):
        model = str(info.base_model or generator.name)
        path = Path(model)
        # A local model folder outside the model store (one derived during the build, e.g.
        # the SFT-merged base that DPO trained on, or the user's own) travels with the system:
        # a loaded system reads no path outside its directory (`compoundai.system_trust`).
        local = path.is_dir() and not is_inside(path, ctx.models_dir)
        return GeneratorRef(backend="local", model=model), local
    kind = f"{type(generator).__module__}.{type(generator).__qualname__}"
    return GeneratorRef(backend="custom", model=getattr(generator, "name", ""), class_=kind), False


# -- loading -----------------------------------------------------------------------------------


def load_system(
    path: str | Path,
    ctx: RunContext | None = None,
    *,
    generator: Generator | None = None,
    allow_remote: Sequence[str] = (),
) -> CompoundSystem:
    """The system saved in `path`, ready to `invoke`.

    The generator is rebuilt from its reference (a local model with the saved adapter, or an
    OpenAI-compatible server); pass `generator=` (or put one in `ctx.clients`) to override it,
    which a system saved with a custom generator requires. Everything `system.json` points at
    is checked before it is opened (`compoundai.system_trust.check_system_dir`): paths stay
    inside the directory, weights are safetensors, and a server gets the inputs (and
    `OPENAI_API_KEY`) only if its base URL is in `allow_remote`, `COMPOUNDAI_ALLOW_REMOTE` or
    is the user's `OPENAI_BASE_URL`.
    """
    folder = Path(path).expanduser()
    saved = read_system_file(folder)
    ctx = ctx or RunContext()
    injected = generator is not None or (
        saved.generator.backend == "custom" and "generator" in ctx.clients
    )
    check_system_dir(folder, saved, ctx, allow_remote=allow_remote, generator_given=injected)
    info = saved.info.model_copy()
    if saved.generator.adapter:
        info.adapter = str(folder / saved.generator.adapter)
    info.system_dir = str(folder)
    demos = None
    if saved.demos is not None:
        from compoundai_retrievers.embedders import make_embedder

        examples = [
            Example(str(r["id"]), r["input"], r.get("output"))
            for r in read_jsonl(confined(folder, saved.demos.file, "demos.file"))
        ]
        demos = DemoBank(examples, make_embedder(saved.demos.embedder, ctx))
    gen = saved.generation
    kwargs: dict[str, Any] = {
        "name": saved.name,
        "lane": saved.lane,
        "instructions": saved.instructions,
        "contract": OutputContract(**saved.contract.model_dump()),
        "generator": generator or load_generator(saved.generator, folder, ctx),
        "demos": demos,
        "shots": saved.shots,
        "generation": GenerationConfig(**{**gen.model_dump(), "stop": tuple(gen.stop)}),
        "ctx": ctx,
        "info": info,
        "contract_in_prompt": saved.contract_in_prompt,
    }
    klass = KINDS[saved.kind]
    if saved.rag is not None and saved.kind == "rag":
        klass = RAG_SYSTEMS[saved.rag.mode]
    system: CompoundSystem = klass.restore(kwargs, saved, folder, ctx)
    system.decision = saved.decision
    system.provenance = saved.provenance
    return system


def load_generator(ref: GeneratorRef, folder: Path, ctx: RunContext) -> Generator:
    """The generator a saved system refers to (`generator_reference`'s inverse)."""
    if ref.backend == "none":
        return NoGenerator()
    if ref.backend == "openai":
        return OpenAIGenerator(ref.model, base_url=ref.base_url)
    if ref.backend == "local":
        model = str(folder / ref.model) if ref.model_in_system else ref.model
        adapter = folder / ref.adapter if ref.adapter else None
        return LocalGenerator(model, ctx=ctx, adapter=adapter)
    injected = ctx.clients.get("generator")
    if injected is not None:
        return injected
    raise UserInputError(
        f"the system in {folder} was saved with a custom generator ({ref.class_})",
        hint="pass generator=... to load_system (or put one in ctx.clients)",
    )


# -- provenance and files ----------------------------------------------------------------------


def provenance(task: Task, ctx: RunContext | None = None) -> dict[str, Any]:
    """What a system was built from: the task file and data, hashed, and the versions."""
    data: dict[str, Any] = {}
    for split, rows in sorted(task.examples.items()):
        data[f"examples.{split}"] = {
            "n": len(rows),
            "sha256": json_digest([[e.id, e.input, e.output] for e in rows]),
        }
    for split, pairs in sorted(task.preferences.items()):
        data[f"preferences.{split}"] = {
            "n": len(pairs),
            "sha256": json_digest([[p.id, p.prompt, p.chosen, p.rejected] for p in pairs]),
        }
    if task.documents:
        data["documents"] = {
            "n": len(task.documents),
            "sha256": json_digest([[p.name, file_sha256(p)] for p in task.documents]),
        }
    return {
        "task": task.name,
        "task_file": str(task.path.resolve()),
        "task_sha256": file_sha256(task.path),
        "data": data,
        "seed": (ctx or RunContext()).seed,
        "versions": versions(),
        "created": now(),
    }


def _check_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise UserInputError(f"{target} is a file; give a directory for the system")
    if target.is_dir() and any(target.iterdir()) and not (target / SYSTEM_FILE).is_file():
        raise UserInputError(
            f"{target} is not empty and holds no compoundai system; refusing to overwrite it",
            hint="choose a new or empty directory",
        )
