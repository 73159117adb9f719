"""The bake-off itself: the four stages of `BakeOff.run` (see `compoundai.bakeoff`). Kept as
one piece: the stages read and write one decision's state (candidates, rungs, budget,
evidence)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from compoundai.bakeoff.choose import choose
from compoundai.bakeoff.data import decision_data, decision_metric
from compoundai.bakeoff.parts import (
    Budget,
    Candidate,
    Rung,
    default_grid,
    first_share,
    infeasible,
    over_latency_cap,
)
from compoundai.bakeoff.predict import RESAMPLES, Curves
from compoundai.context import RunContext
from compoundai.data import Example, slug
from compoundai.errors import CompoundAIError
from compoundai.hardware import release_memory
from compoundai.lanes import Lane, lanes_for
from compoundai.lanes.rungs import PlannedLane, TrainingPlan, is_training
from compoundai.profile import profile
from compoundai.router import LANES, Decision, Evidence, Router
from compoundai.task import Task

# training tokens/s assumed before anything trained in this decision (2-core CPU: measured
# 115-127 tokens/s for LoRA SFT of SmolLM2 in fp32, benchmarks/README.md; bf16 about 2.5x that)
THROUGHPUT_GUESS = {"bf16": 300.0, "fp32": 120.0}
TOKENS_PER_ROW = 80  # a plain training row: prompt template, input, answer


class BakeOff:
    """The measured decision for one task; `run()` returns the `Decision`.

    >>> decision = BakeOff(task, ctx, budget_minutes=10).run()   # doctest: +SKIP
    >>> decision.mode, decision.lane                             # doctest: +SKIP
    ('measured', 'rag/knn-vote')
    """

    def __init__(
        self,
        task: Task,
        ctx: RunContext,
        *,
        budget_minutes: float | str | None = "task",
        cases: int | None = None,
        first_cases: int | None = None,
        margin: float | None = None,
        volume: int | None = None,
        settings_grid: Sequence[dict[str, Any]] | None = None,
        lanes: Sequence[str] | None = None,
        lane_objects: Sequence[Lane] | None = None,
        share_settings: bool = True,
    ) -> None:
        """Options left out come from the task file's `decide:` settings. `lanes` names the
        lane families to decide among; `lane_objects` gives the lanes themselves (your own
        `Lane` implementations, or fakes in tests) instead. With `share_settings`, the
        settings the grid chose for the first plain-SFT lane (finetune/sft or compound: the
        same LoRA SFT of the same model on the same rows) are the other's, without searching
        the grid again (one first rung saved: about 2 minutes on banking77)."""
        settings = task.spec.decide
        self.task, self.ctx = task, ctx
        minutes = settings.budget_minutes if budget_minutes == "task" else budget_minutes
        self.budget = Budget(minutes)  # type: ignore[arg-type]
        self.margin = settings.margin if margin is None else margin
        self.volume = settings.volume if volume is None else volume
        self.metric = decision_metric(list(task.metrics))
        self.data = decision_data(
            task, cases or settings.cases, first_cases or settings.first_cases, self.metric, ctx
        )
        self.grid = list(settings_grid) if settings_grid is not None else default_grid(task)
        self.lane_names = list(lanes or task.spec.evaluation.lanes or LANES)
        self.lane_objects = list(lane_objects) if lane_objects is not None else None
        self.share_settings = share_settings
        self._sft_choice: tuple[str, dict[str, Any]] | None = None  # (lane, settings) chosen
        self.evidence: list[Evidence] = []
        self._built: dict[str, Any] = {}
        self.candidates: list[Candidate] = []
        self.rules = Router().decide(profile(task, ctx))
        from compoundai_evaluators import OutputCache

        self.cache = OutputCache(ctx.cache_dir / "decide" / slug(task.name))
        self.prices: Any = None
        units = len(self.data.cases) or len(self.data.pairs)
        self.curves = Curves(self._metric(), units, task.spec.evaluation.seed + 7)

    def _metric(self) -> Any:
        from compoundai_evaluators.compare import PREFERENCE
        from compoundai_evaluators.metrics import resolve_metrics

        if self.metric == "preference_accuracy":
            return PREFERENCE
        return resolve_metrics(
            [self.metric],
            self.task.json_schema,
            labels=self.task.labels,
            output_type=self.task.spec.output.type,
        )[0]

    # -- measuring ---------------------------------------------------------------------------

    def measure(
        self, lane: Lane, units: Sequence[Example], stage: str, plan: TrainingPlan | None
    ) -> Rung | str:
        """Build `lane` and score it on `units`; the rung, or the reason it failed."""
        from compoundai_evaluators import compare

        task = self.task
        started = time.perf_counter()
        self._say(f"decide: {stage} {lane.name} on {len(units) or len(self.data.pairs)} units")
        system = self._built.get(lane.name)
        if system is None:
            try:
                system = lane.build(task, self.ctx)
            except CompoundAIError as exc:
                return str(exc).split("\n")[0]
            if not is_training(lane):  # a cheap lane is measured twice: build it once
                self._built[lane.name] = system
        comparison = compare(
            [system],
            units,
            [self.metric],
            seed=task.spec.evaluation.seed,
            resamples=RESAMPLES,
            json_schema=task.json_schema,
            labels=task.labels,
            output_type=task.spec.output.type,
            diagnostics=False,
            cache=self.cache,
            preferences=self.data.pairs if self.metric == "preference_accuracy" else (),
            volume=self.volume,
        )
        result = comparison.lanes[0]
        if result.status != "ok" or self.metric not in result.metrics:
            return result.message or f"{self.metric} was not measured"
        m = result.metrics[self.metric]
        training = system.info.training
        name, share = system.name, system.info.data_share
        if is_training(lane):  # its model is not needed again: free it before the next rung
            del system
            release_memory()
        n = len(units) or len(self.data.pairs)
        latency = result.latency_ms
        latencies = tuple(float(row["latency_ms"]) for row in result.info.get("predictions", []))
        return Rung(
            lane=name,
            stage=stage,
            share=share,
            units=n,
            value=m.value,
            ci_low=m.ci_low,
            ci_high=m.ci_high,
            seconds=round(time.perf_counter() - started, 2),
            per_case_ms=(result.cost.get("inference_seconds", 0.0) * 1000 / max(len(units), 1)),
            p95_ms=latency.p95 if latency else 0.0,
            train_seconds=float(training.train_seconds or 0.0) if training else 0.0,
            train_tokens=int(training.tokens or 0) if training else 0,
            steps=training.steps if training else None,
            plan=plan,
            stats=comparison.scored[name].stats[self.metric],
            latencies=latencies,
            tokens_per_case=(
                (result.cost.get("prompt_tokens", 0.0) + result.cost.get("completion_tokens", 0.0))
                / max(len(units), 1)
            ),
        )

    def _record(self, rung: Rung, note: str = "") -> None:
        self.evidence.append(
            Evidence(
                lane=rung.lane,
                stage=rung.stage,
                data_share=round(rung.share, 4),
                cases=rung.units,
                value=round(rung.value, 4),
                ci_low=round(rung.ci_low, 4),
                ci_high=round(rung.ci_high, 4),
                seconds=rung.seconds,
                p95_ms=round(rung.p95_ms, 1) if rung.latencies else None,
                train_seconds=round(rung.train_seconds, 1),
                train_tokens=rung.train_tokens,
                steps=rung.steps,
                settings=rung.plan.settings() if rung.plan else {},
                note=note,
            )
        )

    def _note(self, lane: str, stage: str, note: str) -> None:
        self.evidence.append(Evidence(lane=lane, stage=stage, note=note))

    def _say(self, text: str) -> None:
        if self.ctx.progress:
            from tqdm.auto import tqdm

            tqdm.write(text, file=sys.stderr)

    # -- the stages --------------------------------------------------------------------------

    def run(self) -> Decision:
        self._feasible()
        self._cheap_stage()
        self._training_stage()
        return choose(self)

    def _feasible(self) -> None:
        """Stage 1: the lanes that can be built for this task, in the rules' prior order."""
        lanes = self.lane_objects or lanes_for(self.lane_names, self.task)
        order = [r.lane for r in self.rules.ranked]
        lanes.sort(key=lambda lane: order.index(lane.family) if lane.family in order else 99)
        remote = bool(self.task.spec.models.openai_base_url)
        for lane in lanes:
            why = infeasible(lane, self.task)
            if why:
                self._note(lane.name, "rules", f"not feasible: {why}")
                continue
            self.candidates.append(Candidate(lane, is_training(lane), remote=remote))
        self._note(
            "all",
            "rules",
            f"prior order (the rules): {', '.join(order)}; decided on {self.metric} over "
            f"{self.data.note}",
        )

    def _cheap_stage(self) -> None:
        """Stage 2: the cheap lanes on the small sample, the survivors on the whole sample.

        When the task caps p95 latency, each lane first answers `LATENCY_PROBE` cases (a
        sample of the first sample, stratified for labels), and one whose median case is over
        the cap (`over_latency_cap`) stops there: its score could not make it the choice, and
        the minutes it would take go to the training lanes. The probe's answers are cached, so the
        first sample reuses them."""
        cheap = [c for c in self.candidates if not c.trains]
        units_first = self.data.first if self.data.cases else []
        screen = bool(units_first) and len(units_first) < len(self.data.cases)
        samples: list[tuple[list[Example], str]] = []
        probe = self.data.probe
        if self._latency_cap and probe and len(probe) < len(units_first or self.data.cases):
            samples.append((probe, "the latency probe"))
        if screen:
            samples.append((units_first, f"first {len(units_first)} decision cases"))
        samples.append((self.data.cases, "the decision sample"))
        for units, what in samples:
            for c in cheap:
                if c.stopped:
                    continue
                rung = self.measure(c.lane, units, "cheap", None)
                if isinstance(rung, str):
                    c.stopped = rung
                    self._note(c.name, "cheap", f"failed: {rung}")
                    continue
                c.rungs.append(rung)
                self._record(rung, what)
                self._stop_if_too_slow(c, rung)
            if screen and units is units_first:
                self._drop_clearly_behind([c for c in cheap if c.rungs and not c.stopped])
        self._built.clear()  # the cheap lanes' models and index are not needed for training
        release_memory()

    @property
    def _latency_cap(self) -> float | None:
        return self.task.spec.constraints.max_latency_ms or None

    def _stop_if_too_slow(self, c: Candidate, rung: Rung) -> bool:
        """Stop a lane whose p95 latency is clearly over the task's cap (said in the evidence);
        whether it stopped."""
        cap = self._latency_cap
        why = over_latency_cap(rung.latencies, cap) if cap else None
        if why is None:
            return False
        c.stopped, c.too_slow = f"too slow: {why}", True
        self._note(c.name, rung.stage, c.stopped)
        return True

    def _drop_clearly_behind(self, measured: list[Candidate]) -> None:
        if len(measured) < 2:
            return
        leader = max(measured, key=lambda c: c.rungs[-1].value)
        for c in measured:
            if c is leader:
                continue
            low, _, high = self.curves.gap(leader.rungs[-1], c.rungs[-1])
            if low > self.margin:
                from compoundai_evaluators.report import signed

                c.stopped = (
                    f"clearly behind {leader.name} on the first sample: gap [{signed(low)}, "
                    f"{signed(high)}] above the {self.margin:g} margin"
                )
                self._note(c.name, "cheap", c.stopped)

    def _training_stage(self) -> None:
        """Stage 3: training lanes on growing shares of their data (successive halving)."""
        trainers = [c for c in self.candidates if c.trains]
        for c in trainers:
            self._first_rung(c)
        while True:
            alive = [c for c in trainers if not c.stopped and c.rungs]
            if not alive:
                return
            leader_value = self._leader_value()
            hopeful = []
            for c in alive:
                last = c.rungs[-1]
                if last.share >= 1:
                    c.stopped = "trained on all its data"
                    continue
                predicted = self.curves.predict(c)
                if predicted[2] < leader_value - self.margin:
                    c.stopped = (
                        f"cannot reach the leader ({leader_value:.3f}): predicted full-data "
                        f"{predicted[0]:.3f} [{predicted[1]:.3f}, {predicted[2]:.3f}]"
                    )
                    self._note(c.name, "rung", c.stopped)
                    continue
                hopeful.append((predicted[0], c))
            if not hopeful:
                return
            hopeful.sort(key=lambda p: -p[0])
            keep = max(1, math.ceil(len(hopeful) / 2)) if len(hopeful) > 1 else 1
            for _, c in hopeful[keep:]:
                c.stopped = "halved out: another training lane predicted higher"
                self._note(c.name, "rung", c.stopped)
            progressed = False
            for _, c in hopeful[:keep]:
                last = c.rungs[-1]
                share = min(1.0, last.share * 2)
                if share > 0.75:
                    share = 1.0
                estimate = last.seconds * share / max(last.share, 1e-9)
                if not self.budget.fits(estimate):
                    c.stopped = (
                        f"budget: the next rung ({share:.0%} of the data, about "
                        f"{estimate / 60:.1f} min) does not fit in what is left"
                    )
                    self._note(c.name, "rung", c.stopped)
                    continue
                assert c.plan is not None
                plan = TrainingPlan(
                    share=share,
                    learning_rate=c.plan.learning_rate,
                    tokens_per_batch=c.plan.tokens_per_batch,
                    epochs=c.plan.epochs,
                    exclude=self.data.exclude,
                )
                rung = self.measure(PlannedLane(c.lane, plan), self.data.cases, "rung", plan)
                if isinstance(rung, str):
                    c.stopped = rung
                    self._note(c.name, "rung", f"failed: {rung}")
                    continue
                c.rungs.append(rung)
                self._record(rung, f"rung {len(c.rungs)}: {plan.label}")
                self._stop_if_too_slow(c, rung)
                progressed = True
            if not progressed:
                return

    def _first_rung(self, c: Candidate) -> None:
        """The first rung: the lane on its smallest share, once per setting of the grid."""
        n_rows = len([e for e in self.task.split("train") if e.id not in self.data.exclude])
        share = first_share(n_rows)
        best: Rung | None = None
        grid = self.grid
        sft = self.share_settings and _plain_sft(c.lane)
        if sft and self._sft_choice is not None and len(grid) > 1:
            source, chosen = self._sft_choice
            grid = [chosen]
            self._note(
                c.name,
                "rung",
                f"settings {chosen or 'of the task'} as chosen on {source}'s first rung (the "
                "same LoRA SFT on the same rows): the grid is not searched again",
            )
        tried: list[float] = []  # seconds of each setting measured
        for i, settings in enumerate(grid):
            plan = TrainingPlan(share=share, exclude=self.data.exclude, **settings)
            if best is None:
                estimate, how = self._first_estimate(c, n_rows * share, plan)
            else:  # another setting trains the same rows: as long as the slowest measured
                estimate, how = max(tried), "as long as the settings measured"
            if best is not None and not self.budget.fits(estimate):
                self._note(c.name, "rung", f"budget: setting {i + 1} ({plan.label}) not tried")
                break
            if best is None and not self.budget.fits(estimate):
                c.stopped = (
                    f"budget: even the first rung ({share:.0%} of the data, about "
                    f"{estimate / 60:.1f} min: {how}) does not fit"
                )
                self._note(c.name, "rung", c.stopped)
                return
            rung = self.measure(PlannedLane(c.lane, plan), self.data.cases, "rung", plan)
            if isinstance(rung, str):
                c.stopped = rung
                self._note(c.name, "rung", f"failed: {rung}")
                return
            self._record(rung, f"rung 1, setting {i + 1} of {len(grid)}: {plan.label}")
            tried.append(rung.seconds)
            if best is None or rung.value > best.value:
                best = rung
            if i == 0 and self._stop_if_too_slow(c, rung):  # a learning rate won't make it fast
                c.rungs.append(rung)
                c.plan = rung.plan
                return
        if best is not None:
            c.rungs.append(best)
            c.plan = best.plan
            if sft and self._sft_choice is None and len(grid) > 1:
                assert best.plan is not None
                self._sft_choice = (c.name, best.plan.settings())

    def _first_estimate(self, c: Candidate, rows: float, plan: TrainingPlan) -> tuple[float, str]:
        """Seconds a lane's first rung may take, before it trained, and how that was reckoned:
        its training tokens over a throughput, plus scoring the decision cases.

        A compound row is the prompt of the rag lane it trains on (rag/demos; rag for free
        text) without the output contract, with its answer: its tokens are that lane's
        measured prompt and answer tokens per case, less the contract's (banking77's 77-label
        list is two thirds of a rag/demos prompt; rag's passage prompts hold none), when the
        cheap stage measured it; and a compound rung trains on at most its share of
        `compound.max_train_rows` prompts, as `apply_plan` cuts them (that share of them when
        the task has no train split and they are synthesised from its documents). Another
        row is about `TOKENS_PER_ROW`. The throughput is the training tokens/s of the rungs
        this decision already trained, else `THROUGHPUT_GUESS` for the CPU (bf16 or fp32).
        Scoring takes the per-case time of that rag lane, or of the fastest model-calling cheap
        lane (a fine-tuned lane reads a short prompt)."""
        finetune = self.task.spec.finetune
        epochs = plan.epochs or finetune.epochs
        measured = [r for x in self.candidates if not x.trains for r in x.rungs]
        like = [r for r in measured if r.lane == self._rows_like(c) and r.tokens_per_case > 0]
        per_row = like[-1].tokens_per_case if like else TOKENS_PER_ROW
        if c.family == "compound":  # without a train split it trains on synthesised pairs
            cap = math.ceil(plan.share * self.task.spec.compound.max_train_rows)
            rows = min(rows, cap) if rows else cap
            if like and self._rows_like(c) == "rag/demos":  # passage prompts hold no contract
                per_row = max(per_row - self._contract_tokens(), TOKENS_PER_ROW / 2)
        trained = [r for x in self.candidates for r in x.rungs if r.train_seconds > 0]
        if trained:
            seconds = sum(r.train_seconds for r in trained)
            throughput = sum(r.train_tokens for r in trained) / seconds
            source = "measured on the rungs trained so far"
        else:
            from compoundai.hardware import cpu_has_bf16

            kind = "bf16" if cpu_has_bf16() else "fp32"
            throughput, source = THROUGHPUT_GUESS[kind], f"a guess for {kind}"
        calling = [r.per_case_ms for r in measured if r.per_case_ms > 1]
        per_case_ms = like[-1].per_case_ms if like else min(calling, default=500.0)
        n = len(self.data.cases)
        train = rows * per_row * epochs / max(throughput, 1.0)
        how = (
            f"{rows:.0f} rows x {per_row:.0f} tokens x {epochs:g} epochs at {throughput:.0f} "
            f"tokens/s ({source}), then {n} cases x {per_case_ms / 1000:.1f} s"
        )
        return train + per_case_ms / 1000 * n, how

    def _contract_tokens(self) -> int:
        """Tokens the output contract adds to a prompt's system message, in the generator's
        own count: its tokenizer, or words for a generator without one (the test fakes count
        words)."""
        from compoundai.lanes.prompt import contract_of

        text = "\n\n" + contract_of(self.task).describe()
        injected = self.ctx.clients.get("generator")
        tokenizer = getattr(injected, "tokenizer", None)
        if injected is not None and tokenizer is None:
            return len(text.split())
        if tokenizer is None:
            from transformers import AutoTokenizer

            from compoundai.models import ModelStore

            try:
                path = ModelStore(self.ctx).resolve(self.task.spec.models.generator)
                tokenizer = AutoTokenizer.from_pretrained(path)
            except (OSError, CompoundAIError):  # an estimate: words will do
                return len(text.split())
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def _rows_like(self, c: Candidate) -> str | None:
        """The cheap lane whose prompts a training lane's rows are (compound: its rag lane)."""
        if c.family != "compound":
            return None
        return "rag" if self.task.spec.output.type == "free_text" else "rag/demos"

    def _leader_value(self) -> float:
        scored = [
            c
            for c in self.candidates
            if c.rungs and not (c.stopped and not c.trains) and not c.too_slow
        ]
        values = [self.curves.predict(c)[0] for c in scored]
        finite = [v for v in values if np.isfinite(v)]
        return max(finite) if finite else float("-inf")


def _plain_sft(lane: Lane) -> bool:
    """Whether a lane trains by LoRA SFT alone on the task's rows (its settings transfer)."""
    if lane.family == "compound":
        return True
    return lane.family == "finetune" and tuple(getattr(lane, "stages", ("sft",))) == ("sft",)


def decide_measured(task: Task, ctx: RunContext, **options: Any) -> Decision:
    """The measured decision (see the module docstring).

    >>> decide_measured(task, ctx, budget_minutes=5).plan   # doctest: +SKIP
    'rag'
    """
    return BakeOff(task, ctx, **options).run()
