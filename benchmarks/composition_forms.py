"""Forms of the composition model (op predictions -> end-to-end latency), compared on committed
held-out runs (nothing timed): why :mod:`perfmodel.composition` weights ops by their size.

    python benchmarks/composition_forms.py benchmarks/results/latency_predictor.json \
        benchmarks/results/latency_predictor_4c2259b77454_seed1.json

For each run: the op model is fitted on the run's machine's profile store as
``fit_from_store`` fits it (5 folds by architecture, roofline scale); every form's coefficients
are fitted by NNLS on relative residuals of the store's out-of-fold op predictions, and the
form predicts the run's held-out programs from the full model's op predictions on their
compiled op lists (the programs themselves, not the predictor's composition from parts; one
weight gives the predictor's own figures). Forms, each ``a + c n_ops +`` a sum over the ops:
  - ``one weight``: ``b p`` (the composition before 2026-11-29, evening);
  - ``per op kind``: ``b_kind p`` (``perfmodel.features.op_kind``);
  - ``size buckets``: ``b_j p`` for p in [0, 10), [10, 100), [100, 1000), [1000, inf) us;
  - ``minus d``: ``b max(p - d, 0)`` (a fixed cost per op the op model over-counts);
  - ``knots K``: ``w(p) p``, w linear in log p between the knots (what ``perfmodel.composition``
    does, knots 1 us and 10 ms).
Writes benchmarks/results/composition_forms.json: per run and form, out-of-fold (the store's
labels) and held-out MAPE and share within +-10%, by workload, the coefficients, and the
Spearman correlation of the held-out log error with the program's measured latency per layer
(overall and by workload: whether the error tracks the size of the program's ops).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import add_rescore_args, held_out_run, op_list_cache, write_result  # noqa: E402

import numpy as np  # noqa: E402
from scipy.optimize import nnls  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from tqdm import tqdm  # noqa: E402

from measurements import Store  # noqa: E402
from perfmodel.composition import weight_basis  # noqa: E402
from perfmodel.features import feature_matrix, op_kind  # noqa: E402
from perfmodel.hardware import pinned_cpu_spec  # noqa: E402
from perfmodel.latency_model import _fit_booster, cv_folds, out_of_fold_ops  # noqa: E402
from perfmodel.op_scale import from_target, roofline_us, to_target  # noqa: E402
from perfmodel.predict import Predictor  # noqa: E402
from perfmodel.training_set import training_set  # noqa: E402
from perfmodel.validate import score  # noqa: E402

KINDS = ("fusion:dot", "fusion:reduce", "fusion:transcendental", "fusion:elementwise",
         "fusion:broadcast", "fusion:layout", "fusion:gather", "other")
BUCKETS_US = (0.0, 10.0, 100.0, 1000.0, np.inf)


def _terms(form, pred, kinds) -> list[float]:
    """A program's sums over its ops for ``form`` (the columns after the intercept and n)."""
    name, arg = form
    if name == "one weight":
        return [pred.sum()]
    if name == "per op kind":
        k = np.array([x if x in KINDS else "other" for x in kinds])
        return [pred[k == kind].sum() for kind in KINDS]
    if name == "size buckets":
        return [pred[(pred >= lo) & (pred < hi)].sum()
                for lo, hi in zip(BUCKETS_US[:-1], BUCKETS_US[1:])]
    if name == "minus":
        return [np.maximum(pred - arg, 0.0).sum()]
    return list(weight_basis(pred, arg) @ pred)                         # knots


FORMS = {"one weight": ("one weight", None), "per op kind": ("per op kind", None),
         "size buckets": ("size buckets", None),
         **{f"minus {d} us": ("minus", d) for d in (1, 2, 4, 8)},
         "knots 1 us, 10 ms (adopted)": ("knots", (1.0, 1e4)),
         "knots at every decade 1 us-10 ms": ("knots", (1.0, 10.0, 100.0, 1e3, 1e4)),
         "knots at every half decade 1 us-10 ms": ("knots", tuple(10 ** (k / 2)
                                                                  for k in range(9)))}


