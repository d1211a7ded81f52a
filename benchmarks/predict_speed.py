"""Prediction speed where a search needs it, and the accuracy of composed prediction.

1. **NSGA-II over the default space from a fresh cache.** pymoo NSGA-II (population 100, 100
   generations = 10,000 evaluations) minimises predicted CPU latency (the learned model, through
   ``search.objectives.PredictedLatency`` as the search builds it) and parameters, with
   ``HWDISTILL_CACHE`` pointing at a new empty directory. Reports wall time, distinct
   architectures, signatures and reference programs visited, compiles, hit rates, and the time
   of cold (new signature) and warm predictions.
2. **Composed vs exact.** On random default-space architectures at two workloads, the
   composed totals (:mod:`perfmodel.parts`) against the exact 1/2/3-layer method: relative error
   of ops, flops, bytes, the learned op-time sum and the learned latency (median / p95 / max),
   and the cold time per architecture of each method from its own empty cache.

    python benchmarks/predict_speed.py --store benchmarks/store/cpu.db

Writes benchmarks/results/predict_speed.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

import numpy as np  # noqa: E402

from distill import StudentConfig, Workload  # noqa: E402
from measurements import Store, detect  # noqa: E402
from perfmodel.latency_model import LatencyModel, fit_from_store  # noqa: E402
from perfmodel.opcache import OpListCache, ShippedOpLists  # noqa: E402
from perfmodel.predict import Predictor  # noqa: E402
from search import DEFAULT_SPACE, Candidate  # noqa: E402
from search.objectives import PredictedLatency  # noqa: E402


def params_m(c: StudentConfig) -> float:
    """Parameter count in millions, in closed form (``distill.count_params`` builds the model
    abstractly: ~0.1-0.6 s per architecture here, more than the whole prediction)."""
    h, a, e, f = c.hidden_size, c.attention_size, c.emb_size, c.ffn_size
    norm = lambda n: 2 * n  # noqa: E731  (LayerNorm and NoNorm: scale + bias)
    width = 3 * e if c.trigram_input else e
    emb = c.vocab_size * e + c.max_positions * h + c.type_vocab_size * h + norm(h)
    emb += width * h + h if width != h else 0
    dense = lambda i, o: i * o + o  # noqa: E731
    layer = 3 * dense(a, a) + dense(h if c.kq_shared_bottleneck else a, a) + norm(a)
    layer += c.num_ffn * (dense(a, f) + dense(f, a) + norm(a))
    if c.intra_size:
        layer += dense(h, a) + norm(a) + dense(a, h) + norm(h)
    if c.kq_shared_bottleneck:
        layer += dense(h, a) + norm(a)
    return (emb + c.num_layers * layer + (dense(h, h) if c.pooler else 0)) / 1e6


def _stats(x) -> dict:
    x = np.abs(np.asarray(x, float))
    return {"median": float(np.median(x)), "p95": float(np.percentile(x, 95)),
            "max": float(x.max()), "n": int(len(x))}


# -- 1. NSGA-II ------------------------------------------------------------------------------------
def run_nsga2(model, wl: Workload, pop: int, evals: int, seed: int,
              cache_dir: str | None = None) -> dict:
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.core.repair import Repair
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    space = DEFAULT_SPACE
    fresh = cache_dir is None
    cache_dir = cache_dir or tempfile.mkdtemp(prefix="hwdistill-cache-")
    os.environ["HWDISTILL_CACHE"] = cache_dir          # by default a fresh, empty disk cache
    latency = PredictedLatency("cpu", model)           # as the search builds it
    log = {"cold": [], "warm": [], "configs": set()}
    params: dict = {}

    class Students(Problem):
        def __init__(self):
            super().__init__(n_var=len(space.dims), n_obj=2, xl=0, xu=space.upper, vtype=int)

        def _evaluate(self, X, out, *a, **k):
            F = np.empty((len(X), 2))
            pred = latency.predictor
            for i, x in enumerate(X):
                cfg = space.decode(x).config
                n = len(pred._sigs)
                t0 = time.perf_counter()
                ms = pred.predict(cfg, wl).latency_ms
                dt = time.perf_counter() - t0
                log["cold" if len(pred._sigs) > n else "warm"].append(dt)
                log["configs"].add(cfg)
                p = params.get(cfg)
                if p is None:
                    p = params[cfg] = params_m(cfg)
                F[i] = np.log(ms), p
            out["F"] = F

    class Valid(Repair):
        def _do(self, problem, X, **kw):
            return np.array([space.repair(x) for x in np.asarray(X).round().astype(int)])

    algo = NSGA2(pop_size=pop, sampling=IntegerRandomSampling(),
                 crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                 mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
                 repair=Valid(), eliminate_duplicates=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    res = minimize(Students(), algo, ("n_evals", evals), seed=seed, verbose=False)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    pred = latency.predictor
    st = pred.stats()
    n_eval = len(log["cold"]) + len(log["warm"])
    table, disk = st["shipped_table"] or {"hits": 0}, st["disk_cache"] or {"hits": 0}
    lookups = st["programs"]
    front = [(space.decode(x).config, float(np.exp(f[0])), float(f[1]))
             for x, f in zip(np.atleast_2d(res.X), np.atleast_2d(res.F))]
    # warm: every visited architecture once more, all signatures memoised
    cfgs = list(log["configs"])
    t1 = time.perf_counter()
    for c in cfgs:
        pred.predict(c, wl)
    warm_all = (time.perf_counter() - t1) / len(cfgs)
    return {
        "workload": str(wl), "population": pop, "evaluations": n_eval, "seed": seed,
        "cache_dir": "fresh temporary directory (HWDISTILL_CACHE)" if fresh else cache_dir,
        "wall_s": wall, "goal_wall_s": 120.0, "goal_met": wall <= 120.0,
        "load_average_1_5_15min": {"before": load_before, "after": load_after},
        "distinct_architectures": len(cfgs),
        "distinct_signatures": st["signatures"],
        "distinct_reference_signatures": len({p.replace(num_layers=1)
                                              for p, _ in pred._programs}),
        "distinct_reference_programs": st["programs"],
        "compiles": st["compiles"], "compile_s": st["compile_s"],
        "op_lists_from": {"shipped_table": table["hits"], "disk_cache": disk["hits"],
                          "compiled": st["compiles"]},
        "op_list_hit_rate": (table["hits"] + disk["hits"]) / max(lookups, 1),
        "prediction_hit_rate": len(log["warm"]) / max(n_eval, 1),
        "cold_prediction_s": _dist(log["cold"]), "warm_prediction_us": _dist(log["warm"], 1e6),
        "warm_repredict_us_per_arch": warm_all * 1e6,
        "time_in_predict_s": float(sum(log["cold"]) + sum(log["warm"])),
        "front_size": len(front),
        "front_examples": [{"arch": Candidate(c).describe(), "latency_ms": ms, "params_m": p}
                           for c, ms, p in sorted(front, key=lambda t: t[1])
                           [:: max(1, len(front) // 8)]],
    }


def _dist(x, scale=1.0) -> dict:
    x = np.asarray(x, float) * scale
    if not len(x):
        return {"n": 0}
    return {"n": int(len(x)), "mean": float(x.mean()), "median": float(np.median(x)),
            "p95": float(np.percentile(x, 95)), "max": float(x.max())}


# -- 2. composed vs exact ------------------------------------------------------------------------
def accuracy(model, workloads, archs: int, seed: int, cache_root: str | None) -> dict:
    cfgs = DEFAULT_SPACE.sample_configs(archs, seed)
    out = {"archs": archs, "seed": seed, "by_workload": {}}
    errs_all: dict[str, list] = {}
    for wl in workloads:
        root = Path(cache_root or tempfile.mkdtemp(prefix="hwdistill-acc-"))
        # each method from its own empty cache: their cold times are comparable
        comp = Predictor("cpu", model, cache=OpListCache(root / f"composed-{wl.batch_size}-"
                                                         f"{wl.seq_len}"))
        exact = Predictor("cpu", model, cache=OpListCache(root / f"exact-{wl.batch_size}-"
                                                          f"{wl.seq_len}"), exact=True,
                          table=None)
        errs: dict[str, list] = {k: [] for k in ("n_ops", "flops", "bytes_accessed",
                                                 "pred_us", "latency_ms")}
        times = {"composed": [], "exact": []}
        rows = []
        for i, c in enumerate(cfgs):
            t0 = time.perf_counter()
            pc = comp.predict(c, wl)
            times["composed"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pe = exact.predict(c, wl)
            times["exact"].append(time.perf_counter() - t0)
            tc, te = comp.totals(c, wl), exact.totals(c, wl)
            e = {k: (tc[k] - te[k]) / te[k] for k in errs if k != "latency_ms"}
            e["latency_ms"] = (pc.latency_ms - pe.latency_ms) / pe.latency_ms
            for k, v in e.items():
                errs[k].append(v)
                errs_all.setdefault(k, []).append(v)
            rows.append({"arch": Candidate(c).describe(), "exact_ms": pe.latency_ms,
                         "composed_ms": pc.latency_ms, **{f"rel_err_{k}": v
                                                          for k, v in e.items()}})
            print(f"  {wl} {i + 1}/{len(cfgs)} {Candidate(c).describe():42s} exact "
                  f"{pe.latency_ms:8.3f} ms composed {pc.latency_ms:8.3f} ms", flush=True)
        out["by_workload"][str(wl)] = {
            "rel_error": {k: _stats(v) for k, v in errs.items()},
            "cold_s_per_arch": {k: _dist(v) for k, v in times.items()},
            "compiles": {"composed": comp.compiles, "exact": exact.compiles},
            "compile_s": {"composed": comp.compile_s, "exact": exact.compile_s},
            "programs": {"composed": comp.stats()["programs"],
                         "exact": exact.stats()["programs"]},
            "composed_op_lists_from_table": (comp.table.hits if comp.table else 0),
            "per_arch": rows}
    out["rel_error_all"] = {k: _stats(v) for k, v in errs_all.items()}
    out["goal_p95_below_2pct"] = all(s["p95"] < 0.02 for s in out["rel_error_all"].values())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="benchmarks/store/cpu.db")
    ap.add_argument("--workload", default="8,128", help="the NSGA-II run's workload")
    ap.add_argument("--pop", type=int, default=100)
    ap.add_argument("--evals", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--archs", type=int, default=60, help="accuracy sample per workload")
    ap.add_argument("--accuracy-workloads", nargs="+", default=["8,128", "1,128"])
    ap.add_argument("--accuracy-cache", default=None,
                    help="where the accuracy check's caches go (default: temporary)")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--nsga-cache", default=None,
                    help="HWDISTILL_CACHE for the NSGA-II run (default: a fresh empty one)")
    ap.add_argument("--notes", default="")
    ap.add_argument("--model", default=None,
                    help="latency-model artifact directory: loaded if present, else fitted "
                         "from --store and saved there")
    args = ap.parse_args()

    t0 = time.perf_counter()
    here = detect("cpu").id
    if args.model and (Path(args.model) / "meta.json").is_file():
        model = LatencyModel.load(args.model)      # fitted earlier by this script
        fp_id = model.fingerprint_id
    else:
        with Store(args.store, readonly=True) as s:
            ids = {f.id: s.info()["fingerprints"][f.id]["op_timings"]
                   for f in s.fingerprints()}
            fp_id = here if here in ids else max(ids, key=ids.get)
            model = fit_from_store(s, fp_id)
        if args.model:
            model.save(args.model)
    fit_s = time.perf_counter() - t0
    model_note = ("this machine's profile" if fp_id == here else
                  f"the store's profile of fingerprint {fp_id} (this machine, {here}, has none):"
                  " a per-op function for the comparison and the timing, not calibrated here")
    print(f"latency model ready in {fit_s:.0f} s ({model.summary['programs']} programs; "
          f"{model_note})")
    check = DEFAULT_SPACE.sample_configs(12, 5)
    from distill import count_params
    t0 = time.perf_counter()
    exact_params = [count_params(c) / 1e6 for c in check]
    count_params_s = (time.perf_counter() - t0) / len(check)
    assert all(abs(params_m(c) - p) < 1e-9 for c, p in zip(check, exact_params)), \
        "closed-form parameter count disagrees with distill.count_params"

    table = ShippedOpLists.default("cpu")
    res = {"command": "python benchmarks/predict_speed.py " + " ".join(sys.argv[1:]),
           "notes": args.notes,
           "model": {"fit_or_load_s": fit_s, "artifact": args.model,
                     "programs": model.summary["programs"],
                     "fingerprint": fp_id, "note": model_note,
                     "cv_e2e_mape": model.summary["cv_e2e_mape"]},
           "shipped_table": None if table is None else {
               **table.info, "file_mb": table.path.stat().st_size / 1e6},
           "params_objective": {"closed_form_checked_on": len(check),
                                "count_params_s_per_arch": count_params_s}}
    print("shipped table:", res["shipped_table"])
    wl = Workload.parse(args.workload)
    print(f"NSGA-II: {args.evals} evaluations, population {args.pop}, workload {wl}")
    res["nsga2"] = run_nsga2(model, wl, args.pop, args.evals, args.seed, args.nsga_cache)
    n = res["nsga2"]
    print(f"  wall {n['wall_s']:.1f} s (goal <= 120 s: {n['goal_met']}); "
          f"{n['distinct_architectures']} architectures, {n['distinct_signatures']} signatures, "
          f"{n['distinct_reference_signatures']} reference signatures "
          f"({n['distinct_reference_programs']} programs), {n['compiles']} compiles; "
          f"prediction hit rate {n['prediction_hit_rate']:.3f}, op-list hit rate "
          f"{n['op_list_hit_rate']:.3f}; cold {n['cold_prediction_s'].get('mean', 0) * 1e3:.2f}"
          f" ms, warm {n['warm_prediction_us'].get('median', 0):.1f} us (median)")
    if not args.skip_accuracy:
        wls = [Workload.parse(w) for w in args.accuracy_workloads]
        print(f"composed vs exact on {args.archs} architectures x {len(wls)} workloads")
        res["composition_accuracy"] = accuracy(model, wls, args.archs, args.seed + 1,
                                               args.accuracy_cache)
        for k, v in res["composition_accuracy"]["rel_error_all"].items():
            print(f"  {k:15s} |rel err| median {v['median']:.2e} p95 {v['p95']:.2e} "
                  f"max {v['max']:.2e}")
        for w, r in res["composition_accuracy"]["by_workload"].items():
            c = r["cold_s_per_arch"]
            print(f"  {w}: cold s/arch composed {c['composed']['mean']:.3f} exact "
                  f"{c['exact']['mean']:.3f}; compiles composed {r['compiles']['composed']} "
                  f"exact {r['compiles']['exact']}")
    print(f"wrote {write_result('predict_speed', res)}")


if __name__ == "__main__":
    main()
