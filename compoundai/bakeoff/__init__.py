"""Deciding by measuring: a budgeted bake-off of the lanes on the dev split.

Why: the rules (`compoundai.router`) follow the field's rules of thumb, and on this stack they
matched the measured winner on none of the four bundled examples. So the decision is a
measurement, and the rules only say which lanes are feasible and in what order to try them.
No tool in the field does this across prompting, RAG and fine-tuning; the search is
successive halving (Jamieson & Talwalkar 2016; Hyperband, Li et al. 2018) on two axes:

1. **rules**: the feasible lanes and variants (no retrieval without documents or examples, no
   training without rows, DPO only with pairs) and the rules' prior order, with their reasons.
2. **cheap lanes** (nothing to train): every variant on a small stratified sample of the dev
   cases, then the ones not clearly behind the leader (the paired interval of leader minus
   lane lies above the margin) on the whole decision sample. When the task caps p95 latency,
   each first answers 8 of them, and a lane whose median case is over the cap (so its p95 is
   too) stops there, so the minutes go to the training lanes; the same rule stops a training
   lane after a rung.
3. **training lanes on slices**: each training variant trained on a share of its data (the
   first rung; two settings of learning rate and optimizer steps are tried there and the better
   one kept), scored on the same dev cases; a lane whose predicted full-data score can still
   reach the leader gets the next rung (twice the data), at most half of them per round, while
   the budget lasts. The prediction is a line through the rungs' scores against log2(data
   share), read at share 1, with a paired bootstrap interval (every resample of the dev cases
   refits the line); with one rung it is that rung's score and interval, no extrapolation.
4. **choose**: among lanes that meet the task's constraints (p95 latency, budget, local-only),
   the cheapest (per-case cost plus training cost spread over `volume` cases) whose dev score
   is tied with the best within the equivalence margin (`equivalence.is_tied`, the same rule
   the reports judge by).

Every measurement goes into `Decision.evidence`. The held-out cases are the dev split, or,
without one, a stratified slice of train that training then leaves out (said in the decision).
The test split is never read here. Rung adapters are cached by content, so `run` reuses them
instead of training again (`compoundai.lanes.rungs`).
"""

from compoundai.bakeoff.data import (
    DecisionData,
    decision_data,
    decision_metric,
    needs_for_measuring,
)
from compoundai.bakeoff.parts import Budget, Candidate, Rung, default_grid, first_share, infeasible
from compoundai.bakeoff.search import BakeOff, decide_measured

__all__ = [
    "BakeOff",
    "Budget",
    "Candidate",
    "DecisionData",
    "Rung",
    "decide_measured",
    "decision_data",
    "decision_metric",
    "default_grid",
    "first_share",
    "infeasible",
    "needs_for_measuring",
]
