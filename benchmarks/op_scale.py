"""On which scale should the op model learn an op's time? (:mod:`perfmodel.op_scale`)

A tree model does not extrapolate, and users ask about workloads and architectures larger or
smaller than the profiled ones. Here each split holds out what a user would ask about and
never profiled: every workload of the store in turn (leave one workload out), and the largest
15% of architectures (by their largest label) with all their programs. For each split and scale
the op model is fitted on the rest (the production parameters, one seed) and the held-out
programs are predicted as the plain sum of their op predictions (no composition model, so no
coefficient sees a held-out program), scored against their end-to-end labels.

    python benchmarks/op_scale.py [--store PATH] [--floor 30 --floor 100 --floor 300]

Writes benchmarks/results/op_scale.json. CPU-bound, not timed: it may run beside other work.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import profile_store, write_result  # noqa: E402

import numpy as np  # noqa: E402

from measurements import Store, detect  # noqa: E402
from perfmodel.hardware import pinned_cpu_spec, probe_cpu  # noqa: E402
from perfmodel.latency_model import _fit_booster  # noqa: E402
from perfmodel.op_scale import ROOFLINE_FLOOR_US, from_target, roofline_us, to_target  # noqa: E402
from perfmodel.training_set import training_set  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", help="profile store (default: this machine's)")
    ap.add_argument("--floor", type=float, action="append",
                    help=f"roofline-scale floors to compare, us (default 30, "
                         f"{ROOFLINE_FLOOR_US:g} (the model's), 300)")
    ap.add_argument("--big", type=float, default=0.15,
                    help="share of the largest architectures held out (default 0.15)")
    args = ap.parse_args(argv)
    floors = args.floor or [30.0, ROOFLINE_FLOOR_US, 300.0]
    fp = detect("cpu")
    path = args.store or str(profile_store(fp.id))
    with Store(path, readonly=True) as st:
        fps = [f.id for f in st.fingerprints()]
        fp_id = fp.id if fp.id in fps else fps[0]
        spec = pinned_cpu_spec(st, fp_id)
        spec_source = "pinned in the store"
        if spec is None:
            spec, spec_source = probe_cpu(), "probed (not pinned in the store)"
        ts = training_set(st, fp_id, spec)
    P = ts.programs
    roof = {p: roofline_us(ts.ops[p], spec) for p in P}
    op_us = {p: np.expm1(ts.y[p]) for p in P}
    arch = {p: json.dumps(dict(ts.record[p].arch), sort_keys=True) for p in P}
    largest = {}
    for p in P:
        largest[arch[p]] = max(largest.get(arch[p], 0.0), ts.label_us[p])
    ranked = sorted(largest, key=largest.get)
    big = set(ranked[int(len(ranked) * (1 - args.big)):])
    splits = {f"workload {w} held out": [p for p in P if ts.workload[p] == w]
              for w in sorted(set(ts.workload.values()))}
    splits[f"largest {args.big:.0%} of architectures held out"] = [p for p in P
                                                                   if arch[p] in big]
    variants = [("log1p", "log1p", 0.0)] + [(f"roofline, floor {f:g} us", "roofline", f)
                                             for f in floors]
    rows = {}
    for name, test in splits.items():
        held = set(test)
        train = [p for p in P if p not in held]
        X = np.vstack([ts.X[p] for p in train])
        rows[name] = {"held_out_programs": len(test)}
        for label, scale, floor in variants:
            kw = {} if scale == "log1p" else {"floor_us": floor}
            y = np.concatenate([to_target(op_us[p], roof[p], scale, **kw) for p in train])
            m = _fit_booster(X, y, 0)
            r = np.array([from_target(m.predict(ts.X[p]), roof[p], scale, **kw).sum()
                          / ts.label_us[p] for p in test])
            rows[name][label] = {"mape": float(np.mean(np.abs(r - 1))),
                                 "within_10pct": float(np.mean(np.abs(r - 1) <= 0.10)),
                                 "median_log_bias": float(np.median(np.log(r)))}
            print(f"{name:44s} {label:24s} MAPE {rows[name][label]['mape']:.3f}  ±10% "
                  f"{rows[name][label]['within_10pct']:.2f}  bias "
                  f"{rows[name][label]['median_log_bias']:+.3f}", flush=True)
    model_label = f"roofline, floor {ROOFLINE_FLOOR_US:g} us"
    wins = {label: sum(v[label]["mape"] < v["log1p"]["mape"] for v in rows.values())
            for label, *_ in variants[1:]}
    result = {"command": "python benchmarks/op_scale.py " + " ".join(sys.argv[1:]),
              "store": str(path), "fingerprint_id": fp_id, "programs": len(P),
              "spec": spec.to_dict(), "spec_source": spec_source,
              "splits": rows, "model_scale": model_label,
              "splits_better_than_log1p": wins, "n_splits": len(rows)}
    out = write_result("op_scale", result)
    print(f"MAPE below log1p's on {wins} of {len(rows)} splits; wrote {out}")


if __name__ == "__main__":
    main()
