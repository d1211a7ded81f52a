"""Validation of latency predictions against the hardware.

Held-out architectures are measured repeatedly and *interleaved* (every round visits every
program in a new order), because on a shared machine the same program measured minutes apart
differed by up to 35% (docs/architecture.md). The measured latency is the median of the round medians; the
noise floor is how often two rounds of the same program agree within +-10% of each other.

With a ``reference`` program, every program is timed run by run against it
(:func:`measurements.time_paired`) and a round's latency is drift-corrected: the ratio of the
two medians times an anchor: the reference's latency stored when the training data were
profiled, or else its median over this session. Machine-wide slow phases move both programs
alike and cancel in the ratio (on this machine round-to-round agreement within
+-10% rose from 43% to 88%: benchmarks/timing_noise.py); the cost is twice the timing work.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from distill import StudentConfig, Workload, load_arch
from measurements import time_callable, time_paired
from measurements.errors import InputError

from .program import compile_local, concrete_args, concrete_inputs, concrete_params
from .sweep import PROFILE_TAG

__all__ = ["InterleavedResult", "measure_interleaved", "shared_args", "parse_program",
           "stored_latency_ms", "score", "plot_predicted_vs_measured", "measured_after_profiling"]


@dataclasses.dataclass(frozen=True)
class InterleavedResult:
    latency_ms: np.ndarray          # (P,) median over rounds
    rounds_ms: np.ndarray           # (P, R) per-round medians
    compile_s: np.ndarray           # (P,)
    measure_s: np.ndarray           # (P,) wall time spent timing each program, all rounds
    flops: np.ndarray               # (P,) XLA cost_analysis of the compiled program
    bytes_accessed: np.ndarray      # (P,)
    raw_rounds_ms: np.ndarray | None = None  # (P, R) before drift correction (with a reference)
    reference_ms: float = float("nan")       # the anchor the corrected latencies are scaled to
    session_reference_ms: float = float("nan")  # the reference's median over this session

    @property
    def raw_latency_ms(self) -> np.ndarray:
        """(P,) median over the uncorrected rounds (:attr:`latency_ms` without reference)."""
        return self.latency_ms if self.raw_rounds_ms is None else np.median(self.raw_rounds_ms,
                                                                            axis=1)

    @property
    def raw_noise_within_10pct(self) -> float:
        """:attr:`noise_within_10pct` of the uncorrected rounds (the same without reference)."""
        r = self.rounds_ms if self.raw_rounds_ms is None else self.raw_rounds_ms
        return _agreement(r)

    @property
    def noise_within_10pct(self) -> float:
        """Share of (program, round pair) where two rounds agree within +-10% of each other."""
        return _agreement(self.rounds_ms)

    def noise_within_10pct_of(self, rows) -> float:
        """:attr:`noise_within_10pct` over some programs (a boolean mask or indices)."""
        return _agreement(self.rounds_ms[rows])

    @property
    def round_vs_median_within_10pct(self) -> float:
        """Share of single rounds within +-10% of the program's final (median) latency: the
        best a perfect predictor could score against one round."""
        return float(np.mean(np.abs(self.rounds_ms / self.latency_ms[:, None] - 1) <= 0.10))


def stored_latency_ms(records: Sequence, cfg: StudentConfig, wl: Workload) -> float | None:
    """The end-to-end latency of (cfg, wl) that profiling stored among ``records``
    (``Store.latencies(fp)``; records of other origin, e.g. earlier validations, are ignored):
    the median over matching records, or None when profiling never measured that program."""
    want_a, want_w = cfg.to_dict(), wl.to_dict()
    hits = [r.latency_ms_median for r in records if r.tag == PROFILE_TAG
            and dict(r.arch) == want_a and dict(r.workload) == want_w]
    return float(np.median(hits)) if hits else None


def parse_program(spec: str) -> tuple[StudentConfig, Workload]:
    """``"ARCH@BATCH,SEQ[,DTYPE]"`` (ARCH: a preset name or a JSON file) -> (config, workload)."""
    arch, sep, wl = spec.partition("@")
    if not sep or not arch or not wl:
        raise InputError(f"program {spec!r}: expected ARCH@WORKLOAD, e.g. bert-mini@8,128")
    return load_arch(arch), Workload.parse(wl)


def _agreement(r: np.ndarray, tol: float = 0.10) -> float:
    agree = [abs(r[p, i] - r[p, j]) / min(r[p, i], r[p, j]) <= tol
             for p in range(r.shape[0]) for i in range(r.shape[1])
             for j in range(i + 1, r.shape[1])]
    return float(np.mean(agree)) if agree else float("nan")


def shared_args(pairs: Sequence[tuple[StudentConfig, Workload]]) -> list[tuple]:
    """:func:`concrete_args` of every pair, one set of parameters per (architecture, dtype):
    the programs of an interleaved validation stay alive together, and 58 architectures x 6
    workloads each holding its own parameters filled this host's 24 GiB (the process was
    OOM-killed at 348 programs); shared, the parameters cost once per architecture."""
    params: dict = {}
    out = []
    for cfg, wl in pairs:
        key = (cfg, wl.dtype)
        if key not in params:
            params[key] = concrete_params(cfg, wl.dtype)
        out.append((params[key], *concrete_inputs(cfg, wl)))
    return out


def measure_interleaved(pairs: Sequence[tuple[StudentConfig, Workload]], *, rounds: int = 3,
                        budget_s: float = 1.0, seed: int = 0,
                        reference: tuple[StudentConfig, Workload] | None = None,
                        reference_ms: float | None = None,
                        progress: Callable[[str], None] | None = None) -> InterleavedResult:
    """Measure every (architecture, workload) in ``rounds`` interleaved rounds; with
    ``reference``, drift-corrected against that program (see the module docstring).

    ``reference_ms`` anchors the corrected latencies to a known latency of the reference, e.g.
    the one stored when the model's training data were profiled: then the held-out latencies
    are expressed at the machine speed the model was trained at, and a machine that runs 10%
    slower today than during profiling does not read as a 10% prediction error. Without it,
    the reference's median over this session is the anchor."""
    import time

    if not pairs:
        raise InputError("nothing to measure: no (architecture, workload) pairs given")
    compiled, comp_s, flops, nbytes = [], [], [], []
    args = shared_args(pairs)
    for cfg, wl in pairs:
        c = compile_local(cfg, wl)
        compiled.append(c.executable)
        comp_s.append(c.lower_s + c.compile_s)
        flops.append(c.flops)
        nbytes.append(c.bytes_accessed)
        if progress:
            progress("compile")
    if reference is not None:
        ref_exe = compile_local(*reference).executable
        ref_args = concrete_args(*reference)
    rng = np.random.default_rng(seed)
    res = np.zeros((len(pairs), rounds))
    ratio = np.zeros((len(pairs), rounds))
    ref_samples: list[np.ndarray] = []
    spent = np.zeros(len(pairs))
    for r in range(rounds):
        for i in rng.permutation(len(pairs)):
            t0 = time.perf_counter()
            if reference is None:
                res[i, r] = time_callable(compiled[i], *args[i], budget_s=budget_s,
                                          min_runs=5).median_ms
            else:
                tp, tr = time_paired(compiled[i], args[i], ref_exe, ref_args,
                                     budget_s=budget_s, min_runs=5)
                res[i, r] = float(np.median(tp)) * 1e3
                ratio[i, r] = float(np.median(tp) / np.median(tr))
                ref_samples.append(tr)
            spent[i] += time.perf_counter() - t0
            if progress:
                progress(f"round {r + 1}")
    extra = {}
    if reference is not None:
        session_ref_ms = float(np.median(np.concatenate(ref_samples))) * 1e3
        anchor = session_ref_ms if reference_ms is None else float(reference_ms)
        extra = dict(raw_rounds_ms=res, reference_ms=anchor, session_reference_ms=session_ref_ms)
        res = ratio * anchor
    return InterleavedResult(np.median(res, axis=1), res, np.array(comp_s), spent,
                             np.array(flops), np.array(nbytes), **extra)


