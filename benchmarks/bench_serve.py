"""Load test of `compoundai serve`: N concurrent `openai` clients on 127.0.0.1, bounded.

The system: SmolLM2-135M-Instruct (local, bf16 where the CPU has it) answering SQuAD dev
questions in at most `--max-tokens` tokens, behind `create_app` on uvicorn in this process.
Every client sends its requests one after another through the official `openai` client; the
run stops after `--requests` requests or `--duration` seconds, whichever comes first.

- Baseline: the same server with `max_batch=1`, i.e. one request at a time, which is what a
  plain FastAPI wrapper around `generate` gives.
- Ours: the shipped batching (`max_batch=16`, 10 ms gathering window).

Reported per run: requests/s, completion tokens/s, p50/p95 latency and the error count.

    python benchmarks/bench_serve.py [--clients 8] [--requests 64] [--max-tokens 16]

Last line: one JSON object; `ratio` is batched requests/s over the one-at-a-time baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openai

from compoundai.context import RunContext
from compoundai.contract import OutputContract
from compoundai.generators.local import LocalGenerator
from compoundai.serve import ServeSettings, create_app, serve_in_thread
from compoundai.system import CompoundSystem

ROOT = Path(__file__).resolve().parent.parent


def questions(n: int) -> list[str]:
    path = ROOT / "examples" / "squad_docs_qa" / "data" / "dev.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [rows[i % len(rows)]["question"] for i in range(n)]


def load_test(
    system: CompoundSystem, settings: ServeSettings, args: argparse.Namespace
) -> dict[str, float]:
    asks = questions(args.requests)
    latencies: list[float] = []
    errors: list[str] = []
    tokens = [0]
    with serve_in_thread(create_app({"bench": system}, settings)) as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=120)
        # one warm-up request (first-call costs are not throughput)
        client.chat.completions.create(
            model="bench", messages=[{"role": "user", "content": asks[0]}], max_tokens=4
        )
        started = time.perf_counter()
        deadline = started + args.duration
        next_index = iter(range(len(asks)))

        def worker() -> None:
            for i in next_index:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    out = client.chat.completions.create(
                        model="bench",
                        messages=[{"role": "user", "content": asks[i]}],
                        max_tokens=args.max_tokens,
                    )
                    tokens[0] += out.usage.completion_tokens if out.usage else 0
                    latencies.append(time.perf_counter() - t0)
                except openai.APIError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")

        with ThreadPoolExecutor(args.clients) as pool:
            for f in [pool.submit(worker) for _ in range(args.clients)]:
                f.result()
        wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000 if latencies else np.array([float("nan")])
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 3),
        "completion_tokens_per_s": round(tokens[0] / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "first_error": errors[0] if errors else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--duration", type=float, default=300.0, help="cap per run, seconds")
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()

    generator = LocalGenerator(ctx=RunContext(progress=False), batch_size=16)
    system = CompoundSystem(
        "bench",
        "prompt",
        "Answer the question in a few words.",
        OutputContract(),
        generator,
        ctx=RunContext(progress=False),
    )
    results = {}
    for name, batch in (("one_at_a_time", 1), ("batched", 16)):
        results[name] = load_test(system, ServeSettings(max_batch=batch), args)
        print(f"{name:>14}: {json.dumps(results[name])}", flush=True)
    base, ours = results["one_at_a_time"], results["batched"]
    ratio = ours["requests_per_s"] / base["requests_per_s"] if base["requests_per_s"] else 0.0
    print(
        json.dumps(
            {
                "clients": args.clients,
                "max_tokens": args.max_tokens,
                "baseline": base,
                "ours": ours,
                "ratio": round(ratio, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
