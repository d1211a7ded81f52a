"""End-to-end latency of an architecture on the local backend, measured and recorded."""

from __future__ import annotations

import dataclasses

from distill import StudentConfig, Workload, count_params
from measurements import HardwareFingerprint, LatencyRecord, TimingResult, time_callable

from .program import Compiled, compile_local, concrete_args

__all__ = ["Measurement", "measure_latency", "to_record"]


@dataclasses.dataclass(frozen=True)
class Measurement:
    config: StudentConfig
    workload: Workload
    params: int
    flops: float
    compile_s: float
    timing: TimingResult


def measure_latency(cfg: StudentConfig, wl: Workload, *, seed: int = 0,
                    budget_s: float = 10.0, target_rel_ci: float = 0.02,
                    min_runs: int = 7, compiled: Compiled | None = None,
                    args: tuple | None = None) -> Measurement:
    """Compile (unless given) and time the serving program of ``cfg`` under ``wl``; pass
    ``args`` to reuse concrete inputs already built (initialising parameters is not free)."""
    compiled = compiled or compile_local(cfg, wl)
    args = args if args is not None else concrete_args(cfg, wl, seed)
    timing = time_callable(compiled.executable, *args, budget_s=budget_s,
                           target_rel_ci=target_rel_ci, min_runs=min_runs)
    return Measurement(cfg, wl, count_params(cfg), compiled.flops,
                       compiled.lower_s + compiled.compile_s, timing)


def to_record(m: Measurement, fp: HardwareFingerprint, *, run_id: str = "",
              tag: str = "") -> LatencyRecord:
    t = m.timing
    return LatencyRecord(
        fingerprint_id=fp.id, arch=m.config.to_dict(), workload=m.workload.to_dict(),
        latency_ms_median=t.median_ms, latency_ms_iqr=t.iqr_ms, latency_ms_p90=t.p90_ms,
        n_runs=t.n_runs, compile_s=m.compile_s, run_id=run_id, tag=tag,
        extra={"params": m.params, "flops": m.flops, "ci_low_ms": t.ci_low_s * 1e3,
               "ci_high_ms": t.ci_high_s * 1e3, "n_rejected": t.n_rejected,
               "converged": t.converged, "first_call_ms": t.first_call_s * 1e3})

