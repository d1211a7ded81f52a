"""What the profiler costs a program: traced op sum (and the union of the op intervals) vs
the program's untraced latency, for a few presets. Timed under the host lock.

    python benchmarks/trace_cost.py

Writes benchmarks/results/trace_cost.json.
"""

from __future__ import annotations

import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402  (sets JAX_PLATFORMS=cpu: see docs)

import numpy as np  # noqa: E402

from distill import PRESETS, Workload  # noqa: E402
from measurements.timing import time_callable  # noqa: E402
from perfmodel.profile import profile_compiled  # noqa: E402
from perfmodel.program import compile_local, concrete_args  # noqa: E402
from perfmodel.trace import load_trace, parse_events  # noqa: E402

PROGRAMS = [("bert-mini", "1,128"), ("bert-mini", "8,128"), ("bert-tiny", "1,128"),
            ("bert-small", "1,128"), ("minilm-l6-h384", "1,128")]


def main():
    rows = []
    for name, wl in PROGRAMS:
        cfg, w = PRESETS[name], Workload.parse(wl)
        c = compile_local(cfg, w)
        args = concrete_args(cfg, w)
        with tempfile.TemporaryDirectory() as d:
            profile_compiled(c.executable, args, keep_trace=d)
            trace = load_trace(sorted(Path(d).glob("plugins/profile/*/*.trace.json.gz"))[0])
        runs = defaultdict(list)
        for e in parse_events(trace):
            runs[e.run].append((e.ts_us, e.dur_us))
        per_run = []
        for ev in sorted(runs.values(), key=min)[3:]:     # the warm-up executions dropped
            ev.sort()
            union, end = 0.0, -np.inf
            for t, du in ev:
                if t + du > end:
                    union += t + du - max(t, end)
                    end = t + du
            per_run.append((sum(du for _, du in ev), union))
        traced_sum, traced_union = np.median(np.array(per_run), axis=0) / 1e3
        untraced = time_callable(c.executable, *args, budget_s=3.0).median_s * 1e3
        rows.append({"program": f"{name}@{wl}", "untraced_ms": untraced,
                     "traced_op_sum_ms": traced_sum, "traced_union_ms": traced_union,
                     "traced_over_untraced": traced_sum / untraced,
                     "union_over_sum": traced_union / traced_sum})
        print(f"{name}@{wl}: untraced {untraced:.2f} ms, traced op sum {traced_sum:.2f} "
              f"(union {traced_union:.2f}) -> {traced_sum / untraced:.2f}x", flush=True)
    path = write_result("trace_cost", {"command": "python benchmarks/trace_cost.py",
                                       "programs": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
