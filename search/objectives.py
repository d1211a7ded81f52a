"""One evaluation abstraction: an objective takes (candidate, workload) and returns a named value
with its provenance, its cost in seconds, and says whether it needs the machine to itself.

Provenance says where a number comes from, so nobody mistakes one kind for another:

- ``exact``: computed from the architecture (parameter count);
- ``predicted``: the latency model (:mod:`perfmodel.predict`), no device run;
- ``measured``: timed on this machine (a timing needs the host to itself: ``exclusive``);
- ``proxy``: a stand-in for accuracy (zero-cost scores at init, flash distillation);
- ``distilled``: the accuracy of a fully distilled student.

``cheap`` objectives are exact and fast enough to evaluate inside the acquisition (thousands
of calls per round); the search models the others with GPs. Adapters import their heavy
libraries only when they first evaluate, so describing an objective stays cheap.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Sequence

import numpy as np

from distill import Workload
from measurements.errors import InputError

from .space import Candidate

__all__ = ["Evaluation", "Objective", "Parameters", "PredictedLatency", "MeasuredLatency",
           "FlashAccuracy", "FullAccuracy", "ProxyAccuracy", "EstimatedAccuracy",
           "AccuracyContext", "proxy_context", "PROVENANCES"]

PROVENANCES = ("exact", "predicted", "measured", "proxy", "distilled")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    name: str
    value: float
    provenance: str
    cost_s: float
    detail: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.provenance not in PROVENANCES:
            raise InputError(f"Evaluation.provenance={self.provenance!r}: expected one of "
                             f"{PROVENANCES}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Objective:
    """Base of the adapters. ``sense`` is "min" or "max"; ``log`` objectives are searched on
    the log scale (latencies: a 2x change counts the same at 1 ms and at 100 ms)."""

    name: str = "objective"
    sense: str = "min"
    provenance: str = "exact"
    unit: str = ""
    cheap: bool = False
    exclusive: bool = False
    log: bool = False

    @property
    def resources(self) -> dict[str, float]:
        """What a worker must offer to run this (for the executors)."""
        return {"num_cpus": 1}

    def evaluate(self, cand: Candidate, workload: Workload) -> Evaluation:
        raise NotImplementedError

    def evaluate_many(self, cands: Sequence[Candidate], workload: Workload) -> np.ndarray:
        return np.array([self.evaluate(c, workload).value for c in cands], float)

    def to_search(self, value: float | np.ndarray):
        """The value as the search minimises it."""
        v = np.log(value) if self.log else np.asarray(value, float)
        return -v if self.sense == "max" else v

    def from_search(self, f: float | np.ndarray):
        v = -np.asarray(f, float) if self.sense == "max" else np.asarray(f, float)
        return np.exp(v) if self.log else v

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sense": self.sense, "provenance": self.provenance,
                "cheap": self.cheap, "exclusive": self.exclusive, "log": self.log}


class Parameters(Objective):
    """Parameter count in millions (all parameters, embeddings included: what a server holds)."""

    name, sense, provenance, unit, cheap = "params_m", "min", "exact", "M", True

    def __init__(self):
        self._cache: dict = {}

    def evaluate(self, cand, workload):
        t0 = time.perf_counter()
        v = self._count(cand)
        return Evaluation(self.name, v, self.provenance, time.perf_counter() - t0)

    def evaluate_many(self, cands, workload):
        return np.array([self._count(c) for c in cands], float)

    def _count(self, cand: Candidate) -> float:
        v = self._cache.get(cand.config)
        if v is None:
            from distill import count_params
            v = self._cache[cand.config] = count_params(cand.config) / 1e6
        return v


class PredictedLatency(Objective):
    """Latency predicted by this machine's (or a TPU's) latency model, in ms."""

    provenance, unit, cheap, log = "predicted", "ms", True, True

    def __init__(self, target: str = "cpu", model=None, *, predictor=None):
        self.target = target
        self.name = f"latency_ms[{target}]"
        self._model = model
        self._predictor = predictor
        self.predicted: set = set()     # distinct architectures predicted (budget accounting)

    @property
    def predictor(self):
        if self._predictor is None:
            from perfmodel.opcache import OpListCache
            from perfmodel.predict import Predictor
            self._predictor = Predictor(self.target, self._model, cache=OpListCache.default())
        return self._predictor

    @property
    def has_intervals(self) -> bool:
        """Whether predictions carry a 90% interval (a learned model that recorded them)."""
        from perfmodel.intervals import has_bounds
        m = self._predictor.model if self._predictor is not None else self._model
        return m is not None and has_bounds(m.summary.get("interval"))

    def evaluate(self, cand, workload):
        t0 = time.perf_counter()
        p = self.predictor.predict(cand.config, workload)
        detail = {"calibrated": p.calibrated, "method": p.method}
        if all(math.isfinite(v) for v in p.interval_ms):
            detail["interval_ms"] = [float(v) for v in p.interval_ms]
        return Evaluation(self.name, p.latency_ms, self.provenance, time.perf_counter() - t0,
                          detail)

    def evaluate_many(self, cands, workload):
        out = []
        for c in cands:
            self.predicted.add(c.config)
            out.append(self.predictor.predict(c.config, workload).latency_ms)
        return np.array(out, float)

    def describe(self):
        return {**super().describe(), "target": self.target,
                "calibrated": self._model is not None}


class MeasuredLatency(Objective):
    """Median latency timed on this machine (the drift-robust protocol of
    :func:`perfmodel.measure.measure_latency`), in ms. Needs the host to itself."""

    provenance, unit, exclusive, log = "measured", "ms", True, True

    def __init__(self, fingerprint, *, budget_s: float = 5.0, store=None):
        self.fingerprint = fingerprint
        self.name = f"latency_ms[{fingerprint.target}]"
        self.budget_s = budget_s
        self.store = store

    @property
    def resources(self):
        return {"num_cpus": 1, f"hw:{self.fingerprint.target}-{self.fingerprint.id}": 1}

    def evaluate(self, cand, workload):
        from perfmodel.measure import measure_latency, to_record
        t0 = time.perf_counter()
        m = measure_latency(cand.config, workload, budget_s=self.budget_s)
        if self.store is not None:
            self.store.put_latency(to_record(m, self.fingerprint, tag="search"))
        return Evaluation(self.name, m.timing.median_ms, self.provenance,
                          time.perf_counter() - t0,
                          {"iqr_ms": m.timing.iqr_ms, "n_runs": m.timing.n_runs})

    def describe(self):
        return {**super().describe(), "fingerprint": self.fingerprint.id,
                "budget_s": self.budget_s}


class AccuracyContext:
    """The teacher, its tokenizer, the distillation corpus and STS-B dev, loaded on first use
    and shared by every accuracy objective of a run."""

    def __init__(self, teacher_dir=None, data_dir=None, *, max_len: int = 64,
                 dev_pairs: int | None = None):
        self.teacher_dir, self.data_dir, self.max_len = teacher_dir, data_dir, max_len
        self.dev_pairs = dev_pairs
        self._loaded = None

    def key(self) -> tuple:
        return (str(self.teacher_dir), str(self.data_dir), self.max_len, self.dev_pairs)

    def load(self):
        """(teacher dir, teacher, tokenizer, corpus, STS-B dev), once per process and key:
        an executor's worker evaluating many candidates loads the teacher once."""
        if self._loaded is None:
            self._loaded = _LOADED.get(self.key())
        if self._loaded is None:
            from pathlib import Path

            from distill import default_teacher_dir, load_encoder, load_tokenizer
            from distill.corpus import distillation_texts, task_split
            tdir = Path(self.teacher_dir) if self.teacher_dir else default_teacher_dir()
            teacher = load_encoder(tdir)
            tok = load_tokenizer(tdir, max_len=self.max_len)
            dev = task_split("stsb", "dev", self.data_dir)
            if self.dev_pairs:
                dev = dev[:self.dev_pairs]
            self._loaded = (tdir, teacher, tok, distillation_texts(self.data_dir), dev)
            _LOADED[self.key()] = self._loaded
        return self._loaded

    def __getstate__(self):   # sent to workers without the loaded models (they load their own)
        return {**self.__dict__, "_loaded": None}

    def describe(self) -> dict:
        return {"teacher": str(self.teacher_dir or "default"), "dev_pairs": self.dev_pairs}


