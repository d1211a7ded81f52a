"""The combined accuracy estimate: a GP (our kernel) from cheap proxies and the architecture to
the accuracy of a fully distilled student, fitted on a proxy study's students.

Features are the named proxies (log-scaled when positive and spanning more than 20x, then
min-max scaled on the training students) and the candidate's index vector (scaled to [0, 1];
categorical dimensions as codes under the Hamming kernel). ``predict`` gives a mean and a
standard deviation (observation noise included), which the search reads as its accuracy
objective with an uncertainty. ``loo`` is the leave-one-out evaluation the proxy study reports.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from scipy import linalg

from measurements.errors import InputError

from .gp import GP, fit_gp
from .space import Candidate, SearchSpace

__all__ = ["AccuracyEstimate"]


@dataclasses.dataclass
class AccuracyEstimate:
    features: tuple[str, ...]
    space: SearchSpace
    target: str = "stsb"
    seed: int = 0
    _log: np.ndarray | None = None
    _lo: np.ndarray | None = None
    _hi: np.ndarray | None = None
    _gp: GP | None = None
    _records: list | None = None

    # -- design matrix ---------------------------------------------------------------------------
    def _raw(self, proxies: Sequence[Mapping[str, float]], cands: Sequence[Candidate]):
        missing = [f for f in self.features if any(f not in p for p in proxies)]
        if missing:
            raise InputError(f"proxy value(s) {missing} missing: the estimate was fitted on "
                             f"{list(self.features)}")
        P = np.array([[float(p[f]) for f in self.features] for p in proxies], float)
        P = P.reshape(len(cands), len(self.features))
        A = np.array([self.space.encode(c) for c in cands], float).reshape(len(cands), -1)
        return P, A

    def _design(self, P: np.ndarray, A: np.ndarray) -> np.ndarray:
        P = np.where(self._log, np.log(np.maximum(P, 1e-300)), P)
        X = np.hstack([P, A])
        span = np.where(self._hi > self._lo, self._hi - self._lo, 1.0)
        Z = (X - self._lo) / span
        cat = self._cat_dims()
        Z[:, cat] = A[:, [c - P.shape[1] for c in cat]]      # categorical: raw codes
        return Z

    def _cat_dims(self) -> list[int]:
        k = len(self.features)
        return [k + i for i, n in enumerate(self.space.names) if self.space.categorical(n)]

    # -- fit / predict ---------------------------------------------------------------------------
    def fit(self, records: Sequence[Mapping]) -> "AccuracyEstimate":
        """``records``: dicts with ``x`` (a candidate dict) and ``values`` (the proxies and the
        target, e.g. ``stsb``), as the proxy study stores its students."""
        if len(records) < 3:
            raise InputError(f"{len(records)} students cannot fit an estimate; run the proxy "
                             "study further (benchmarks/proxy_study.py)")
        cands = [Candidate.from_dict(r["x"]) for r in records]
        P, A = self._raw([r["values"] for r in records], cands)
        y = np.array([float(r["values"][self.target]) for r in records])
        self._log = np.array([bool(np.all(P[:, j] > 0) and P[:, j].max() / P[:, j].min() > 20)
                              for j in range(P.shape[1])])
        Pl = np.where(self._log, np.log(np.maximum(P, 1e-300)), P)
        X = np.hstack([Pl, A])
        self._lo, self._hi = X.min(axis=0), X.max(axis=0)
        self._records = [dict(x=r["x"], values={k: r["values"][k] for k in
                                                (*self.features, self.target)})
                         for r in records]
        self._gp = fit_gp(self._design(P, A), y, cat_dims=tuple(self._cat_dims()),
                          seed=self.seed, n_restarts=2)
        return self

    def predict(self, proxies: Sequence[Mapping[str, float]], cands: Sequence[Candidate]):
        """(mean, sd) of the target for candidates with these proxy values."""
        if self._gp is None:
            raise InputError("the estimate is not fitted: call fit() or load()")
        m, v = self._gp.predict(self._design(*self._raw(proxies, cands)),
                                observation_noise=True)
        return m, np.sqrt(v)

    def loo(self, records: Sequence[Mapping]) -> dict:
        """Leave-one-out predictions on ``records`` (each fitted without its own student)."""
        pred, sd = np.zeros(len(records)), np.zeros(len(records))
        for i in range(len(records)):
            rest = [r for j, r in enumerate(records) if j != i]
            est = AccuracyEstimate(self.features, self.space, self.target, self.seed + i)
            m, s = est.fit(rest).predict([records[i]["values"]],
                                         [Candidate.from_dict(records[i]["x"])])
            pred[i], sd[i] = m[0], s[0]
        y = np.array([float(r["values"][self.target]) for r in records])
        return {"pred": pred.tolist(), "sd": sd.tolist(),
                "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
                "coverage_2sd": float(np.mean(np.abs(pred - y) <= 2 * sd))}

    def loo_at_fitted(self) -> np.ndarray:
        """Leave-one-out means of the training students in closed form, at the hyperparameters
        fitted on all of them (Rasmussen & Williams eq. 5.12): one fit instead of n, so cheap
        enough to compare feature sets inside a selection (:mod:`search.feature_selection`);
        :meth:`loo` refits each fold and is the evaluation to report."""
        if self._gp is None:
            raise InputError("the estimate is not fitted: call fit() or load()")
        gp = self._gp
        c_inv = linalg.cho_solve((gp.L, True), np.eye(len(gp.y_std)))
        loo_std = gp.y_std - gp.alpha / np.diag(c_inv)
        return gp.y_mean + gp.y_scale * loo_std

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """The training students and settings (the GP is refitted on load: deterministic)."""
        if self._records is None:
            raise InputError("nothing to save: the estimate is not fitted")
        p = Path(path)
        p.write_text(json.dumps({"features": list(self.features), "target": self.target,
                                 "seed": self.seed, "space": self.space.to_dict(),
                                 "records": self._records}, indent=1))
        return p

    @classmethod
    def load(cls, path: str | Path) -> "AccuracyEstimate":
        p = Path(path)
        try:
            d = json.loads(p.read_text())
            est = cls(tuple(d["features"]), SearchSpace.from_dict(d["space"]), d["target"],
                      int(d["seed"]))
            return est.fit(d["records"])
        except FileNotFoundError:
            raise InputError(f"accuracy estimate {p} does not exist; write one with "
                             "`python benchmarks/proxy_study.py --analyze`") from None
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise InputError(f"accuracy estimate {p} is corrupt ({type(e).__name__}: {e}); "
                             "write it again with benchmarks/proxy_study.py --analyze") from None
