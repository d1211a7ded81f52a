"""Variants of the op model's fit, scored on committed held-out runs (nothing timed): what was
tried to raise the share of held-out programs predicted within +-10%, and what it did.

    python benchmarks/op_model_variants.py benchmarks/results/latency_predictor.json \
        benchmarks/results/latency_predictor_4c2259b77454_seed1.json

Each variant is fitted from the run's machine's profile store the way
:func:`perfmodel.latency_model.fit_from_store` fits (op model on the end-to-end-scaled op times,
roofline scale; composition by NNLS on relative residuals of 5-fold out-of-fold op sums; one
XGBoost model on every program) with one thing changed, and predicts the run's held-out
programs through the :class:`perfmodel.predict.Predictor` (composed op lists) against the
run's drift-corrected measurements. The variants (``as fitted``: the fit as it was when this
study was run, composition folds by program; ``composition folds by architecture`` is what
``fit_from_store`` does since):
  - ``seeds``: an ensemble of XGBoost models of several seeds (their mean op time);
  - ``group``: "arch" holds whole architectures out of the composition's folds (its
    out-of-fold sums then see unseen architectures, as the held-out runs do);
  - ``min_drift`` / ``drift_scale``: programs whose label the drift correction scaled by less
    than ``min_drift`` left out, or weighted ``1 / (1 + (log f / drift_scale)**2)``;
  - ``params``: XGBoost hyper-parameters;
  - ``arch_share``: a random share of the store's architectures only (a learning curve);
  - ``op_weights``: the composition's op weights (:mod:`perfmodel.composition`) with knots
    at these op times (``fit_from_store`` composes so since 2026-11-29, knots 1 us and 10 ms;
    the other variants keep one weight for every op, as it composed before);
  - ``program_ridge``: a ridge regression of the out-of-fold log residual on program totals
    (log op-time sum, ops, flops and bytes per predicted microsecond, roofline share), applied
    on top.
Writes benchmarks/results/op_model_variants.json (``--name``: another name).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import add_rescore_args, held_out_run, op_list_cache, write_result  # noqa: E402

import numpy as np  # noqa: E402
import xgboost as xgb  # noqa: E402
from scipy.optimize import nnls  # noqa: E402
from sklearn.linear_model import RidgeCV  # noqa: E402

from measurements import Store  # noqa: E402
from perfmodel.composition import OP_WEIGHT_KNOTS_US, fit_composition  # noqa: E402
from perfmodel.features import feature_matrix  # noqa: E402
from perfmodel.hardware import pinned_cpu_spec  # noqa: E402
from perfmodel.latency_model import XGB_PARAMS, LatencyModel, cv_folds  # noqa: E402
from perfmodel.op_scale import from_target, roofline_us, to_target  # noqa: E402
from perfmodel.predict import Predictor  # noqa: E402
from perfmodel.training_set import training_set  # noqa: E402
from perfmodel.validate import score  # noqa: E402

VARIANTS = {
    "as fitted": {},
    "5-seed ensemble": {"seeds": [0, 1, 2, 3, 4]},
    "composition folds by architecture": {"group": "arch"},
    "drop labels drift-scaled below 0.8": {"min_drift": 0.8},
    "down-weight drift-scaled labels (0.2)": {"drift_scale": 0.2},
    "max_depth 5": {"params": {"max_depth": 5}},
    "max_depth 9": {"params": {"max_depth": 9}},
    "min_child_weight 10": {"params": {"min_child_weight": 10}},
    "1200 trees, learning rate 0.025": {"params": {"n_estimators": 1200, "learning_rate": 0.025}},
    "program-level ridge on residuals": {"group": "arch", "program_ridge": True},
    "op weights linear in log op time": {"group": "arch", "op_weights": OP_WEIGHT_KNOTS_US},
    "op weights at every decade 1 us-10 ms": {"group": "arch",
                                              "op_weights": (1, 10, 100, 1e3, 1e4)},
    "75% of architectures (draw 0)": {"arch_share": 0.75, "draw": 0},
    "75% of architectures (draw 1)": {"arch_share": 0.75, "draw": 1},
    "50% of architectures (draw 0)": {"arch_share": 0.5, "draw": 0},
    "50% of architectures (draw 1)": {"arch_share": 0.5, "draw": 1},
}


class _Ensemble(LatencyModel):
    """A LatencyModel whose op time is the mean of several boosters'."""

    boosters: tuple = ()
    ridge = None

    def predict_ops_us(self, ops):
        if not ops:
            return np.zeros(0)
        X, roof = feature_matrix(ops, self.spec), roofline_us(ops, self.spec)
        return np.mean([from_target(b.predict(X), roof, self.op_scale) for b in self.boosters],
                       axis=0)


def _program_features(n_ops, flops, nbytes, roof_s, pred_us) -> list[float]:
    return [np.log(pred_us), np.log(n_ops), np.log(flops / pred_us), np.log(nbytes / pred_us),
            np.log(roof_s * 1e6 / pred_us)]