_LOADED: dict[tuple, tuple] = {}
_PROXY_CONTEXTS: dict[tuple, Any] = {}


def proxy_context(context: AccuracyContext, seed: int = 0):
    """The proxies' context (real batches through the teacher, STS-B train pairs), built once
    per process for a given accuracy context and seed."""
    key = (*context.key(), seed)
    ctx = _PROXY_CONTEXTS.get(key)
    if ctx is None:
        from distill.proxies import make_context
        from distill.proxies.flash import stsb_proxy_pairs
        _, teacher, tok, texts, _ = context.load()
        ctx = _PROXY_CONTEXTS[key] = make_context(
            teacher, tok, texts, seed=seed, stsb_pairs=stsb_proxy_pairs(context.data_dir))
    return ctx


_INIT = {"scratch": "random", "derived": "derived"}


class FlashAccuracy(Objective):
    """STS-B dev Spearman after a short distillation (AutoDistill's flash distillation)."""

    sense, provenance, unit = "max", "proxy", "spearman"

    def __init__(self, context: AccuracyContext, steps: int = 200, *, seed: int = 0):
        self.context, self.steps, self.seed = context, steps, seed
        self.name = f"stsb[flash{steps}]"

    def evaluate(self, cand, workload):
        import dataclasses as dc

        from distill.flash import PACKING_MIN_STEPS, flash_distill
        from distill.train import RECOMMENDED_LR, DistillConfig
        _, teacher, tok, texts, dev = self.context.load()
        init = _INIT[cand.init]
        dcfg = DistillConfig(packing=self.steps >= PACKING_MIN_STEPS, init=init,
                             lr=RECOMMENDED_LR[init], seed=self.seed)
        cfg = cand.config.replace(vocab_size=teacher.config.vocab_size)
        r = flash_distill(cfg, teacher, tok, texts, steps=self.steps, score_pairs=dev,
                          distill_config=dc.replace(dcfg, steps=self.steps),
                          calibration_texts=texts)
        score = _stsb_of(r)      # NaN (a failed trial) if the run could not be scored
        return Evaluation(self.name, score, self.provenance, r.cost_s,
                          {"final_loss": r.final_loss, "steps": r.steps})

    def describe(self):
        return {**super().describe(), "steps": self.steps, "seed": self.seed,
                **self.context.describe()}


