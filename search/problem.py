"""The search over students as a pymoo problem.

Variables are the space's dimensions (ordinal ``Integer`` indices, categorical ``Choice``\\ s);
objectives are :mod:`search.objectives` adapters, named and typed (accuracy maximised, latency
and parameters minimised, latency on the log scale). Cheap objectives (predicted latency,
parameters) are declared to the search loop so it evaluates them inside the acquisition
instead of modelling them; only the candidates the acquisition selects are measured or
distilled. With a measured latency and a predictor beside it, the predictor's log latency is
the measured objective's *baseline*: the GP models log(measured / predicted) over the space
(the latency residual) and the acquisition uses the calibrated latency with its uncertainty.

Constraints: ``max_latency_ms`` (on the first latency objective) and ``max_params_m``. A
predicted latency is uncertain: with ``latency_bound="upper"`` the budget applies to the upper
end of the prediction's 90% interval (:mod:`perfmodel.intervals`; nominally 95% one-sided), so a
feasible student meets the budget on this machine with that confidence, not on average.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from pymoo.core.problem import Problem
from pymoo.core.variable import Choice, Integer

from distill import Workload
from measurements.errors import InputError

from .objectives import Evaluation, MeasuredLatency, Objective, Parameters, PredictedLatency
from .space import Candidate, SearchSpace

__all__ = ["StudentProblem", "LATENCY_BOUNDS", "budgeted_latency"]

# what ``max_latency_ms`` applies to: the predicted latency, or its 90% interval's upper end
LATENCY_BOUNDS = ("predicted", "upper")


def budgeted_latency(e: Evaluation, bound: str = "predicted") -> float:
    """The latency a budget applies to (ms): the evaluated value, or with ``bound="upper"`` the
    upper end of its prediction interval (``e.detail["interval_ms"]``)."""
    if bound == "predicted":
        return e.value
    if "interval_ms" not in e.detail:    # PredictedLatency records finite intervals only
        raise InputError(f"{e.name}: this prediction has no interval, so --latency-bound "
                         f"upper cannot apply the budget to it")
    return float(e.detail["interval_ms"][1])


class StudentProblem(Problem):
    def __init__(self, space: SearchSpace, objectives: Sequence[Objective], workload: Workload,
                 *, baseline: PredictedLatency | None = None,
                 max_latency_ms: float | None = None, max_params_m: float | None = None,
                 latency_bound: str = "predicted"):
        if len(objectives) < 2:
            raise InputError("a search needs at least two objectives (e.g. accuracy and "
                             "latency)")
        names = [o.name for o in objectives]
        if len(set(names)) != len(names):
            raise InputError(f"objectives repeat a name: {names}")
        self.space, self.objectives, self.workload = space, list(objectives), workload
        self.max_latency_ms, self.max_params_m = max_latency_ms, max_params_m
        lat = [i for i, o in enumerate(self.objectives) if "latency" in o.name]
        if max_latency_ms is not None and not lat:
            raise InputError("--max-latency-ms needs a latency objective (--target)")
        self._lat = lat[0] if lat else None
        if latency_bound not in LATENCY_BOUNDS:
            raise InputError(f"--latency-bound {latency_bound!r}: expected one of "
                             f"{', '.join(LATENCY_BOUNDS)}")
        if latency_bound == "upper":
            if max_latency_ms is None:
                raise InputError("--latency-bound upper bounds the --max-latency-ms budget: "
                                 "give --max-latency-ms too")
            o = self.objectives[self._lat]
            if not isinstance(o, PredictedLatency):
                raise InputError(f"--latency-bound upper needs a predicted latency with its "
                                 f"interval; {o.name} is {o.provenance}: use --latency "
                                 f"predicted, or --latency-bound predicted")
            if not o.has_intervals:
                raise InputError(f"--latency-bound upper: the latency model for {o.target} "
                                 f"gives no prediction intervals (analytic, or fitted before "
                                 f"intervals were recorded): fit one with `hwdistill fit`, or "
                                 f"use --latency-bound predicted")
        self.latency_bound = latency_bound
        self._params = Parameters()
        self.baseline = baseline
        self.baseline_objectives = ()
        if baseline is not None:
            meas = [i for i, o in enumerate(self.objectives) if isinstance(o, MeasuredLatency)]
            if not meas:
                raise InputError("a latency baseline needs a measured latency objective")
            self.baseline_objectives = tuple(meas[:1])
        self.cheap_objectives = tuple(i for i, o in enumerate(self.objectives) if o.cheap)
        vars_ = {}
        for name, opts in space.dims:
            vars_[name] = (Choice(options=list(opts)) if space.categorical(name)
                           else Integer(bounds=(0, len(opts) - 1)))
        n_con = int(max_latency_ms is not None) + int(max_params_m is not None)
        super().__init__(vars=vars_, n_obj=len(self.objectives), n_ieq_constr=n_con)

    # -- what an evaluation job needs (for the executors) ----------------------------------------
    @property
    def exclusive(self) -> bool:
        """A timing among the expensive objectives: the job needs the host to itself."""
        return any(o.exclusive for o in self.objectives if not o.cheap)

    @property
    def job_fingerprint(self) -> str | None:
        """The hardware a measured objective must run on (a result from elsewhere is refused)."""
        ids = {o.fingerprint.id for o in self.objectives if isinstance(o, MeasuredLatency)}
        return ids.pop() if len(ids) == 1 else None

    @property
    def job_resources(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for o in self.objectives:
            if not o.cheap:
                for k, v in o.resources.items():
                    out[k] = max(out.get(k, 0), v)
        return out or {"num_cpus": 1}

    # -- rows (pymoo dicts) <-> candidates -----------------------------------------------------
    def index_vector(self, row: dict) -> np.ndarray:
        return np.array([opts.index(row[n]) if self.space.categorical(n) else int(row[n])
                         for n, opts in self.space.dims])

    def row(self, x: Sequence[int]) -> dict:
        return {n: (opts[int(i)] if self.space.categorical(n) else int(i))
                for (n, opts), i in zip(self.space.dims, x)}

    def candidate(self, row: dict) -> Candidate:
        return self.space.decode(self.index_vector(row))

    def row_of(self, cand: Candidate) -> dict:
        return self.row(self.space.encode(cand))

    def repair(self, X):
        """Each row -> the row of a valid candidate (:meth:`SearchSpace.repair`)."""
        return np.array([self.row(self.space.repair(self.index_vector(r))) for r in X],
                        dtype=object)

    # -- cheap parts (inside the acquisition) --------------------------------------------------
    def evaluate_cheap(self, X) -> np.ndarray:
        cands = [self.candidate(r) for r in X]
        cols = [self.objectives[j].to_search(self.objectives[j].evaluate_many(
            cands, self.workload)) for j in self.cheap_objectives]
        return np.column_stack(cols) if cols else np.zeros((len(cands), 0))

    def evaluate_baseline(self, X) -> np.ndarray:
        cands = [self.candidate(r) for r in X]
        return np.log(self.baseline.evaluate_many(cands, self.workload))[:, None]

    # -- the expensive evaluation --------------------------------------------------------------
    def evaluate_candidate(self, cand: Candidate) -> tuple[np.ndarray, np.ndarray, dict]:
        """(F as minimised, G, provenance) of one candidate, every objective evaluated."""
        evals: list[Evaluation] = [o.evaluate(cand, self.workload) for o in self.objectives]
        F = np.array([o.to_search(e.value) for o, e in zip(self.objectives, evals)], float)
        G = []
        if self.max_latency_ms is not None:
            G.append(budgeted_latency(evals[self._lat], self.latency_bound) - self.max_latency_ms)
        if self.max_params_m is not None:
            G.append(self._params._count(cand) - self.max_params_m)
        detail = {"candidate": cand.describe(),
                  "values": {e.name: e.value for e in evals},
                  "provenance": {e.name: e.provenance for e in evals},
                  "costs_s": {e.name: e.cost_s for e in evals},
                  "detail": {e.name: e.detail for e in evals if e.detail}}
        if self.baseline is not None:
            detail["baseline_ms"] = float(self.baseline.evaluate(cand, self.workload).value)
        return F, np.array(G, float), detail

    def evaluate_trial(self, X) -> tuple[np.ndarray, np.ndarray, dict]:
        return self.evaluate_candidate(self.candidate(X[0]))

    def _evaluate(self, X, out, *args, **kwargs):
        res = [self.evaluate_candidate(self.candidate(r)) for r in X]
        out["F"] = np.array([r[0] for r in res])
        if self.n_ieq_constr:
            out["G"] = np.array([r[1] for r in res])

    def describe(self) -> dict[str, Any]:
        return {"space": self.space.to_dict(), "workload": self.workload.to_dict(),
                "objectives": [o.describe() for o in self.objectives],
                "baseline": None if self.baseline is None else self.baseline.describe(),
                "max_latency_ms": self.max_latency_ms, "max_params_m": self.max_params_m,
                # only when not the default: a run recorded before the option resumes as it was
                **({"latency_bound": self.latency_bound}
                   if self.latency_bound != "predicted" else {})}

    def values(self, F: np.ndarray) -> np.ndarray:
        """Minimised objective rows -> the objectives' own units (ms, Spearman, M)."""
        F = np.atleast_2d(F)
        return np.column_stack([o.from_search(F[:, j]) for j, o in enumerate(self.objectives)])

