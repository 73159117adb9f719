"""`LocalGenerator`: a transformers causal LM on this machine, batched, with optional LoRA.

Shaped for small models on CPU: prompts are sorted by length and batched with left padding
(so every row's next token sits in the last column), weights run in bf16 where the CPU has
AMX / AVX-512 bf16 (measured ~2x faster than fp32 here for this model; see
`benchmarks/bench_generate.py`), and `score()` runs the prompt once and scores all candidate
continuations against its cached keys/values, which makes choosing among 77 labels cost
about one forward pass instead of 77.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compoundai.chat import render_chat
from compoundai.context import RunContext
from compoundai.errors import RunTimeFailure, UserInputError
from compoundai.generators.base import Chat, Generation, GenerationConfig
from compoundai.generators.tree_attention import pays_off, use_tree_attention
from compoundai.hardware import loading_bars, pick_dtype, quiet_peft
from compoundai.models import ModelStore


class LocalGenerator:
    """Generate and score with a local causal LM.

    >>> gen = LocalGenerator("smollm2-135m-instruct")  # doctest: +SKIP
    >>> chat = [{"role": "user", "content": "Capital of France?"}]
    >>> gen.generate([chat])[0].text  # doctest: +SKIP
    'The capital of France is Paris.'
    """

    def __init__(
        self,
        model: str = "smollm2-135m-instruct",
        *,
        ctx: RunContext | None = None,
        adapter: str | Path | None = None,
        dtype: str = "auto",
        batch_size: int = 16,
    ) -> None:
        self.ctx = ctx or RunContext()
        self.name = model
        self.batch_size = batch_size
        path = ModelStore(self.ctx).resolve(model)
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise RunTimeFailure(
                f"local generation needs the local extra ({exc}); "
                "install it with: pip install 'compoundai[local]'"
            ) from None
        self.device = self.ctx.resolve_device()
        self.dtype = pick_dtype(self.device, dtype)
        try:
            with loading_bars(self.ctx.progress):
                tokenizer = AutoTokenizer.from_pretrained(path)
                lm = AutoModelForCausalLM.from_pretrained(
                    path, dtype=self.dtype, use_safetensors=True
                )
        except OSError as exc:
            raise UserInputError(
                f"cannot load model {model!r} from {path}: {exc}",
                hint="use a bundled name (compoundai models list) or a local model directory",
            ) from None
        torch.manual_seed(self.ctx.seed)
        self._setup(lm, tokenizer, adapter)

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        ctx: RunContext | None = None,
        batch_size: int = 16,
        name: str = "in-memory",
    ) -> LocalGenerator:
        """Wrap an already-loaded model and tokenizer (tests, freshly trained models)."""
        self = cls.__new__(cls)
        self.ctx = ctx or RunContext()
        self.name = name
        self.batch_size = batch_size
        self.device = str(next(model.parameters()).device)
        self.dtype = next(model.parameters()).dtype
        self._setup(model, tokenizer, None)
        return self

    def _setup(self, model: Any, tokenizer: Any, adapter: str | Path | None) -> None:
        if adapter is not None:
            from peft import PeftModel

            # PEFT falls back to a pickled adapter_model.bin when the safetensors file is
            # missing, whatever `use_safetensors` says: refuse that here.
            if (
                Path(adapter).is_dir()
                and not (Path(adapter) / "adapter_model.safetensors").is_file()
            ):
                raise UserInputError(
                    f"no adapter_model.safetensors in {adapter}: pickled adapters are not loaded"
                )
            with quiet_peft():
                model = PeftModel.from_pretrained(model, str(adapter), use_safetensors=True)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        self.eos_token = tokenizer.eos_token or ""
        self._prefix_caches: dict[tuple[int, ...], Any] = {}
        self._score_lock = threading.Lock()
        self._trie_cache: _Trie | None = None
        self._tree_attention = pays_off(self.model) and use_tree_attention(self.model)
        model = self.model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(base.forward).parameters  # PEFT's forward takes **kwargs
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    # -- prompts ---------------------------------------------------------------------------

    def render(self, chat: Chat) -> str:
        """The prompt text for a chat, ending where the assistant's answer starts (the same
        renderer the SFT stage trains with: `compoundai.chat.render_chat`)."""
        return render_chat(self.tokenizer, chat, open_answer=True)

    def render_messages(self, chat: Chat) -> str:
        """A chat rendered as a transcript prefix, without the assistant's turn opened."""
        return render_chat(self.tokenizer, chat, open_answer=False)

    def general_perplexity(self, text_file: str | Path, max_tokens: int = 4096) -> float:
        """This model's perplexity on the first `max_tokens` tokens of a general-text file."""
        from compoundai.generators.perplexity import general_text_tokens, perplexity

        ids = general_text_tokens(text_file, self.tokenizer, max_tokens)
        return perplexity(self.model, ids)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- generation ------------------------------------------------------------------------

    def generate(
        self, prompts: Sequence[Chat], config: GenerationConfig | None = None
    ) -> list[Generation]:
        """Answer each chat; batched by length, greedy unless `config.temperature > 0`."""
        import torch

        config = config or GenerationConfig()
        texts = [self.render(chat) for chat in prompts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[Generation | None] = [None] * len(texts)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if config.seed is not None:
            torch.manual_seed(config.seed)
        for batch in self._progress(batches, "generate", len(texts)):
            enc = self.tokenizer(
                [texts[i] for i in batch],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(self.device)
            sampling: dict[str, Any] = {"do_sample": False}
            if config.temperature > 0:
                sampling = {
                    "do_sample": True,
                    "temperature": config.temperature,
                    "top_p": config.top_p,
                }
            started = time.perf_counter()
            with torch.inference_mode():
                out = self.model.generate(
                    **enc,
                    max_new_tokens=config.max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    **sampling,
                )
            elapsed_ms = (time.perf_counter() - started) * 1000 / len(batch)
            new_tokens = out[:, enc["input_ids"].shape[1] :]
            for row, i in enumerate(batch):
                results[i] = self._decode(
                    new_tokens[row], int(enc["attention_mask"][row].sum()), config, elapsed_ms
                )
        return [r for r in results if r is not None]

    def _decode(
        self, ids: Any, prompt_tokens: int, config: GenerationConfig, elapsed_ms: float
    ) -> Generation:
        ids = ids.tolist()
        eos_ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        n = next((k for k, t in enumerate(ids) if t in eos_ids), None)
        finish = "stop" if n is not None else "length"
        ids = ids[: n if n is not None else len(ids)]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        for stop in config.stop:
            if stop in text:
                text, finish = text[: text.index(stop)], "stop"
        return Generation(text.strip(), prompt_tokens, len(ids), finish, {"latency_ms": elapsed_ms})

    # -- scoring ---------------------------------------------------------------------------

    def score(self, prompt: Chat, continuations: Sequence[str]) -> list[float]:
        """Log-probability of each continuation (plus the end-of-turn token) after `prompt`.

        Three savings make choosing among many labels cheap. The system message (instructions
        and label list, identical for every case) is run once and its key/value cache reused.
        The continuations are merged into a token trie and scored in one forward pass with a
        tree attention mask: each trie node sees the prompt and its own ancestors, so shared
        label prefixes (`card_`, `top_up_`) are computed once, and leaves (the end-of-turn
        tokens) are read from their parents' rows without being run. And that pass projects
        onto the vocabulary only the positions that predict a trie node, and for a model in
        bf16 runs its attention as plain batched matmuls (`tree_attention`). Ending each
        continuation with the end-of-turn token makes a label's score that of the whole
        answer, so `card` cannot win over `card_arrival` by being its prefix.
        """
        import torch

        prompt_ids = self.tokenizer(self.render(prompt), add_special_tokens=False)["input_ids"]
        trie = self._trie(tuple(continuations))
        with self._score_lock:
            prefix_ids, cache = self._prefix_cache(prompt, prompt_ids)
            rest = prompt_ids[len(prefix_ids) :]
            s, r, n = len(prefix_ids), len(rest), len(trie.inner)
            allowed = torch.zeros((r + n, s + r + n), dtype=torch.bool)
            allowed[:r, : s + r] = torch.tril(torch.ones((r, s + r), dtype=torch.bool), diagonal=s)
            allowed[r:, : s + r] = True
            allowed[r:, s + r :] = trie.tree
            mask = torch.zeros(allowed.shape, dtype=self.dtype)
            mask.masked_fill_(~allowed, torch.finfo(self.dtype).min)
            # Node i is predicted by its parent's position (parents are inner nodes), or by the
            # prompt's last token; each such position is projected onto the vocabulary once.
            rows = [r - 1 if p < 0 else r + p for p in trie.parent_rows]
            keep = sorted(set(rows))
            where = {row: k for k, row in enumerate(keep)}
            kwargs: dict[str, Any] = {
                "input_ids": torch.tensor(
                    [rest + [trie.tokens[i] for i in trie.inner]], device=self.device
                ),
                "position_ids": torch.tensor(
                    [list(range(s, s + r)) + [s + r + trie.depths[i] for i in trie.inner]],
                    device=self.device,
                ),
                "attention_mask": mask[None, None].to(self.device),
                "logits_to_keep": torch.tensor(keep, device=self.device),
            }
            if self._tree_attention:
                kwargs["tree_attention"] = True
            if cache is not None:
                kwargs[self._cache_kw] = cache
            try:
                with torch.inference_mode():
                    logits = self.model(**kwargs).logits[0]
            except BaseException:
                self._prefix_caches.clear()  # a half-updated cache must not be reused
                raise
            if cache is not None:
                cache.crop(-(r + n))  # back to the system prefix, for the next case
        logp = torch.log_softmax(logits.float(), dim=-1)
        picked = torch.tensor([where[row] for row in rows], device=self.device)
        node_lp = logp[picked, torch.tensor(trie.tokens, device=self.device)]
        return [float(node_lp[path].sum()) for path in trie.paths]

    def _trie(self, continuations: tuple[str, ...]) -> _Trie:
        """The continuations' token trie with its tree mask, built once per label set (a run
        scores one set). Only inner nodes (those with children) are run through the model: a
        leaf (every continuation's end-of-turn token) is scored from its parent's row and
        predicts nothing, so feeding it would be wasted work (77 of banking77's 459 nodes)."""
        import torch

        if self._trie_cache is None or self._trie_cache.continuations != continuations:
            tok = self.tokenizer
            ids = [
                tok(c + self.eos_token, add_special_tokens=False)["input_ids"]
                for c in continuations
            ]
            paths, tokens, parents, depths = _token_trie(ids)
            has_children = {p for p in parents if p >= 0}
            inner = [i for i in range(len(tokens)) if i in has_children]
            slot = {node: k for k, node in enumerate(inner)}
            tree = torch.zeros((len(inner), len(inner)), dtype=torch.bool)
            for k, node in enumerate(inner):
                if parents[node] >= 0:
                    tree[k] = tree[slot[parents[node]]]  # a node sees its ancestors ...
                tree[k, k] = True  # ... and itself
            parent_rows = [-1 if p < 0 else slot[p] for p in parents]
            self._trie_cache = _Trie(continuations, paths, tokens, depths, inner, parent_rows, tree)
        return self._trie_cache

    def _prefix_cache(self, chat: Chat, prompt_ids: list[int]) -> tuple[list[int], Any]:
        """The system message's token ids and its key/value cache (one kept: a run shares a
        single system prompt). `score` crops the cache back to the prefix after each use
        (under `_score_lock`), so it is never copied.

        Returns `([], None)` when the chat has no system message or it does not tokenise as a
        prefix of the prompt (then the whole prompt is simply run).
        """
        import torch

        if not chat or chat[0]["role"] != "system" or len(chat) < 2:
            return [], None
        prefix_text = self.render_messages(chat[:1])
        prefix_ids = self.tokenizer(prefix_text, add_special_tokens=False)["input_ids"]
        if len(prefix_ids) >= len(prompt_ids) or prompt_ids[: len(prefix_ids)] != prefix_ids:
            return [], None
        key = tuple(prefix_ids)
        if key not in self._prefix_caches:
            with torch.inference_mode():
                out = self.model(
                    input_ids=torch.tensor([prefix_ids], device=self.device), use_cache=True
                )
            self._prefix_caches.clear()
            self._prefix_caches[key] = getattr(out, "cache", None) or out.past_key_values
        return prefix_ids, self._prefix_caches[key]

    def _progress(self, items: list[Any], desc: str, total_items: int) -> Any:
        if not self.ctx.progress or len(items) <= 1:
            return items
        from tqdm.auto import tqdm

        return tqdm(items, desc=f"{desc} ({total_items} prompts)", unit="batch", leave=False)


@dataclass(frozen=True)
class _Trie:
    """`_token_trie`'s result for one label set, with the tree mask among its nodes."""

    continuations: tuple[str, ...]
    paths: list[list[int]]  # per continuation, its nodes
    tokens: list[int]  # per node
    depths: list[int]  # per node
    inner: list[int]  # the nodes with children, in order: what the model runs
    parent_rows: list[int]  # per node, its parent's index in `inner` (-1: the prompt's end)
    tree: Any  # (inner, inner) bool tensor: inner node k sees inner node j


def _token_trie(
    sequences: list[list[int]],
) -> tuple[list[list[int]], list[int], list[int], list[int]]:
    """Merge token sequences into a trie: per-sequence node paths, node tokens, parents, depths.

    >>> _token_trie([[1, 2], [1, 3]])
    ([[0, 1], [0, 2]], [1, 2, 3], [-1, 0, 0], [0, 1, 1])
    """
    index: dict[tuple[int, int], int] = {}
    tokens: list[int] = []
    parents: list[int] = []
    depths: list[int] = []
    paths = []
    for seq in sequences:
        parent, path = -1, []
        for depth, token in enumerate(seq):
            node = index.get((parent, token))
            if node is None:
                node = index[(parent, token)] = len(tokens)
                tokens.append(token)
                parents.append(parent)
                depths.append(depth)
            path.append(node)
            parent = node
        paths.append(path)
    return paths, tokens, parents, depths
