"""Op profiling on the local backend: run a compiled program under ``jax.profiler``, parse the
trace, drop warm-up runs and join every op event to its HLO instruction.

Runner (I/O: device, profiler, temp files) is :func:`profile_compiled`; the joining logic is the
pure :func:`join_profile`, tested on saved traces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tempfile
from pathlib import Path

import jax

from measurements import hostlock

from .hlo import HloOp, executed_ops
from .trace import OpEvent, OpStat, TraceError, load_trace, op_stats, parse_events

__all__ = ["ProgramProfile", "ProfileMismatchError", "profile_compiled", "join_profile",
           "join_events", "program_key", "module_name"]


class ProfileMismatchError(TraceError):
    """Trace op events that match no executed HLO op (or the reverse, when strict)."""


@dataclasses.dataclass(frozen=True)
class ProgramProfile:
    program: str                             # content hash of the optimised HLO
    module: str
    ops: tuple[tuple[HloOp, OpStat], ...]    # every executed op with its measured time
    not_in_trace: tuple[str, ...]            # executed HLO ops the profiler did not report
    run_sums_us: tuple[float, ...]           # per kept run: sum of op times

    @property
    def sum_op_us(self) -> float:
        return sum(s.time_us_median for _, s in self.ops)


def program_key(hlo_text: str) -> str:
    """Content hash of a compiled program (metadata lines excluded)."""
    body = re.sub(r", metadata=\{[^}]*\}", "", hlo_text)
    return hashlib.sha256(body.encode()).hexdigest()[:20]


def module_name(hlo_text: str) -> str:
    m = re.match(r"\s*HloModule\s+([\w.\-]+)", hlo_text)
    if not m:
        raise TraceError("HLO text has no 'HloModule NAME' header")
    return m.group(1)


def join_profile(hlo_text: str, trace: dict, *, warmup_runs: int = 1,
                 device: str | None = None) -> ProgramProfile:
    """Join a trace's op events to the executed ops of ``hlo_text``.

    Trace events naming an op that is not in the HLO are an error (wrong program, or a parser
    gap); executed HLO ops absent from the trace are listed in ``not_in_trace``.
    """
    return join_events(hlo_text, parse_events(trace), warmup_runs=warmup_runs, device=device)


def join_events(hlo_text: str, events: list[OpEvent], *, module: str | None = None,
                warmup_runs: int = 1, device: str | None = None) -> ProgramProfile:
    """:func:`join_profile` on parsed op events; ``module`` is the events' module name
    (default: the HLO's own name; a device capture may hold several programs of one name, told
    apart by their program id)."""
    ops = executed_ops(hlo_text)
    module = module or module_name(hlo_text)
    stats, sums = op_stats(events, module, warmup_runs=warmup_runs, device=device)
    by_name = {o.name: o for o in ops}
    unknown = sorted(set(stats) - set(by_name))
    if unknown:
        raise ProfileMismatchError(
            f"{len(unknown)} profiled op(s) of module {module!r} match no executed HLO "
            f"instruction: {unknown[:8]}. The trace belongs to another program, or the HLO "
            "parser skipped an executed opcode.")
    joined = tuple((o, stats[o.name]) for o in ops if o.name in stats)
    missing = tuple(o.name for o in ops if o.name not in stats)
    return ProgramProfile(program_key(hlo_text), module, joined, missing, tuple(sums))


def profile_compiled(executable, args, *, runs: int = 10, warmup_runs: int = 2,
                     keep_trace: str | Path | None = None) -> ProgramProfile:
    """Run ``executable(*args)`` ``warmup_runs + runs`` times under the profiler and join.

    The executable is first run untraced (so first-call costs are out of the capture), then the
    first ``warmup_runs`` traced executions are dropped too: the profiler perturbs early runs.
    """
    jax.block_until_ready(executable(*args))
    with tempfile.TemporaryDirectory(prefix="hwdistill-trace-") as tmp:
        out = Path(keep_trace) if keep_trace else Path(tmp)
        with hostlock.timing(), jax.profiler.trace(str(out)):   # other hwdistill jobs pause
            for _ in range(warmup_runs + runs):
                jax.block_until_ready(executable(*args))
        files = sorted(out.glob("plugins/profile/*/*.trace.json.gz"))
        if not files:
            raise TraceError(f"jax.profiler wrote no *.trace.json.gz under {out}; is the "
                             "profiler supported on this backend?")
        trace = load_trace(files[-1])
    return join_profile(executable.as_text(), trace, warmup_runs=warmup_runs)
