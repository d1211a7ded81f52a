"""Profiling sweeps: for each (architecture, workload), compile, profile every op, time the
end-to-end latency, and store both under the hardware fingerprint. Resumable: a pair whose
end-to-end record is stored is skipped; op records are idempotent, so a pair killed half-way
is simply redone."""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

from distill import StudentConfig, Workload
from measurements import HardwareFingerprint, LatencyRecord, OpTiming, Store

from .measure import Measurement, measure_latency, to_record
from .profile import profile_compiled
from .program import compile_local, concrete_args

__all__ = ["profile_pairs", "PROFILE_TAG", "pair_key"]

PROFILE_TAG = "profile"


def pair_key(fp: HardwareFingerprint, cfg: StudentConfig, wl: Workload,
             tag: str = PROFILE_TAG) -> str:
    return LatencyRecord(fp.id, cfg.to_dict(), wl.to_dict(), 0, 0, 0, 0, tag=tag).key


@dataclasses.dataclass(frozen=True)
class SweepResult:
    profiled: int
    skipped: int
    ops_stored: int


def profile_pairs(store: Store, fp: HardwareFingerprint,
                  pairs: Iterable[tuple[StudentConfig, Workload]], *, run_id: str = "",
                  runs: int = 10, budget_s: float = 3.0,
                  progress: Callable[[str], None] | None = None) -> SweepResult:
    """Profile and store every pair not yet in ``store``."""
    pairs = list(pairs)
    done = store.keys("latencies", fp.id)
    profiled = skipped = n_ops = 0
    for cfg, wl in pairs:
        if pair_key(fp, cfg, wl) in done:
            skipped += 1
            if progress:
                progress("skip")
            continue
        compiled = compile_local(cfg, wl)
        args = concrete_args(cfg, wl)
        prof = profile_compiled(compiled.executable, args, runs=runs)
        ops = [OpTiming(fingerprint_id=fp.id, program=prof.program, op_name=op.name,
                        opcode=op.opcode, time_us_median=st.time_us_median,
                        time_us_iqr=st.time_us_iqr, time_us_p90=st.time_us_p90,
                        n_runs=st.n_runs, features=op.to_dict(), run_id=run_id)
               for op, st in prof.ops]
        n_ops += store.put_op_timings(ops)
        m: Measurement = measure_latency(cfg, wl, compiled=compiled, args=args,
                                           budget_s=budget_s)
        rec = to_record(m, fp, run_id=run_id, tag=PROFILE_TAG)
        rec = dataclasses.replace(rec, extra={
            **rec.extra, "program": prof.program, "sum_op_us": prof.sum_op_us,
            "n_ops": len(prof.ops), "not_in_trace": list(prof.not_in_trace)})
        store.put_latency(rec)  # written last: marks the pair done
        profiled += 1
        if progress:
            progress(f"{m.timing.median_ms:.2f} ms")
    return SweepResult(profiled, skipped, n_ops)
