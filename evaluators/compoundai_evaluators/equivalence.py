"""Ties and the decision check: when is a lane as good as the winner, and was the plan right?

Why a module of its own: "tied" is the notion every conclusion of a report rests on (the lanes
listed with the winner, the cheapest of them, whether the router's plan counts as right), and it
is a stated rule, not "the interval contains 0": the regret (winner minus lane on the primary
metric) is at most an equivalence margin (0.02 by default) and its paired interval either
reaches 0 or lies within the margin. `versus` holds the winner's comparisons with every other
lane, Holm-adjusted as one family; `plan_check` turns the comparison with the plan's lane into
`matched`, `tied` or `wrong` with the regret and its interval.
"""

from __future__ import annotations

from collections.abc import Sequence

from compoundai_evaluators.report import (
    DecisionCheck,
    Difference,
    Interval,
    LaneResult,
    VersusWinner,
    find_difference,
    p_value,
)
from compoundai_evaluators.stats import holm

MARGIN = 0.02  # equivalence margin on the primary metric
VOLUME = 100_000  # cases training cost is amortised over
ALPHA = 0.05


def is_tied(regret: float, ci_low: float, ci_high: float, margin: float = MARGIN) -> bool:
    """Whether a lane is tied with the winner: regret (winner minus lane) at most `margin`, and
    its interval reaching 0 or lying within the margin.

    >>> is_tied(0.007, -0.03, 0.05), is_tied(0.10, -0.001, 0.21), is_tied(0.015, 0.01, 0.019)
    (True, False, True)
    """
    return regret <= margin + 1e-12 and (ci_low <= 0 or ci_high <= margin + 1e-12)


def amortised_usd(lane: LaneResult) -> float:
    """$ per 1,000 cases with training and build cost spread over the stated volume."""
    cost = lane.cost
    if "usd_per_1k_amortised" in cost:
        return float(cost["usd_per_1k_amortised"])
    volume = float(cost.get("volume") or VOLUME)
    return (
        float(cost.get("usd_per_1k_cases", 0.0))
        + 1000 * float(cost.get("usd_training", 0.0)) / volume
    )


def versus(
    best: str,
    others: Sequence[str],
    differences: Sequence[Difference],
    metric: str,
    margin: float = MARGIN,
    alpha: float = ALPHA,
) -> list[VersusWinner]:
    """`best` minus each of `others` on `metric`, Holm-adjusted within this family."""
    diffs = [(o, find_difference(differences, best, o, metric)) for o in others]
    found = [(o, d) for o, d in diffs if d is not None]
    adjusted = holm([p_value(d) for _, d in found])
    return [
        VersusWinner(
            lane=o,
            value=d.value,
            ci_low=d.ci_low,
            ci_high=d.ci_high,
            n=d.compared,
            p_value=p_value(d),
            p_holm=p_adj,
            clearly_worse=bool(p_adj < alpha and d.value > 0),
            tied=is_tied(d.value, d.ci_low, d.ci_high, margin),
        )
        for (o, d), p_adj in zip(found, adjusted, strict=True)
    ]


def plan_check(
    plan: str,
    chosen: str | None,
    winner: str | None,
    lanes: Sequence[LaneResult],
    differences: Sequence[Difference],
    metric: str,
    margin: float = MARGIN,
    excluded: dict[str, str] | None = None,
) -> DecisionCheck:
    """The router's plan, built as lane `chosen`, against the measured `winner` (the best lane
    among those that meet the task's constraints). A plan whose lane breaks a constraint on
    these cases (`excluded`, with why) is `wrong` however well it scores: the decision
    promised a lane within the constraints."""
    check = DecisionCheck(
        plan=plan, chosen_lane=chosen, winner=winner, outcome=None, margin=margin, metric=metric
    )
    scored = {r.name for r in lanes if r.status == "ok" and metric in r.metrics}
    if winner is None:
        check.note = "no lane was scored"
        return check
    if chosen is None or chosen not in scored:
        check.note = (
            f"the plan's lane `{chosen}` was not scored in this run, so the plan cannot be checked"
        )
        return check
    if chosen == winner:
        check.outcome = "matched"
        check.regret = Interval(value=0.0, ci_low=0.0, ci_high=0.0)
        check.n = next(r.metrics[metric].n for r in lanes if r.name == winner)
        check.note = f"the plan's lane `{chosen}` is the measured winner"
        return check
    d = find_difference(differences, winner, chosen, metric)
    if d is None:
        check.note = f"no paired difference of `{winner}` and `{chosen}` on {metric}"
        return check
    check.regret = Interval(value=d.value, ci_low=d.ci_low, ci_high=d.ci_high)
    check.n = d.compared
    shown = d.signed()
    why = (excluded or {}).get(chosen)
    if why:
        check.outcome = "wrong"
        check.note = (
            f"the plan's lane `{chosen}` breaks the task's constraints on these cases ({why}); "
            f"the winner among the lanes that meet them is `{winner}` (winner minus plan "
            f"{shown} on {metric})"
        )
        return check
    if is_tied(d.value, d.ci_low, d.ci_high, margin):
        check.outcome = "tied"
        check.note = (
            f"the plan's lane `{chosen}` trails the winner `{winner}` by {shown} on {metric}, "
            f"within the {margin:g} margin"
        )
    else:
        check.outcome = "wrong"
        check.note = (
            f"the plan's lane `{chosen}` trails the winner `{winner}` by {shown} on {metric}, "
            f"beyond the {margin:g} margin"
        )
    return check