def _programs(h, cache):
    """Out-of-fold op predictions of the store's programs and full-model ones of the run's."""
    with Store(h["store"], readonly=True) as st:
        spec = pinned_cpu_spec(st, h["fingerprint"])
        ts = training_set(st, h["fingerprint"], spec)
    progs = ts.programs
    roof = {p: roofline_us(ts.ops[p], spec) for p in progs}
    target = {p: to_target(np.expm1(ts.y[p]), roof[p], "roofline") for p in progs}
    fold, _, _ = cv_folds(ts, 5, 0)
    oof = out_of_fold_ops(ts, target, roof, fold, "roofline")
    train = [(pred, [op_kind(o) for o in ts.ops[p]], ts.label_us[p], ts.workload[p],
              ts.record[p].arch["num_layers"]) for p, pred in zip(progs, oof)]
    full = _fit_booster(*ts.stack(progs, target), 0)
    compiler = Predictor("cpu", None, cache=cache, table=None)
    held = []
    for (c, w), meas, wl in tqdm(list(zip(h["pairs"], h["measured"], h["workloads"])),
                                 desc="op lists"):
        ops = compiler.program_ops(c, w)
        held.append((from_target(full.predict(feature_matrix(ops, spec)),
                                 roofline_us(ops, spec), "roofline"),
                     [op_kind(o) for o in ops], meas * 1e3, wl, c.num_layers))
    return train, held


def _design(form, programs) -> np.ndarray:
    return np.array([[1.0, len(pred)] + _terms(form, pred, kinds)
                     for pred, kinds, *_ in programs])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_rescore_args(ap)
    args = ap.parse_args(argv)
    cache = op_list_cache(args.cache)
    report = {"command": "python benchmarks/composition_forms.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "runs": []}
    for path in args.results:
        h = held_out_run(path)
        train, held = _programs(h, cache)
        y_tr = np.array([t[2] for t in train])
        y_he = np.array([t[2] for t in held])
        wl = np.array([t[3] for t in held])
        entry = {"result": path, "store": str(h["store"]), "store_programs": len(train),
                 "programs": len(held), "forms": {}}
        print(f"{path}: {len(held)} held-out programs; store {h['store']} ({len(train)})")
        per_layer = y_he / np.array([t[4] for t in held])
        for name, form in FORMS.items():
            A_tr, A_he = _design(form, train), _design(form, held)
            coef, _ = nnls(A_tr / y_tr[:, None], np.ones_like(y_tr))
            oof, now = score(A_tr @ coef, y_tr), score(A_he @ coef, y_he)
            entry["forms"][name] = {
                "coefficients": [float(c) for c in coef],
                "out_of_fold": {"mape": oof["mape"], "within_10pct": oof["within_10pct"]},
                "held_out": {"mape": now["mape"], "within_10pct": now["within_10pct"],
                             "spearman": now["spearman"]},
                "held_out_by_workload": {
                    w: {k: v for k, v in score((A_he @ coef)[wl == w], y_he[wl == w]).items()
                        if k in ("mape", "within_10pct")} for w in dict.fromkeys(wl)},
                # does the error track the size of the program's ops? (its latency per layer)
                "spearman_log_error_vs_ms_per_layer": {
                    w: float(spearmanr(np.log((A_he @ coef) / y_he)[m], per_layer[m])[0])
                    for w, m in [("all", np.ones(len(wl), bool)),
                                 *((w, wl == w) for w in dict.fromkeys(wl))]}}
            rho = entry["forms"][name]["spearman_log_error_vs_ms_per_layer"]["all"]
            print(f"  {name:40s} out of fold MAPE {oof['mape']:.4f} ±10% "
                  f"{oof['within_10pct']:.3f} | held out MAPE {now['mape']:.4f} ±10% "
                  f"{now['within_10pct']:.3f}, error vs ms/layer rho {rho:+.2f}", flush=True)
        report["runs"].append(entry)
    print(f"wrote {write_result('composition_forms', report)}")


if __name__ == "__main__":
    main()
