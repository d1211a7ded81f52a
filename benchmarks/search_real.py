"""The real problem on this CPU: measured latency x flash-distillation STS-B over the default
space, ours against NSGA-II and random search at the same budget.

Every method evaluates candidates through the same two expensive objectives: the median latency
timed here (``--workload``) and STS-B Spearman after ``--flash-steps`` of flash distillation
(scored on STS-B *train* pairs; dev stays held out). Ours also gets the latency predictor as the
GP's prior mean (the latency residual) and the exact parameter-free structure of the space.
An evaluation is memoised by candidate in the benchmark's store, so a candidate two methods (or
seeds) both visit is measured and distilled once; a killed run resumes from the store (ours
through its own search run, the others by replaying their seeded runs over the memo).

Hypervolume of (-STS-B, log latency) against the number of evaluations, per method and seed,
with one fixed reference point; the goal: ours reaches the others' final hypervolume with at
most half their evaluations. Results JSON + PNG in benchmarks/results/.

  nohup python benchmarks/search_real.py --budget 30 --seeds 3 > search_real.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, machine_info  # noqa: E402

METHODS = ("ours", "nsga2", "random")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=int, default=30, help="expensive evaluations per run")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--flash-steps", type=int, default=100)
    p.add_argument("--workload", default="8,128")
    p.add_argument("--measure-budget-s", type=float, default=5.0)
    p.add_argument("--space", help="search space TOML (default: the embedded one)")
    p.add_argument("--teacher")
    p.add_argument("--data-dir")
    p.add_argument("--store", default=str(Path(__file__).parent / "store" / "search_real.db"))
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--name", default="search_real")
    p.add_argument("--nsga2-pop", type=int, default=10)
    p.add_argument("--no-model", action="store_true",
                   help="ours without the fitted latency model (analytic baseline)")
    return p.parse_args(argv)


def build(args):
    from distill import Workload
    from measurements import detect
    from search.objectives import AccuracyContext, FlashAccuracy, MeasuredLatency, \
        PredictedLatency
    from search.problem import StudentProblem
    from search.space import DEFAULT_SPACE, SearchSpace

    space = SearchSpace.from_toml(args.space) if args.space else DEFAULT_SPACE
    fp = detect("cpu")
    ctx = AccuracyContext(args.teacher, args.data_dir)
    model = None if args.no_model else _model(fp)
    problem = StudentProblem(
        space, [FlashAccuracy(ctx, args.flash_steps), MeasuredLatency(
            fp, budget_s=args.measure_budget_s)], Workload.parse(args.workload),
        baseline=PredictedLatency("cpu", model))
    return problem


def _model(fp):
    from measurements import Store
    from perfmodel.hardware import probe_cpu
    from perfmodel.latency_model import ModelError, fit_from_store
    try:
        with Store(Path(__file__).parent / "store" / "cpu.db", readonly=True) as st:
            return fit_from_store(st, fp.id, probe_cpu())
    except ModelError as e:
        print(f"note: {e}; the latency baseline is the analytic roofline", flush=True)
        return None


def run_ours(problem, memo, store, budget, seed):
    from search import Search, SearchConfig

    def evaluate(X):
        t = memo.put(problem.candidate(X[0]), problem.evaluate_candidate)
        if t.status != "done":
            raise RuntimeError(t.provenance.get("error", "failed"))
        return (np.array([t.values["f0"], t.values["f1"]]), np.zeros(0),
                {"memo_index": t.index, **{k: v for k, v in t.provenance.items()
                                           if k in ("values", "provenance", "candidate")}})
    s = Search(problem, SearchConfig(budget=budget, seed=seed), store=store,
               run_id=f"search-real-ours-s{seed}-b{budget}", evaluate=evaluate)
    res = s.run(progress=True)
    return [np.asarray(f) for f in res.F]


def run_random(problem, memo, budget, seed):
    out = []
    for cand in problem.space.sample(budget, 1000 + seed):
        t = memo.put(cand, problem.evaluate_candidate)
        out.append(np.array([t.values["f0"], t.values["f1"]]) if t.status == "done" else None)
        print(f"  random s{seed} {len(out)}/{budget}", flush=True)
    return out


def run_nsga2(problem, memo, budget, seed, pop):
    from pymoo.algorithms.moo.nsga2 import NSGA2, RankAndCrowding
    from pymoo.core.mixed import (MixedVariableDuplicateElimination, MixedVariableMating,
                                  MixedVariableSampling)
    from pymoo.core.problem import Problem
    from pymoo.core.repair import Repair
    from pymoo.optimize import minimize

    out = []

    class Memoised(Problem):
        def __init__(self):
            super().__init__(vars=problem.vars, n_obj=2)

        def _evaluate(self, X, o, *a, **k):
            F = []
            for row in X:
                t = memo.put(problem.candidate(row), problem.evaluate_candidate)
                f = (np.array([t.values["f0"], t.values["f1"]]) if t.status == "done"
                     else np.array([0.0, 1e3]))          # a failed student: dominated by all
                out.append(f if t.status == "done" else None)
                F.append(f)
                print(f"  nsga2 s{seed} {len(out)}/{budget}", flush=True)
            o["F"] = np.array(F)

    class Fix(Repair):
        def _do(self, prob, X, **kw):
            return problem.repair(X)

    dedup = MixedVariableDuplicateElimination()
    algo = NSGA2(pop_size=pop, sampling=MixedVariableSampling(),
                 mating=MixedVariableMating(eliminate_duplicates=dedup, repair=Fix()),
                 eliminate_duplicates=dedup, survival=RankAndCrowding(), repair=Fix())
    minimize(Memoised(), algo, ("n_evals", budget), seed=seed, verbose=False)
    return out[:budget]


def hv_curve(F_seq, ref) -> list[float]:
    from search.hypervolume import hypervolume
    curve, done = [], []
    for f in F_seq:
        if f is not None:
            done.append(f)
        curve.append(float(hypervolume(np.array(done), ref)) if done else 0.0)
    return curve


def main(argv=None):
    from measurements import Store
    from search.memo import Memo

    args = parse_args(argv)
    problem = build(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    settings = {"flash_steps": args.flash_steps, "workload": args.workload,
                "space": problem.space.to_dict(), "measure_budget_s": args.measure_budget_s}
    runs = {}
    t0 = time.time()
    with Store(args.store) as store:
        memo = Memo(store, "search-real", settings)
        for seed in range(args.seeds):
            for m in methods:
                print(f"== {m} seed {seed}", flush=True)
                if m == "ours":
                    runs[(m, seed)] = run_ours(problem, memo, store, args.budget, seed)
                elif m == "random":
                    runs[(m, seed)] = run_random(problem, memo, args.budget, seed)
                elif m == "nsga2":
                    runs[(m, seed)] = run_nsga2(problem, memo, args.budget, seed,
                                                args.nsga2_pop)
                else:
                    raise SystemExit(f"unknown method {m!r}; known: {METHODS}")
        n_evals = sum(1 for t in store.trials(memo.run) if t.status in ("done", "failed"))
    # one reference point for every run: the worst accuracy and latency seen, plus a margin
    allF = np.array([f for seq in runs.values() for f in seq if f is not None])
    ref = allF.max(axis=0) + 0.1 * np.ptp(allF, axis=0)
    curves = {f"{m}/s{s}": hv_curve(seq, ref) for (m, s), seq in runs.items()}
    summary = {}
    for m in methods:
        cs = np.array([curves[f"{m}/s{s}"] for s in range(args.seeds)])
        summary[m] = {"final_hv_mean": float(cs[:, -1].mean()),
                      "final_hv": cs[:, -1].tolist(), "curve_mean": cs.mean(0).tolist()}
    goal = {}
    if "ours" in methods:
        ours = np.array(summary["ours"]["curve_mean"])
        for m in methods:
            if m == "ours":
                continue
            target = summary[m]["final_hv_mean"]
            hit = np.flatnonzero(ours >= target)
            goal[m] = {"their_final_hv": target, "their_evals": args.budget,
                       "ours_evals_to_reach": int(hit[0] + 1) if len(hit) else None,
                       "at_most_half": bool(len(hit) and hit[0] + 1 <= args.budget / 2)}
    out = {"benchmark": "search_real", "machine": machine_info(),
           "command": "python benchmarks/search_real.py " + " ".join(sys.argv[1:]),
           "settings": {k: v for k, v in vars(args).items()}, "reference_point": ref.tolist(),
           "objectives": ["-stsb[flash]", "log latency_ms (measured)"],
           "distinct_evaluations": n_evals, "wall_s": time.time() - t0,
           "methods": summary, "goal": goal, "curves": curves}
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{args.name}.json").write_text(json.dumps(out, indent=1))
    _plot(summary, args, res / f"{args.name}.png")
    print(json.dumps({"methods": {m: v["final_hv_mean"] for m, v in summary.items()},
                      "goal": goal}, indent=1))


def _plot(summary, args, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for m, v in summary.items():
        ax.plot(range(1, len(v["curve_mean"]) + 1), v["curve_mean"], label=m)
    ax.set_xlabel("expensive evaluations (measured latency + flash distillation)")
    ax.set_ylabel("hypervolume (mean over seeds)")
    ax.set_title(f"students on this CPU, {args.seeds} seeds, flash {args.flash_steps} steps",
                 fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