class FullAccuracy(FlashAccuracy):
    """STS-B dev Spearman of a fully distilled student (``steps`` of the same recipe)."""

    provenance = "distilled"

    def __init__(self, context: AccuracyContext, steps: int = 2000, *, seed: int = 0):
        super().__init__(context, steps, seed=seed)
        self.name = f"stsb[full{steps}]"


class ProxyAccuracy(Objective):
    """A training-free accuracy proxy of :mod:`distill.proxies`, computed at initialisation."""

    sense, provenance = "max", "proxy"

    def __init__(self, context: AccuracyContext, proxy: str = "cka", *, seed: int = 0):
        self.context, self.proxy, self.seed = context, proxy, seed
        self.name = f"proxy[{proxy}]"
        self._ctx = None

    def __getstate__(self):   # the teacher context stays in the process that built it
        return {**self.__dict__, "_ctx": None}

    def evaluate(self, cand, workload):
        from distill.proxies import compute_proxies
        self._ctx = proxy_context(self.context, self.seed)
        cfg = cand.config.replace(vocab_size=self._ctx.teacher.config.vocab_size)
        r, = compute_proxies(cfg, self._ctx, [self.proxy], init=_INIT[cand.init],
                             seed=self.seed)
        v = r.value if r.higher_is_better else -r.value
        return Evaluation(self.name, v, self.provenance, r.cost_s, {"raw": r.value})

    def describe(self):
        return {**super().describe(), "proxy": self.proxy, "seed": self.seed,
                **self.context.describe()}


class EstimatedAccuracy(ProxyAccuracy):
    """The combined estimate (:class:`search.accuracy_model.AccuracyEstimate`): the cheap
    proxies of the candidate, computed at initialisation, mapped to the full-distillation
    score by a GP fitted on a proxy study; the value is the mean, ``detail["sd"]`` its
    uncertainty."""

    def __init__(self, context: AccuracyContext, estimate, *, seed: int = 0):
        super().__init__(context, "estimate", seed=seed)
        self.estimate = estimate
        self.name = f"{estimate.target}[estimate]"

    def evaluate(self, cand, workload):
        got = {}
        if self.estimate.features:     # (none: the estimate from the architecture alone)
            from distill.proxies import compute_proxies
            self._ctx = proxy_context(self.context, self.seed)
            cfg = cand.config.replace(vocab_size=self._ctx.teacher.config.vocab_size)
            got = {r.name: r for r in compute_proxies(cfg, self._ctx, self.estimate.features,
                                                      init=_INIT[cand.init], seed=self.seed)}
        vals = {n: r.value for n, r in got.items()}
        m, sd = self.estimate.predict([vals], [cand])
        return Evaluation(self.name, float(m[0]), self.provenance,
                          sum(r.cost_s for r in got.values()), {"sd": float(sd[0]), **vals})

    def describe(self):
        return {**Objective.describe(self), "features": list(self.estimate.features),
                "target": self.estimate.target, "students": len(self.estimate._records or []),
                **self.context.describe()}


def _stsb_of(result) -> float:
    return math.nan if result.stsb is None else float(result.stsb)
