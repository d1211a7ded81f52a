"""What the op model should learn: traced op times, or each program's op times scaled to sum to
its end-to-end latency (the default). The profiler's cost differs from program to program
(`docs/architecture.md`), and the composition's three coefficients cannot take it back per
program; scaled targets can.

For each profile store: the model fitted both ways (`fit_from_store(op_target=...)`), scored
out of fold (op model 5-fold, folds as `fit_from_store` draws them: by architecture since
2026-11-29, by program before; composition on the out-of-fold op predictions), overall and per
workload.

    python benchmarks/op_target.py [--store PATH ...]

Default stores: every committed profile store in benchmarks/store/. Writes
benchmarks/results/op_target.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import STORES, write_result  # noqa: E402

from measurements import Store  # noqa: E402
from perfmodel.latency_model import OP_TARGETS, fit_from_store  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", action="append", help="profile store (repeatable)")
    args = ap.parse_args(argv)
    paths = [Path(p) for p in args.store] if args.store else sorted(STORES.glob("cpu*.db"))
    out = {}
    for path in paths:
        with Store(path, readonly=True) as st:
            for fp in st.fingerprints():
                row = {}
                for target in OP_TARGETS:
                    m = fit_from_store(st, fp.id, op_target=target)
                    s = m.summary
                    row[target] = {k: s[k] for k in ("programs", "cv_e2e_mape",
                                                     "cv_e2e_within_10pct",
                                                     "cv_e2e_by_workload", "composition")}
                    print(f"{path.name} ({fp.cpu_model}, {s['programs']} programs) {target:10s}"
                          f" CV e2e MAPE {s['cv_e2e_mape']:.3f}, within 10% "
                          f"{s['cv_e2e_within_10pct']:.2f} | " + " | ".join(
                              f"{w.split()[0]} {v['mape']:.3f} ({v['median_log_bias']:+.3f})"
                              for w, v in s["cv_e2e_by_workload"].items()), flush=True)
                out[f"{path.name}:{fp.id}"] = row
    path = write_result("op_target", {
        "command": "python benchmarks/op_target.py " + " ".join(argv or sys.argv[1:]),
        "note": "out of fold: op model 5-fold as fit_from_store folds (by architecture since "
                "2026-11-29, by program before), composition fitted on the out-of-fold op "
                "predictions (perfmodel.composition); per workload: MAPE (median log "
                "predicted/label)",
        "stores": out})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
