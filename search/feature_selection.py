"""Which cheap proxies the combined accuracy estimate should use, within a cost budget, and an
honest score for that choice.

The estimate (:class:`search.accuracy_model.AccuracyEstimate`) always sees the architecture;
proxies are added greedily, each time the one that most raises the leave-one-out Spearman of
the estimate (closed form at the fitted hyperparameters,
:meth:`~search.accuracy_model.AccuracyEstimate.loo_at_fitted`), among those that keep the
summed cost within ``budget``; it stops when no addition helps. Choosing features on the same
students the choice is scored on flatters it, so :func:`nested_loo` makes the choice again
without each held-out student and predicts that student with the features chosen without it:
the score a new student would see.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from measurements.errors import InputError

from .accuracy_model import AccuracyEstimate
from .space import Candidate, SearchSpace

__all__ = ["select_features", "nested_loo", "NestedLoo"]


def _spearman(pred: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(pred) == 0:
        return -1.0
    return float(stats.spearmanr(pred, y).statistic)


def select_features(records: Sequence[Mapping], space: SearchSpace, candidates: Sequence[str],
                    cost: Mapping[str, float], budget: float, *, target: str = "stsb",
                    seed: int = 0) -> tuple[str, ...]:
    """Greedy forward selection of proxies under a summed-cost budget (module docstring).
    ``cost``: each candidate's cost, in the budget's units."""
    unknown = [c for c in candidates if c not in cost]
    if unknown:
        raise InputError(f"no cost for proxy/proxies {unknown}: every candidate needs one")
    y = np.array([float(r["values"][target]) for r in records])

    def score(feats):
        est = AccuracyEstimate(tuple(feats), space, target, seed).fit(records)
        return _spearman(est.loo_at_fitted(), y)
    chosen: list[str] = []
    best = score(chosen)
    while True:
        spent = sum(cost[c] for c in chosen)
        options = [c for c in candidates if c not in chosen and spent + cost[c] <= budget]
        if not options:
            break
        scored = [(score([*chosen, c]), c) for c in options]
        s, c = max(scored, key=lambda sc: sc[0])
        if s <= best + 1e-9:
            break
        chosen.append(c)
        best = s
    return tuple(chosen)


@dataclasses.dataclass(frozen=True)
class NestedLoo:
    pred: np.ndarray                  # each student predicted without itself, by its fold's
    sd: np.ndarray                    # features
    features: list[tuple[str, ...]]   # the features chosen without each student
    cost: np.ndarray                  # their summed cost for that student

    def to_dict(self) -> dict:
        from collections import Counter
        return {"pred": self.pred.tolist(), "sd": self.sd.tolist(),
                "features_by_fold": [list(f) for f in self.features],
                "feature_sets": {"+".join(k) or "(architecture only)": v for k, v in
                                 Counter(self.features).most_common()}}


def nested_loo(records: Sequence[Mapping], space: SearchSpace, candidates: Sequence[str],
               cost_of: Sequence[Mapping[str, float]], budget: float, *, target: str = "stsb",
               seed: int = 0) -> NestedLoo:
    """Leave-one-out with the feature selection inside each fold. ``cost_of[i]``: each
    candidate's cost for student ``i``; the selection in fold ``i`` uses the median over the
    other students."""
    n = len(records)
    if len(cost_of) != n:
        raise InputError(f"{len(cost_of)} cost rows for {n} students")
    pred, sd, cost, chosen = np.zeros(n), np.zeros(n), np.zeros(n), []
    for i in range(n):
        rest = [r for j, r in enumerate(records) if j != i]
        typical = {c: float(np.median([cost_of[j][c] for j in range(n) if j != i]))
                   for c in candidates}
        feats = select_features(rest, space, candidates, typical, budget, target=target,
                                seed=seed)
        est = AccuracyEstimate(feats, space, target, seed + i).fit(rest)
        m, s = est.predict([records[i]["values"]], [Candidate.from_dict(records[i]["x"])])
        pred[i], sd[i] = m[0], s[0]
        cost[i] = sum(cost_of[i][c] for c in feats)
        chosen.append(feats)
    return NestedLoo(pred, sd, chosen, cost)
