"""What a lane costs: tokens, wall time, and a dollar estimate from a price table you can edit.

A price table maps generator names (glob patterns) to a price per million input and output
tokens, and sets what an hour of local compute costs. The defaults price local models at
$0 per token and local compute at an assumed $0.10 per hour (a small cloud CPU machine), so
lanes still differ by the time they take; pass your own table (`--prices prices.yaml`) for a
hosted API or your hardware. The table used is written into `report.json`, so every dollar
figure can be traced to its assumption.

Training is a one-off cost (wall time, tokens); inference is per case and is what the cost vs
quality plot shows, per 1,000 cases.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from pydantic import Field

from compoundai.config import Strict, load_yaml_model
from compoundai.contract import BuildInfo


class TokenPrice(Strict):
    input_per_mtok: float = Field(0.0, ge=0, description="USD per million prompt tokens")
    output_per_mtok: float = Field(0.0, ge=0, description="USD per million completion tokens")


class PriceTable(Strict):
    """USD prices: per token by generator name (first matching glob wins), per compute hour."""

    models: dict[str, TokenPrice] = Field(default_factory=dict)
    compute_usd_per_hour: float = Field(0.10, ge=0, description="local compute, assumed")
    note: str = "default table: local tokens free, local compute at an assumed $0.10/hour"

    def price_of(self, generator: str) -> TokenPrice:
        """The token price for a generator name.

        >>> table = PriceTable(models={"gpt-4o*": TokenPrice(input_per_mtok=2.5)})
        >>> table.price_of("gpt-4o-mini").input_per_mtok, table.price_of("smollm2").input_per_mtok
        (2.5, 0.0)
        """
        for pattern, price in self.models.items():
            if fnmatch.fnmatch(generator, pattern):
                return price
        return TokenPrice()


def load_prices(path: str | Path) -> PriceTable:
    """Read a price table from YAML or JSON; problems are the user's, with file and line."""
    return load_yaml_model(Path(path), PriceTable, what="price table")


def lane_cost(
    *,
    generator: str,
    remote: bool,
    n_cases: int,
    prompt_tokens: int,
    completion_tokens: int,
    inference_seconds: float,
    build_seconds: float = 0.0,
    train_seconds: float = 0.0,
    train_tokens: int = 0,
    prices: PriceTable | None = None,
    volume: int = 100_000,
) -> dict[str, float]:
    """The cost block of one lane in the report.

    Remote generators are billed per token; local ones per hour of compute (inference time,
    and training time for lanes that train). `usd_per_1k_amortised` adds the one-off cost
    (training and building) spread over `volume` cases: what "cheapest" compares, so a lane that
    trains for an hour is not called cheaper than one that trains nothing just because its
    answers are a little faster.

    >>> c = lane_cost(generator="smollm2", remote=False, n_cases=100, prompt_tokens=5000,
    ...               completion_tokens=0, inference_seconds=36.0)
    >>> c["usd_inference"], c["usd_per_1k_cases"]
    (0.001, 0.01)
    """
    prices = prices or PriceTable()
    hourly = prices.compute_usd_per_hour / 3600
    if remote:
        price = prices.price_of(generator)
        usd_inference = (
            prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok
        ) / 1e6
    else:
        usd_inference = inference_seconds * hourly
    usd_training = (train_seconds + build_seconds) * hourly
    per_1k = usd_inference / n_cases * 1000 if n_cases else 0.0
    amortised = per_1k + (usd_training * 1000 / volume if volume else 0.0)
    return {
        "prompt_tokens": float(prompt_tokens),
        "completion_tokens": float(completion_tokens),
        "prompt_tokens_per_case": round(prompt_tokens / n_cases, 1) if n_cases else 0.0,
        "inference_seconds": round(inference_seconds, 3),
        "build_seconds": round(build_seconds, 3),
        "train_seconds": round(train_seconds, 3),
        "train_tokens": float(train_tokens),
        "usd_inference": round(usd_inference, 6),
        "usd_per_1k_cases": round(per_1k, 6),
        "usd_training": round(usd_training, 6),
        "usd_total": round(usd_inference + usd_training, 6),
        "usd_per_1k_amortised": round(amortised, 6),
        "volume": float(volume),
    }


def throughput(n_cases: int, completion_tokens: int, inference_seconds: float) -> dict[str, float]:
    """Cases and generated tokens per second of inference time.

    >>> throughput(10, 50, 2.0)
    {'cases_per_s': 5.0, 'completion_tokens_per_s': 25.0}
    """
    if inference_seconds <= 0:
        return {"cases_per_s": 0.0, "completion_tokens_per_s": 0.0}
    return {
        "cases_per_s": round(n_cases / inference_seconds, 3),
        "completion_tokens_per_s": round(completion_tokens / inference_seconds, 3),
    }


def training_of(info: BuildInfo) -> tuple[float, int]:
    """`(train_seconds, train_tokens)` from a system's build facts (the training manifest's)."""
    return info.train_cost()