def fit_variant(ts, spec, fp_id, *, seeds=(0,), group="program", min_drift=0.0,
                drift_scale=0.0, params=None, arch_share=1.0, draw=0, program_ridge=False,
                op_weights=None, folds=5) -> _Ensemble:
    params = {**XGB_PARAMS, **(params or {})}
    arch = {p: json.dumps(dict(ts.record[p].arch), sort_keys=True) for p in ts.programs}
    progs = [p for p in ts.programs if ts.drift[p] >= min_drift]
    if arch_share < 1:
        names = sorted(set(arch.values()))
        keep = set(np.random.default_rng(draw).permutation(names)[
            :round(arch_share * len(names))].tolist())
        progs = [p for p in progs if arch[p] in keep]
    roof = {p: roofline_us(ts.ops[p], spec) for p in progs}
    target = {p: to_target(np.expm1(ts.y[p]), roof[p], "roofline") for p in progs}
    weight = {p: (1.0 / (1.0 + (np.log(ts.drift[p]) / drift_scale) ** 2) if drift_scale else 1.0)
              for p in progs}

    def fit(ps, seed):
        X = np.vstack([ts.X[p] for p in ps])
        y = np.concatenate([target[p] for p in ps])
        w = np.concatenate([np.full(len(target[p]), weight[p]) for p in ps])
        return xgb.XGBRegressor(**params, random_state=seed, n_jobs=2).fit(X, y, sample_weight=w)

    if group == "arch":              # as fit_from_store draws them
        fold, _, _ = cv_folds(ts, folds, 0, progs)
    else:                            # as it drew them before 2026-11-29
        fold = np.empty(len(progs), int)
        fold[np.random.default_rng(0).permutation(len(progs))] = np.arange(len(progs)) % folds
    oof_ops = [np.zeros(0)] * len(progs)
    for k in range(folds):
        models = [fit([p for p, f in zip(progs, fold) if f != k], s) for s in seeds]
        for i in np.flatnonzero(fold == k):
            p = progs[i]
            oof_ops[i] = np.mean([from_target(m.predict(ts.X[p]), roof[p], "roofline")
                                  for m in models], axis=0)
    oof = np.array([o.sum() for o in oof_ops])
    n_ops = np.array([len(ts.ops[p]) for p in progs], float)
    e2e = np.array([ts.label_us[p] for p in progs])
    w = np.array([weight[p] for p in progs])
    weights = None
    if op_weights:                   # as fit_from_store composes (unweighted programs)
        coef, weights, composed = fit_composition(oof_ops, e2e, knots_us=op_weights)
    else:                            # one weight for every op, as before the op weights
        A = np.column_stack([np.ones_like(oof), oof, n_ops])
        coef, _ = nnls(A / e2e[:, None] * w[:, None], w)
        composed = A @ coef
    model = _Ensemble(None, tuple(float(c) for c in coef), spec, fp_id,
                      {"interval": None}, "roofline", weights)
    model.boosters = tuple(fit(progs, s) for s in seeds)
    if program_ridge:
        F = [_program_features(len(ts.ops[p]), sum(o.flops for o in ts.ops[p]),
                               sum(o.bytes_accessed for o in ts.ops[p]),
                               float(roof[p].sum()) / 1e6, oof[i]) for i, p in enumerate(progs)]
        model.ridge = RidgeCV(alphas=np.logspace(-2, 3, 12)).fit(F, np.log(e2e / composed))
    return model


def predict_run(model, pairs, cache) -> np.ndarray:
    pred = Predictor("cpu", model, cache=cache)
    out = np.array([pred.predict(c, w).latency_ms for c, w in pairs])
    if model.ridge is not None:
        F = []
        for c, w in pairs:
            t = pred.totals(c, w)
            F.append(_program_features(t["n_ops"], t["flops"], t["bytes_accessed"],
                                       t["roofline_s"], t["pred_us"]))
        out = out * np.exp(model.ridge.predict(F))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_rescore_args(ap)
    ap.add_argument("--variant", action="append", choices=list(VARIANTS),
                    help="only these (repeatable; default all)")
    ap.add_argument("--name", default="op_model_variants",
                    help="results file name (keep a study of a few variants beside the full one)")
    args = ap.parse_args(argv)
    cache = op_list_cache(args.cache)
    report = {"command": "python benchmarks/op_model_variants.py " + " ".join(sys.argv[1:]),
              "variants": {k: VARIANTS[k] for k in (args.variant or VARIANTS)}, "runs": []}
    for path in args.results:
        h = held_out_run(path)
        fp_id, store, pairs, y, wl = (h[k] for k in ("fingerprint", "store", "pairs",
                                                     "measured", "workloads"))
        with Store(store, readonly=True) as st:
            spec = pinned_cpu_spec(st, fp_id)
            ts = training_set(st, fp_id, spec)
        entry = {"result": path, "store": str(store), "programs": len(pairs), "scores": {}}
        print(f"{path}: {len(pairs)} held-out programs, store {store}")
        for name in args.variant or VARIANTS:
            model = fit_variant(ts, spec, fp_id, **VARIANTS[name])
            p = predict_run(model, pairs, cache)
            s = score(p, y)
            by_wl = {w: score(p[wl == w], y[wl == w]) for w in dict.fromkeys(wl)}
            entry["scores"][name] = {
                "mape": s["mape"], "within_10pct": s["within_10pct"], "spearman": s["spearman"],
                "by_workload": {w: {"mape": v["mape"], "within_10pct": v["within_10pct"]}
                                for w, v in by_wl.items()}}
            print(f"  {name:40s} MAPE {s['mape']:.4f}  within ±10% {s['within_10pct']:.3f}  "
                  "worst workload MAPE "
                  f"{max(v['mape'] for v in by_wl.values()):.3f}", flush=True)
        report["runs"].append(entry)
    print(f"wrote {write_result(args.name, report)}")


if __name__ == "__main__":
    main()
