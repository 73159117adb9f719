"""The reward-hacking guard: stop a run whose reward rises while what it is for falls.

Why it exists: an RL-style stage (DPO, a reward model, GRPO, PPO) optimises a proxy, a reward
or a preference margin, and a proxy can be gamed: a reward that pays for length is maximised by
padding answers, a reward model can learn "the longer answer wins" instead of "the better answer
wins". The training loss cannot see this, because it *is* the proxy. What can see it is a
metric the policy is not trained on (the task's primary metric on dev, accuracy on held-out
pairs, an independent judge) and the distance from the reference model (KL): the background
article names reward hacking as the risk of these stages, and the sign is the reward still
climbing while the held-out metric falls, or the policy drifting far from the reference.

So the guard reads per-step (or per-evaluation) logs of reward, KL and a held-out metric and
returns a verdict: `ok`, or `flagged` with the reason and the step, when
- over the last `window` points that have both a reward and a held-out value, the reward's
  least-squares slope is positive and its net rise over `min_reward_rise` while the held-out
  metric's slope is negative and its net fall over `min_heldout_drop`; or
- the KL leaves the stated bound `kl_max`.
The first flag is kept (later points do not un-flag a run). `trainer_callback` wraps the same
guard as a transformers `TrainerCallback`, so a TRL trainer stops (`should_training_stop`)
when it flags; our own loop calls `observe` after each step. Either way the stage writes the
`GuardReport` (settings, verdict, the three curves) into the adapter manifest.

    >>> g = RewardHackingGuard(GuardSettings(window=3))
    >>> for step, (r, h) in enumerate([(1, 0.8), (2, 0.7), (3, 0.6)], 1):
    ...     v = g.observe(step, reward=r, heldout=h)
    >>> v.status, v.step
    ('flagged', 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from compoundai.config import Strict


class GuardSettings(Strict):
    """When a run is flagged (and, with `stop`, stopped). See the module docstring."""

    window: int = Field(4, ge=2, description="Points (with reward and held-out) in the trend.")
    min_reward_rise: float = Field(0.0, ge=0)
    min_heldout_drop: float = Field(0.0, ge=0)
    kl_max: float | None = Field(None, gt=0, description="Flag when the KL exceeds this.")
    stop: bool = Field(True, description="Stop training when flagged (else only record it).")


class GuardVerdict(Strict):
    status: Literal["ok", "flagged"] = "ok"
    reason: str | None = None
    step: int | None = None
    points: int = 0
    trend_points: int = 0  # points with both a reward and a held-out value
    window: int = 0  # below this many trend points the trend was not judged (KL still was)

    @property
    def flagged(self) -> bool:
        return self.status == "flagged"


class GuardReport(Strict):
    """What the manifest records: the settings, the verdict and the curves it was judged on."""

    settings: GuardSettings
    verdict: GuardVerdict
    reward_name: str
    kl_name: str | None = None
    heldout_name: str | None = None
    steps: list[int] = Field(default_factory=list)
    reward: list[float | None] = Field(default_factory=list)
    kl: list[float | None] = Field(default_factory=list)
    heldout: list[float | None] = Field(default_factory=list)


@dataclass(frozen=True)
class GuardPoint:
    step: int
    reward: float | None = None
    kl: float | None = None
    heldout: float | None = None


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys on xs (0 for a single point)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def judge(points: Sequence[GuardPoint], settings: GuardSettings) -> GuardVerdict:
    """The verdict on a whole log: the first point at which the run is flagged, or ok.

    >>> s = GuardSettings(window=2, kl_max=5.0)
    >>> judge([GuardPoint(1, kl=1.0), GuardPoint(2, kl=6.0)], s).reason
    'KL 6 left the bound 5 at step 2'
    """
    trend: list[GuardPoint] = []
    both = sum(p.reward is not None and p.heldout is not None for p in points)
    counts = {"trend_points": both, "window": settings.window}
    for n, p in enumerate(points, 1):
        if settings.kl_max is not None and p.kl is not None and p.kl > settings.kl_max:
            reason = f"KL {p.kl:.3g} left the bound {settings.kl_max:g} at step {p.step}"
            return GuardVerdict(status="flagged", reason=reason, step=p.step, points=n, **counts)
        if p.reward is None or p.heldout is None:
            continue
        trend = [*trend, p][-settings.window :]
        if len(trend) < settings.window:
            continue
        steps = [float(q.step) for q in trend]
        rewards = [float(q.reward) for q in trend if q.reward is not None]
        heldout = [float(q.heldout) for q in trend if q.heldout is not None]
        rise, drop = rewards[-1] - rewards[0], heldout[0] - heldout[-1]
        if (
            slope(steps, rewards) > 0
            and slope(steps, heldout) < 0
            and rise > settings.min_reward_rise
            and drop > settings.min_heldout_drop
        ):
            reason = (
                f"reward rose {rise:+.3g} over steps {trend[0].step}-{p.step} while the "
                f"held-out metric fell {-drop:+.3g}: the proxy is being gamed"
            )
            return GuardVerdict(status="flagged", reason=reason, step=p.step, points=n, **counts)
    return GuardVerdict(points=len(points), **counts)


class RewardHackingGuard:
    """The guard fed one point at a time (our loop) or from a trainer's logs (TRL)."""

    def __init__(
        self,
        settings: GuardSettings,
        *,
        reward_name: str = "reward",
        kl_name: str | None = None,
        heldout_name: str | None = None,
    ) -> None:
        self.settings = settings
        self.names = (reward_name, kl_name, heldout_name)
        self.points: list[GuardPoint] = []
        self.verdict = GuardVerdict()
        self.keys: tuple[str, str | None, str | None] = ("reward", None, None)
        self.last_reward: float | None = None

    def observe(
        self,
        step: int,
        reward: float | None = None,
        kl: float | None = None,
        heldout: float | None = None,
    ) -> GuardVerdict:
        """Add a point; the verdict so far (the first flag is kept)."""
        self.points.append(GuardPoint(step, reward, kl, heldout))
        if not self.verdict.flagged:
            self.verdict = judge(self.points, self.settings)
        else:
            self.verdict = self.verdict.model_copy(update={"points": len(self.points)})
        return self.verdict

    @property
    def should_stop(self) -> bool:
        return self.verdict.flagged and self.settings.stop

    def report(self) -> GuardReport:
        reward_name, kl_name, heldout_name = self.names
        return GuardReport(
            settings=self.settings,
            verdict=self.verdict,
            reward_name=reward_name,
            kl_name=kl_name,
            heldout_name=heldout_name,
            steps=[p.step for p in self.points],
            reward=[p.reward for p in self.points],
            kl=[p.kl for p in self.points],
            heldout=[p.heldout for p in self.points],
        )

    def observe_log(self, step: int, logs: dict[str, Any]) -> None:
        """A point from one trainer log (keys set by `trainer_callback`). Training logs carry
        the reward (and KL), evaluation logs the held-out metric, so a point takes the latest
        reward logged before it."""
        reward_key, heldout_key, kl_key = self.keys
        reward = _number(logs.get(reward_key))
        if reward is not None:
            self.last_reward = reward
        heldout = _number(logs.get(heldout_key)) if heldout_key else None
        kl = _number(logs.get(kl_key)) if kl_key else None
        if reward is not None or heldout is not None or kl is not None:
            self.observe(step, self.last_reward, kl, heldout)

    def replayed(self, history: Sequence[dict[str, Any]]) -> RewardHackingGuard:
        """A fresh guard with the same settings fed a whole `log_history` (a resumed run's
        includes the steps before the kill)."""
        reward_name, kl_name, heldout_name = self.names
        fresh = RewardHackingGuard(
            self.settings, reward_name=reward_name, kl_name=kl_name, heldout_name=heldout_name
        )
        fresh.keys = self.keys
        for logs in history:
            fresh.observe_log(int(logs.get("step", 0)), logs)
        return fresh

    def trainer_callback(
        self, reward_key: str, heldout_key: str | None = None, kl_key: str | None = None
    ) -> Any:
        """This guard as a transformers `TrainerCallback`: each `on_log` is a point
        (`observe_log`), and a flag stops the Trainer (`control.should_training_stop`)."""
        from transformers import TrainerCallback

        self.keys = (reward_key, heldout_key, kl_key)
        guard = self

        class RewardHackingCallback(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any):
                guard.observe_log(state.global_step, logs or {})
                if guard.should_stop:
                    control.should_training_stop = True
                return control

        return RewardHackingCallback()


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
