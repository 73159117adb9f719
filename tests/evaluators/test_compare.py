"""`compare` end to end on scripted lanes: paired intervals, flips, cache, costs, verdict."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from compoundai.contract import BuildInfo, OutputContract, TrainingFacts
from compoundai.data import PreferencePair
from compoundai.system import CompoundSystem
from compoundai.testing import FakeGenerator
from compoundai_evaluators import LLMJudge, OutputCache, compare, decide_verdict
from compoundai_evaluators.cost import PriceTable, TokenPrice, lane_cost, training_of
from compoundai_evaluators.report import find_difference
from tests.evaluators.conftest import make_cases, make_systems


def test_compare_scores_every_lane_with_paired_differences_and_flips():
    cases = make_cases(120)
    systems = make_systems(cases)
    comparison = compare(systems, cases, ["accuracy", "macro_f1"])
    lanes = {r.name: r for r in comparison.lanes}
    acc = {name: r.metrics["accuracy"] for name, r in lanes.items()}
    assert acc["finetune"].value > acc["prompt/5-shot"].value > acc["prompt/zero-shot"].value
    for m in acc.values():
        assert m.ci_low <= m.value <= m.ci_high and m.n == 120
    # diagnostics appear only where defined: retrieval for the lanes that retrieve
    assert "recall_at_5" in lanes["rag"].metrics and "mrr" in lanes["compound"].metrics
    assert "recall_at_5" not in lanes["finetune"].metrics
    assert "abstention_accuracy" not in lanes["rag"].metrics  # no unanswerable case
    d = find_difference(comparison.differences, "finetune", "prompt/zero-shot", "accuracy")
    assert d is not None and d.ci_low > 0 and d.p_a_not_better < 0.025
    # flips add up: the difference in correct cases equals the net flips
    assert d.a_better - d.b_better == round(d.value * 120)
    assert d.a_better_ids and all(i.startswith("case-") for i in d.a_better_ids)
    # every pair once, for every metric both lanes have
    pairs = {(x.a, x.b) for x in comparison.differences if x.metric == "accuracy"}
    assert len(pairs) == 10
    assert lanes["finetune"].forgetting.ratio == pytest.approx(1.04)
    assert lanes["rag"].cost["build_seconds"] == 20
    assert lanes["finetune"].cost["usd_training"] == pytest.approx(900 * 0.10 / 3600, abs=1e-6)
    assert lanes["prompt/zero-shot"].throughput["cases_per_s"] > 0
    assert comparison.descriptions["accuracy"].startswith("share of cases")


def test_the_same_paired_draws_for_every_lane():
    cases = make_cases(60)
    systems = make_systems(cases)
    # the same system twice: every difference is exactly zero, interval included
    comparison = compare([systems[0], _renamed(systems[0], "twin")], cases, ["accuracy"])
    (d,) = comparison.differences
    assert (d.value, d.ci_low, d.ci_high, d.a_better, d.b_better) == (0, 0, 0, 0, 0)


def _renamed(system, name):
    twin = make_systems(make_cases(60))[0]
    twin.name = name
    return twin


def test_a_failing_lane_is_recorded_not_fatal():
    cases = make_cases(12)
    systems = make_systems(cases)[:2]

    def boom(inputs):
        raise RuntimeError("model went away")

    systems[1].batch = boom
    comparison = compare(systems, cases, ["accuracy"])
    assert [r.status for r in comparison.lanes] == ["ok", "failed"]
    assert "model went away" in comparison.lanes[1].message
    assert comparison.differences == []


def test_cache_reuses_answers_and_recomputes_only_what_changed(tmp_path):
    cases = make_cases(30)
    gen = FakeGenerator(lambda chat: chat[-1]["content"].split()[-1])
    system = CompoundSystem("p", "prompt", "Name the label.", OutputContract(), gen)
    cache = OutputCache(tmp_path)
    first = compare([system], cases, ["accuracy"], cache=cache)
    assert len(gen.calls) == 30 and first.lanes[0].cached == 0
    again = compare([system], cases, ["accuracy"], cache=cache)
    assert len(gen.calls) == 30 and again.lanes[0].cached == 30
    assert again.lanes[0].metrics == first.lanes[0].metrics
    # one changed case and five new ones: six generations, the rest from the cache
    changed = [*cases[:29], type(cases[0])(cases[29].id, "message edited", cases[29].output)]
    more = make_cases(35)[30:]
    third = compare([system], changed + more, ["accuracy"], cache=cache)
    assert len(gen.calls) == 36 and third.lanes[0].cached == 29
    # new instructions: a new fingerprint, everything generated again
    system.instructions = "Name the intent."
    compare([system], cases, ["accuracy"], cache=cache)
    assert len(gen.calls) == 66


def test_a_run_that_dies_halfway_keeps_the_answers_it_finished(tmp_path):
    from compoundai_evaluators.compare import CACHE_CHUNK

    cases = make_cases(CACHE_CHUNK * 2 + 5)
    calls = {"n": 0}

    def answer(chat):
        calls["n"] += 1
        if calls["n"] > CACHE_CHUNK + 3:  # the server goes away inside the second chunk
            raise ConnectionError("server went away")
        return chat[-1]["content"].split()[-1]

    system = CompoundSystem(
        "p", "prompt", "Name the label.", OutputContract(), FakeGenerator(answer)
    )
    cache = OutputCache(tmp_path)
    failed = compare([system], cases, ["accuracy"], cache=cache)
    assert failed.lanes[0].status == "failed" and "went away" in failed.lanes[0].message
    calls["n"] = -10_000  # back up
    again = compare([system], cases, ["accuracy"], cache=cache)
    assert again.lanes[0].status == "ok" and again.lanes[0].cached == CACHE_CHUNK
    assert calls["n"] == -10_000 + len(cases) - CACHE_CHUNK


def test_preference_accuracy_is_measured_on_pairs_with_a_scorer():
    cases = make_cases(6)
    pairs = [PreferencePair(str(i), f"q{i}", "good answer", "bad") for i in range(20)]
    longer_wins = FakeGenerator(scores=lambda chat, c: len(c))
    shorter_wins = FakeGenerator(scores=lambda chat, c: -len(c))
    a = CompoundSystem("dpo", "finetune", "Answer.", OutputContract(), longer_wins)
    b = CompoundSystem("base", "prompt", "Answer.", OutputContract(), shorter_wins)
    comparison = compare([b, a], cases, ["exact_match"], preferences=pairs)
    by = {r.name: r for r in comparison.lanes}
    assert by["dpo"].metrics["preference_accuracy"].value == 1.0
    assert by["base"].metrics["preference_accuracy"].value == 0.0
    d = find_difference(comparison.differences, "dpo", "base", "preference_accuracy")
    assert d.value == 1.0 and d.a_better == 20


def test_cost_uses_the_price_table_for_remote_generators():
    prices = PriceTable(models={"gpt-*": TokenPrice(input_per_mtok=2.0, output_per_mtok=8.0)})
    cost = lane_cost(
        generator="gpt-4o-mini",
        remote=True,
        n_cases=1000,
        prompt_tokens=1_000_000,
        completion_tokens=100_000,
        inference_seconds=500,
        prices=prices,
    )
    assert cost["usd_inference"] == pytest.approx(2.0 + 0.8)
    assert cost["usd_per_1k_cases"] == pytest.approx(2.8)


def test_verdict_respects_constraints_ties_and_the_release_gate():
    cases = make_cases(120)
    comparison = compare(make_systems(cases), cases, ["accuracy"])
    lanes, diffs = comparison.lanes, comparison.differences
    v = decide_verdict(lanes, diffs, "accuracy", "finetune", {"max_latency_ms": 190})
    assert set(v.excluded) == {"rag", "compound"} and v.overall == "finetune"
    assert v.router.correct is True
    gates = {g.lane: g for g in v.release}
    assert gates["finetune"].ships
    assert not gates["compound"].ships
    assert any("not measured" in r for r in gates["compound"].reasons)
    # no constraints: compound has the best point value but is tied with finetune
    free = decide_verdict(lanes, diffs, "accuracy", "prompt")
    assert free.overall == "compound" and free.tied_with_winner == ["finetune"]
    assert free.cheapest_equivalent == "finetune"
    assert free.router.correct is False
    # a stricter forgetting bound stops the fine-tuned lane (perplexity rose 4%)
    strict = decide_verdict(lanes, diffs, "accuracy", "finetune", max_forgetting=0.02)
    assert not {g.lane: g for g in strict.release}["finetune"].ships


class JudgeHandler(BaseHTTPRequestHandler):
    seen: ClassVar[list] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        JudgeHandler.seen.append(body)
        answer = body["messages"][-1]["content"].split("ANSWER:\n")[-1]
        grade = "5" if "right" in answer else "Grade: 1" if "wrong" in answer else "unsure"
        payload = {
            "id": "j",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": grade},
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def judge_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), JudgeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    JudgeHandler.seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_llm_judge_through_the_openai_client(judge_server):
    cases = make_cases(8)
    answers = ["right", "wrong", "right", "hmm", "right", "wrong", "right", "right"]
    gen = FakeGenerator(answers)
    system = CompoundSystem("p", "prompt", "Answer.", OutputContract(), gen)
    judge = LLMJudge("judge-model", base_url=judge_server, api_key="k")
    comparison = compare([system], cases, ["exact_match"], judge=judge)
    m = comparison.lanes[0].metrics["judge"]
    # 5 right -> 1.0, 2 wrong -> 0.0, 1 unparseable -> undefined: 5 / 7
    assert m.value == pytest.approx(5 / 7) and m.n == 7
    assert judge.failures == 1
    assert len(JudgeHandler.seen) == 8  # memoised: stats and flips share one call per case
    assert JudgeHandler.seen[0]["model"] == "judge-model"
    assert "REFERENCE" in JudgeHandler.seen[0]["messages"][-1]["content"]


def test_when_no_lane_meets_the_constraints_the_best_is_named_and_flagged():
    cases = make_cases(60)
    comparison = compare(make_systems(cases), cases, ["accuracy"])
    v = decide_verdict(
        comparison.lanes, comparison.differences, "accuracy", "prompt", {"max_latency_ms": 1}
    )
    assert v.overall == v.per_metric[0].lane == "finetune" and not v.constraints_met
    assert len(v.excluded) == 5 and v.eligible == []
    assert "no lane meets" in v.overall_note


def test_training_time_comes_from_what_the_finetune_lane_records():
    # `adapter_generator` puts the manifest's metrics under info.training
    info = BuildInfo(training=TrainingFacts(steps=46, tokens=137128, train_seconds=321.4))
    assert training_of(info) == (321.4, 137128)
    assert training_of(BuildInfo()) == (0.0, 0)