def score(pred_ms: Sequence[float], meas_ms: Sequence[float]) -> dict[str, float]:
    p, m = np.asarray(pred_ms, float), np.asarray(meas_ms, float)
    if p.shape != m.shape or len(p) < 2:
        raise InputError(f"need matching prediction/measurement arrays of >= 2 entries; got "
                         f"{p.shape} and {m.shape}")
    ape = np.abs(p - m) / m
    return {"n": int(len(p)), "mape": float(ape.mean()), "median_ape": float(np.median(ape)),
            "within_5pct": float((ape <= 0.05).mean()), "within_10pct": float((ape <= 0.10).mean()),
            "spearman": float(stats.spearmanr(p, m).statistic),
            "kendall_tau": float(stats.kendalltau(p, m).statistic)}


def measured_after_profiling(profiled_at: Sequence[float], measured_at: float) -> dict:
    """When a validation was measured relative to the profiling its model was trained on.

    ``profiled_at``: creation times (Unix seconds) of the training records; ``measured_at``: when
    the validation's measurements started. ``another_day`` is true when the measurement's UTC date
    is none of the profiling's: the machine's state on the profiling day is then not what the
    validation sees (issue 15 asks for a validation on another day than the profiling).
    """
    if len(profiled_at) == 0:
        raise InputError("no profiling records to date the validation against; fix: profile this "
                         "machine first (hwdistill profile) or pass the store that was profiled")
    utc = dt.timezone.utc
    first, last = (dt.datetime.fromtimestamp(t, utc) for t in (min(profiled_at), max(profiled_at)))
    when = dt.datetime.fromtimestamp(measured_at, utc)
    days = {dt.datetime.fromtimestamp(t, utc).date() for t in profiled_at}
    return {"profiled_from": first.isoformat(timespec="seconds"),
            "profiled_to": last.isoformat(timespec="seconds"),
            "profiling_dates": sorted(d.isoformat() for d in days),
            "measured_at": when.isoformat(timespec="seconds"),
            "hours_after_profiling": round((measured_at - max(profiled_at)) / 3600, 2),
            "another_day": when.date() not in days}


def plot_predicted_vs_measured(series: dict[str, tuple[Sequence[float], Sequence[float]]],
                               path: str | Path, title: str = "") -> Path:
    """Log-log scatter, one colour per predictor, with the +-10% band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6))
    lo, hi = np.inf, 0
    for name, (pred, meas) in series.items():
        s = score(pred, meas)
        ax.scatter(meas, pred, s=14, alpha=0.75,
                   label=f"{name}: {100 * s['within_10pct']:.0f}% in ±10%, "
                         f"ρ={s['spearman']:.3f}")
        both = np.concatenate([np.asarray(meas, float), np.asarray(pred, float)])
        both = both[both > 0]   # a linear baseline can predict <= 0 ms: not drawable on log axes
        lo, hi = min(lo, both.min()), max(hi, both.max())
    x = np.geomspace(lo * 0.8, hi * 1.2, 50)
    ax.plot(x, x, "k-", lw=1)
    ax.fill_between(x, x * 0.9, x * 1.1, color="grey", alpha=0.2, label="±10%")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
