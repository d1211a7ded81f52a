"""Instant latency prediction for unseen architectures.

Every layer of a :class:`StudentConfig` is the same, so an L-layer program's op list is the op
list of its 2-layer version plus (L - 2) times the ops one more middle layer adds (the 3-layer
minus the 2-layer list; 1-layer programs are taken as they are). Extrapolating from 1 layer
instead was measured to be off by up to 8% in bytes and 5% in op count, because XLA fuses
across the first layer boundary differently. That is the *exact* method
(``Predictor(..., exact=True)``): the 1/2/3-layer programs of every distinct *signature*
(every field but ``num_layers``) are compiled. Not every layer is the same with NoNorm: XLA:CPU
re-computes the residual chain in each layer's fusions, so they grow with depth; for NoNorm
signatures the 4-layer program is compiled too and the growth, an arithmetic progression,
corrects the extrapolation exactly (:mod:`perfmodel.growth`; the linear one under-counted
mobilebert-tiny@8x128's bytes by 23%).

By default on CPU the signature's totals are *composed* (:mod:`perfmodel.parts`) from the
exact totals of up to four reference signatures that vary one effect each (the factorised
embedding, the head count, the FFN stack), which many signatures share: the default space's
8,320 signatures need 2,306 references. Composed op, flop and byte totals and the learned
model's prediction agreed with the exact method on every sampled architecture
(``benchmarks/results/predict_speed.json``: relative error median / p95 / max 0 over 2 x 60
random default-space architectures). TPU targets stay exact (composition unmeasured there).

Op lists come from, in order: this predictor's memory, the disk cache
(:class:`~perfmodel.opcache.OpListCache`), the table shipped with the package for the default
space (:class:`~perfmodel.opcache.ShippedOpLists`), a compile (CPU programs locally with LLVM
optimisation off, TPU programs ahead-of-time; no device runs). Per-op quantities (roofline time,
the learned model's op time) are memoised per distinct op, programs' totals per program and
signatures' totals per signature, so a warm prediction is arithmetic on a few scalars.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from distill import StudentConfig, Workload

from . import parts
from .features import op_kind
from .growth import LayerGrowth, grows_with_depth, layer_growth, op_key
from .hardware import spec_for
from .hlo import HloOp, executed_ops
from .intervals import interval_for
from .latency_model import LatencyModel
from .opcache import OpListCache, ShippedOpLists

__all__ = ["Prediction", "Predictor"]

PRIME_AFTER = 64     # programs read from the shipped table before all its ops are predicted
QUANTITIES = ("n_ops", "flops", "bytes_accessed", "roofline_s", "xla_cycles", "pred_us",
              "unseen_ops")


@dataclasses.dataclass(frozen=True)
class Prediction:
    latency_ms: float
    calibrated: bool            # learned model for this hardware, or analytic only
    method: str                 # "learned" | "learned+recalibrated" | "analytic-roofline"
    roofline_ms: float          # sum of per-op roofline times
    xla_estimated_cycles: float  # TPU compiler's own estimate (nan on CPU)
    n_ops: float
    # ops of a kind (features.op_kind) the learned model never saw in training: their times
    # are extrapolated (nan: analytic, or a model fitted before kinds were recorded)
    unseen_ops: float = math.nan
    # 90% prediction interval in ms (perfmodel.intervals; nan: analytic, or too few programs)
    interval_ms: tuple[float, float] = (math.nan, math.nan)


@dataclasses.dataclass
class _Sig:
    """A signature's totals as arithmetic in the number of layers: ``one`` at 1 layer,
    ``a + L * b`` at L >= 2 (no pass over op lists on the hot path), plus, for references whose
    per-layer ops grow with depth (:mod:`perfmodel.growth`; ``grow``: reference, coefficient),
    a correction per L >= 4 (``extra``, filled by the predictor before it is read)."""

    one: dict[str, float]
    a: dict[str, float]
    b: dict[str, float]
    grow: tuple[tuple[StudentConfig, int], ...] = ()
    extra: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)

    def ext(self, L: int, key: str) -> float:
        """Total ``key`` at L layers."""
        if L == 1:
            return self.one[key]
        return self.a[key] + L * self.b[key] + (self.extra[L][key] if self.grow and L >= 4
                                                else 0.0)


_DEFAULT = object()


class Predictor:
    """``Predictor(target, model).predict(cfg, workload)``; ``model=None`` gives the analytic
    (uncalibrated) prediction. ``exact=None`` composes on CPU and is exact on TPU targets;
    ``table=None`` ignores the shipped op-list table."""

    def __init__(self, target: str = "cpu", model: LatencyModel | None = None, *,
                 cache: OpListCache | None = None, exact: bool | None = None,
                 table: ShippedOpLists | None = _DEFAULT, recalibration=None):
        self.target = target
        self.model = model
        # perfmodel.recalibrate.Recalibration: the machine as it is now (learned model only)
        self.recalibration = recalibration if model is not None else None
        self.spec = model.spec if model is not None else spec_for(target)
        self.cache = cache
        self.exact = (target != "cpu") if exact is None else bool(exact)
        self.table = ShippedOpLists.default(target) if table is _DEFAULT else table
        self._sigs: dict[tuple, _Sig] = {}
        self._programs: dict[tuple, dict[str, float]] = {}
        self._growth: dict[tuple, LayerGrowth | None] = {}      # (reference, workload)
        self._grown: dict[tuple, dict[str, float]] = {}         # (reference, workload, L)
        self._op_memo: dict[tuple, tuple[float, float, float]] = {}
        kinds = (model.summary.get("training_op_kinds") if model is not None else None)
        self._seen_kinds = None if kinds is None else frozenset(kinds)
        self._from_table = 0
        self.compiles = 0
        self.compile_s = 0.0

    # -- op lists ---------------------------------------------------------------------------
    def program_ops(self, cfg: StudentConfig, wl: Workload) -> list[HloOp]:
        """The executed ops of the whole program ``cfg`` at ``wl`` (from the disk cache or the
        shipped table, else compiled and cached), not composed from parts."""
        if self.cache is not None:
            ops = self.cache.get(self.target, cfg, wl)
            if ops is not None:
                return ops
        if self.table is not None:
            ops = self.table.get(self.target, cfg, wl)
            if ops is not None:
                self._from_table += 1
                if self._from_table == PRIME_AFTER:
                    # a search: predict the table's few distinct ops (~2k) in one batch (~1 s)
                    # instead of one model call per signature (~20 ms each here)
                    self._memo_ops(self.table.unique_ops())
                return ops
        self.compiles += 1
        t0 = time.perf_counter()
        if self.target == "cpu":
            from .program import ANALYSIS_OPTIONS, compile_local
            ops = executed_ops(compile_local(cfg, wl, compiler_options=ANALYSIS_OPTIONS)
                               .hlo_text)
        else:
            from .aot import compile_tpu
            ops = executed_ops(compile_tpu(cfg, wl, self.target).hlo_text)
        self.compile_s += time.perf_counter() - t0
        if self.cache is not None:
            self.cache.put(self.target, cfg, wl, ops)
        return ops

    def _memo_ops(self, ops: list[HloOp]) -> list[tuple]:
        """Per-op roofline time, learned op time (its term in the composition:
        :meth:`LatencyModel.op_contributions_us`) and whether the model saw the op's kind,
        memoised per distinct op; new ops are predicted in one call. Returns the ops' memo
        keys."""
        memo = self._op_memo
        keys = [op_key(o) for o in ops]
        new = {k: o for k, o in zip(keys, ops) if k not in memo}
        if new:
            new_ops = list(new.values())
            pred = (self.model.op_contributions_us(new_ops) if self.model is not None
                    else np.full(len(new_ops), math.nan))
            seen = self._seen_kinds
            for k, o, p in zip(new, new_ops, pred):
                memo[k] = (self.spec.roofline_s(o.flops, o.bytes_accessed), float(p),
                           math.nan if seen is None else float(op_kind(o) not in seen))
        return keys

    def _totals(self, ops: list[HloOp], keys: list[tuple]) -> dict[str, float]:
        memo = self._op_memo
        cycles = [o.estimated_cycles for o in ops if not math.isnan(o.estimated_cycles)]
        return {"n_ops": float(len(ops)),
                "flops": sum(o.flops for o in ops),
                "bytes_accessed": sum(o.bytes_accessed for o in ops),
                "roofline_s": sum(memo[k][0] for k in keys),
                "xla_cycles": float(sum(cycles)) if cycles else math.nan,
                "pred_us": sum(memo[k][1] for k in keys),
                "unseen_ops": sum(memo[k][2] for k in keys)}

    def _load_programs(self, progs, wl: Workload, lists: dict | None = None) -> None:
        """Totals of the programs not seen yet, their new ops predicted in one batch
        (``lists``: op lists already at hand, by program)."""
        todo = [p for p in progs if (p, wl) not in self._programs]
        if not todo:
            return
        lists = [(lists or {}).get(p) or self.program_ops(p, wl) for p in todo]
        keys = self._memo_ops([o for ops in lists for o in ops])
        i = 0
        for p, ops in zip(todo, lists):
            self._programs[(p, wl)] = self._totals(ops, keys[i:i + len(ops)])
            i += len(ops)

    def program_totals(self, cfg: StudentConfig, wl: Workload) -> dict[str, float]:
        """Totals of one compiled program (``cfg`` with its own number of layers)."""
        self._load_programs([cfg], wl)
        return self._programs[(cfg, wl)]

    # -- signatures -------------------------------------------------------------------------
    def _sig(self, cfg: StudentConfig, wl: Workload) -> _Sig:
        """The signature's totals, with the depth-growth correction at ``cfg.num_layers``."""
        key = (cfg.replace(num_layers=1), wl)
        sig = self._sigs.get(key)
        if sig is None:
            wl.check(cfg)
            acc = [dict.fromkeys(QUANTITIES, 0.0) for _ in range(3)]
            refs = parts.plan_references(key[0], exact=self.exact)
            grow = tuple((r, k) for r, k in refs.items() if grows_with_depth(r.normalization))
            for ref, _ in grow:
                self._load_growth(ref, wl)
            plan = parts.plan(key[0], exact=self.exact)
            self._load_programs(plan, wl)
            for prog, weights in plan.items():
                t = self._programs[(prog, wl)]
                for d, w in zip(acc, weights):
                    if w:      # 0 * nan (XLA cycles on CPU) must not poison a total
                        for q in QUANTITIES:
                            d[q] += w * t[q]
            sig = self._sigs[key] = _Sig(*acc, grow=grow)
        L = cfg.num_layers
        if sig.grow and L >= 4 and L not in sig.extra:
            extra = dict.fromkeys(QUANTITIES, 0.0)
            for ref, k in sig.grow:
                for q, v in self._growth_totals(ref, wl, L).items():
                    extra[q] += k * v
            sig.extra[L] = extra
        return sig

    def _load_growth(self, ref: StudentConfig, wl: Workload) -> None:
        """How the reference's per-layer ops grow (from its 2/3/4-layer programs, whose totals
        are loaded on the way)."""
        if (ref, wl) in self._growth:
            return
        progs = [ref.replace(num_layers=n) for n in (2, 3, 4)]
        lists = {p: self.program_ops(p, wl) for p in progs}
        self._load_programs(progs, wl, lists)
        self._growth[(ref, wl)] = layer_growth(*(lists[p] for p in progs))

    def _growth_totals(self, ref: StudentConfig, wl: Workload, L: int) -> dict[str, float]:
        """The reference's totals at L layers minus their linear extrapolation: from the
        synthesised growing ops, or from the compiled L-layer program when the growth is not
        a progression (:func:`perfmodel.growth.layer_growth`)."""
        key = (ref, wl, L)
        if key not in self._grown:
            g = self._growth[(ref, wl)]
            corr = None if g is None else g.correction(L)
            if corr is None:
                full = ref.replace(num_layers=L)
                self._load_programs([full], wl)
                linear = parts.plan(ref, exact=True)     # its own 1/2/3-layer weights
                t = self._programs[(full, wl)]
                out = {q: t[q] - sum((a + b * L) * self._programs[(p, wl)][q]
                                     for p, (_, a, b) in linear.items() if a or b)
                       for q in QUANTITIES}
            else:
                plus, minus = corr
                tp = self._totals(plus, self._memo_ops(plus))
                tm = self._totals(minus, self._memo_ops(minus))
                out = {q: tp[q] - tm[q] for q in QUANTITIES}
            # XLA cycles are nan on CPU: no correction rather than a poisoned total
            self._grown[key] = {q: 0.0 if math.isnan(v) else v for q, v in out.items()}
        return self._grown[key]

    def op_list_totals(self, cfg: StudentConfig, wl: Workload) -> dict[str, float]:
        """Totals of the extrapolated (composed) op list (flops, bytes, ops) for checks and
        baselines."""
        s, L = self._sig(cfg, wl), cfg.num_layers
        return {k: s.ext(L, k) for k in ("flops", "bytes_accessed", "n_ops")}

    def totals(self, cfg: StudentConfig, wl: Workload) -> dict[str, float]:
        """Every summed quantity at ``cfg.num_layers`` (incl. ``pred_us``, the sum of the
        ops' terms in the composition)."""
        s, L = self._sig(cfg, wl), cfg.num_layers
        return {k: s.ext(L, k) for k in QUANTITIES}

    def predict(self, cfg: StudentConfig, wl: Workload) -> Prediction:
        s, L = self._sig(cfg, wl), cfg.num_layers
        n_ops, roof_ms = s.ext(L, "n_ops"), s.ext(L, "roofline_s") * 1e3
        est = s.ext(L, "xla_cycles")
        if self.model is not None:
            ms = self.model.compose_us(s.ext(L, "pred_us"), n_ops) / 1e3
            lo, hi = interval_for(self.model.summary.get("interval"), str(wl), ms)
            method = "learned"
            if self.recalibration is not None:
                f = self.recalibration.factor(wl)
                ms, lo, hi, method = ms * f, lo * f, hi * f, "learned+recalibrated"
            return Prediction(ms, True, method, roof_ms, est, n_ops, s.ext(L, "unseen_ops"),
                              (lo, hi))
        return Prediction(roof_ms, False, "analytic-roofline", roof_ms, est, n_ops)

    def predict_many(self, cfgs: list[StudentConfig], wl: Workload) -> list[Prediction]:
        return [self.predict(c, wl) for c in cfgs]

    def stats(self) -> dict:
        """Distinct signatures and programs seen, compiles and where op lists came from."""
        def src(s):
            return None if s is None else {"hits": s.hits, "misses": s.misses}
        return {"method": "exact" if self.exact else "composed",
                "signatures": len(self._sigs), "programs": len(self._programs),
                "compiles": self.compiles, "compile_s": self.compile_s,
                "disk_cache": src(self.cache), "shipped_table": src(self.table)}
