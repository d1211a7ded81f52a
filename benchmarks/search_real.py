"""The real problem on this CPU: measured latency x flash-distillation STS-B over the default
space, ours against NSGA-II and random search at the same budget.

Every method evaluates candidates through the same two expensive objectives: the median latency
timed here (``--workload``) and STS-B dev Spearman after ``--flash-steps`` of flash
distillation. Ours also gets the latency predictor as the GP's prior mean (the latency
residual) and the exact parameter-free structure of the space. An evaluation is memoised by
candidate and this machine's fingerprint in the benchmark's store, so a candidate two methods
(or seeds) both visit is measured and distilled once; a killed run resumes from the store (ours
through its own search run, the others by replaying their seeded runs over the memo).

Each machine runs its own benchmark (results ``search_real_<fingerprint>.json``): latency is
timed on it. The flash-distillation score does not depend on the machine, so it is memoised by
candidate alone and shared: a candidate distilled on one host is only timed on another (the
scores this benchmark recorded on any machine are adopted at start, each naming its source).

What the latency residual changes (``--methods ours-trust,ours-nobase``): ``ours-trust`` takes
the predicted latency as exact (a cheap objective inside the acquisition, never corrected by
what is measured); ``ours-nobase`` models the measured latency with no predictor at all. Every
candidate any method picks is still measured, so all are scored on the same hypervolume.

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
from common import RESULTS, cpu_latency_model, machine_info  # noqa: E402

METHODS = ("ours", "nsga2", "random")
VARIANTS = ("ours-trust", "ours-nobase")   # what the latency residual changes


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
    p.add_argument("--name", help="results file stem (default: search_real_<fingerprint>)")
    p.add_argument("--nsga2-pop", type=int, default=10)
    p.add_argument("--n-initial", type=int, default=8,
                   help="ours' initial design (the loop's default, 2 (d + 1) = 24 on the "
                        "default space, would spend most of a 30-evaluation budget at random)")
    p.add_argument("--no-model", action="store_true",
                   help="ours without the fitted latency model (analytic baseline)")
    return p.parse_args(argv)


def build(args, store, fp):
    """The measured problem every method is scored on, and the two variants' search problems.
    The flash score is memoised across machines (it does not depend on the one it ran on)."""
    from distill import Workload
    from search.memo import MemoisedObjective
    from search.objectives import AccuracyContext, FlashAccuracy, MeasuredLatency, \
        PredictedLatency
    from search.problem import StudentProblem
    from search.space import DEFAULT_SPACE, SearchSpace

    space = SearchSpace.from_toml(args.space) if args.space else DEFAULT_SPACE
    ctx = AccuracyContext(args.teacher, args.data_dir)
    # one predictor for the whole benchmark, pinned beside its store: the profile store may
    # grow between the sessions this benchmark runs over
    pin = Path(args.store).parent / f"{Path(args.store).stem}_model" / fp.id
    model = None if args.no_model else cpu_latency_model(
        fp, why="the latency baseline is the analytic roofline", pin=pin)
    workload = Workload.parse(args.workload)
    flash = MemoisedObjective(FlashAccuracy(ctx, args.flash_steps), store, "search-real-accuracy")
    measured = MeasuredLatency(fp, budget_s=args.measure_budget_s)
    predicted = PredictedLatency("cpu", model)
    problem = StudentProblem(space, [flash, measured], workload, baseline=predicted)
    variants = {"ours-trust": StudentProblem(space, [flash, predicted], workload),
                "ours-nobase": StudentProblem(space, [flash, measured], workload)}
    return problem, variants


def adopt_accuracies(store, problem, settings) -> int:
    """Flash scores this benchmark recorded on any machine (its memo runs with the same flash
    steps and space) adopted into the machine-independent accuracy memo; how many were new."""
    from search.objectives import Evaluation
    from search.space import Candidate
    acc = problem.objectives[0]
    n = 0
    for r in store.runs():
        a = json.loads(r["args"])
        if r["kind"] != "search-real_memo" or any(a.get(k) != settings[k]
                                                  for k in ("flash_steps", "space")):
            continue
        for t in store.trials(r["id"], status="done"):
            pv = t.provenance
            detail = pv.get("detail", {}).get(acc.name, {})
            if acc.name not in pv.get("values", {}) or "memo" in detail:   # itself adopted
                continue
            ev = Evaluation(acc.name, pv["values"][acc.name], pv["provenance"][acc.name],
                            pv["costs_s"][acc.name], detail)
            n += acc.record(Candidate.from_dict(t.x), ev,
                            f"{r['id']}#{t.index} (machine {a.get('fingerprint')})")
    return n


def run_ours(search_problem, problem, memo, store, budget, seed, method, n_initial):
    """One seeded run of our search over ``search_problem``; every candidate it picks is
    evaluated on ``problem`` (measured) through the memo. Returns the memo trials of its
    evaluations in order (None for a failed one)."""
    from search import Search, SearchConfig
    cheap = tuple(getattr(search_problem, "cheap_objectives", ()))

    def evaluate(X):
        cand = problem.candidate(X[0])
        t = memo.put(cand, problem.evaluate_candidate)
        if t.status != "done":
            raise RuntimeError(t.provenance.get("error", "failed"))
        F = np.array([t.values["f0"], t.values["f1"]])
        for j in cheap:      # ours-trust: the search sees the prediction, not the measurement
            o = search_problem.objectives[j]
            F[j] = float(o.to_search(o.evaluate(cand, search_problem.workload).value))
        return (F, np.zeros(0),
                {"memo_index": t.index, **{k: v for k, v in t.provenance.items()
                                           if k in ("values", "provenance", "candidate")}})
    run_id = (f"search-real-{method}-{memo.run.rsplit('-', 1)[1]}-s{seed}-b{budget}"
              f"-i{n_initial}")
    cfg = SearchConfig(budget=budget, seed=seed, n_initial=n_initial)
    Search(search_problem, cfg, store=store, run_id=run_id, evaluate=evaluate).run(progress=True)
    by_index = {t.index: t for t in store.trials(memo.run)}
    out = []
    for t in sorted(store.trials(run_id), key=lambda t: t.index):
        if t.status == "done":
            out.append(by_index[t.provenance["memo_index"]])
        elif t.status == "failed":
            out.append(None)
    return out[:budget]


def run_random(problem, memo, budget, seed):
    out = []
    for cand in problem.space.sample(budget, 1000 + seed):
        t = memo.put(cand, problem.evaluate_candidate)
        out.append(t if t.status == "done" else None)
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
                out.append(t if t.status == "done" else None)
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


def objectives(t) -> np.ndarray | None:
    """A memo trial's measured objectives (-STS-B, log ms), None for a failed evaluation."""
    return None if t is None else np.array([t.values["f0"], t.values["f1"]])


def hv_curve(seq, ref) -> list[float]:
    from search.hypervolume import hypervolume
    curve, done = [], []
    for t in seq:
        if t is not None:
            done.append(objectives(t))
        curve.append(float(hypervolume(np.array(done), ref)) if done else 0.0)
    return curve


def picks(runs, methods) -> dict:
    """Which candidates each method had measured: how many (pooled over seeds), how many lie on
    the front of everything measured, how the predictor erred on them (log measured /
    predicted: > 0 means the candidate was slower than predicted), and, seed by seed, how many
    of them ours measured on the same seed (what a variant changes in which candidates get
    measured)."""
    from search.hypervolume import nondominated
    done = {}
    for seq in runs.values():
        for t in seq:
            if t is not None:
                done[t.index] = t
    order = sorted(done)
    front = {order[i] for i in np.flatnonzero(
        nondominated(np.array([objectives(done[i]) for i in order])))}
    ids = {key: {t.index for t in seq if t is not None} for key, seq in runs.items()}
    out = {}
    for m in methods:
        mine = {i for (mm, _), seq in ids.items() if mm == m for i in seq}
        err = [done[i].values["f1"] - np.log(done[i].provenance["baseline_ms"]) for i in mine
               if done[i].provenance.get("baseline_ms")]
        out[m] = {"distinct_measured": len(mine),
                  "on_pooled_front": len(front & mine),
                  "shared_with_ours_same_seed": {
                      str(s): len(ids[(m, s)] & ids[("ours", s)])
                      for (mm, s) in ids if mm == m and ("ours", s) in ids},
                  "median_log_measured_over_predicted": float(np.median(err)) if err else None,
                  "median_abs_log_error": float(np.median(np.abs(err))) if err else None}
    return out


def main(argv=None):
    from measurements import Store, detect
    from search.memo import Memo

    args = parse_args(argv)
    fp = detect("cpu")
    args.name = args.name or f"search_real_{fp.id}"
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS + VARIANTS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; known: {', '.join(METHODS + VARIANTS)}")
    runs = {}
    t0 = time.time()
    with Store(args.store) as store:
        problem, variants = build(args, store, fp)
        # a latency measured on one machine is never reused on another: this memo is per
        # fingerprint (the flash score inside it is shared through the accuracy memo)
        settings = {"flash_steps": args.flash_steps, "workload": args.workload,
                    "space": problem.space.to_dict(), "measure_budget_s": args.measure_budget_s,
                    "fingerprint": fp.id}
        n = adopt_accuracies(store, problem, settings)
        print(f"machine {fp.id}: {n} flash scores adopted from earlier runs; "
              f"{len(problem.objectives[0].memo.done())} known in all", flush=True)
        memo = Memo(store, "search-real", settings)
        for seed in range(args.seeds):
            for m in methods:
                print(f"== {m} seed {seed}", flush=True)
                if m == "ours" or m in VARIANTS:
                    runs[(m, seed)] = run_ours(variants.get(m, problem), problem, memo, store,
                                               args.budget, seed, m, args.n_initial)
                elif m == "random":
                    runs[(m, seed)] = run_random(problem, memo, args.budget, seed)
                elif m == "nsga2":
                    runs[(m, seed)] = run_nsga2(problem, memo, args.budget, seed,
                                                args.nsga2_pop)
                # results after every finished run, so a long study commits as it goes
                n_evals = sum(1 for t in store.trials(memo.run)
                              if t.status in ("done", "failed"))
                report(runs, args, methods, n_evals, time.time() - t0, problem.objectives[0])


def _evals_to_reach(curve, target):
    hit = [i + 1 for i, v in enumerate(curve) if v >= target]
    return hit[0] if hit else None


def report(runs, args, methods, n_evals, wall_s, acc) -> dict:
    """Write the results JSON + PNG over the runs finished so far (``complete`` once every
    method has every seed). Seeds are compared only where every method has finished them."""
    # one reference point for every run: the worst accuracy and latency seen, plus a margin
    allF = np.array([objectives(t) for seq in runs.values() for t in seq if t is not None])
    ref = allF.max(axis=0) + 0.1 * np.ptp(allF, axis=0)
    curves = {f"{m}/s{s}": hv_curve(seq, ref) for (m, s), seq in runs.items()}
    common = [s for s in range(args.seeds) if all((m, s) in runs for m in methods)]
    summary = {}
    for m in methods:
        seeds = common or [s for s in range(args.seeds) if (m, s) in runs]
        if not seeds:
            continue
        cs = np.array([curves[f"{m}/s{s}"] for s in seeds])
        summary[m] = {"seeds": seeds, "final_hv_mean": float(cs[:, -1].mean()),
                      "final_hv": cs[:, -1].tolist(), "curve_mean": cs.mean(0).tolist()}
    goal = {}
    if "ours" in summary and common:
        for m in methods:
            if m not in METHODS or m == "ours" or m not in summary:
                continue
            target = summary[m]["final_hv_mean"]
            n = _evals_to_reach(summary["ours"]["curve_mean"], target)
            goal[m] = {"their_final_hv": target, "their_evals": args.budget,
                       "ours_evals_to_reach": n,
                       "at_most_half": n is not None and n <= args.budget / 2,
                       # the same, seed by seed (ours against that seed's run of theirs)
                       "per_seed": {str(s): _evals_to_reach(curves[f"ours/s{s}"],
                                                            curves[f"{m}/s{s}"][-1])
                                    for s in common}}
    complete = len(common) == args.seeds
    out = {"benchmark": "search_real", "machine": machine_info(),
           "command": "python benchmarks/search_real.py " + " ".join(sys.argv[1:]),
           "complete": complete, "seeds_compared": common,
           "settings": {k: v for k, v in vars(args).items()}, "reference_point": ref.tolist(),
           "objectives": ["-stsb[flash]", "log latency_ms (measured)"],
           "distinct_evaluations": n_evals, "wall_s_this_invocation": wall_s,
           "flash_this_invocation": {"distilled": acc.computed, "reused": acc.reused,
                                     "memo": acc.memo.run},
           "methods": summary, "goal": goal, "picks": picks(runs, methods), "curves": curves}
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    (res / f"{args.name}.json").write_text(json.dumps(out, indent=1))
    _plot(summary, runs, args, res / f"{args.name}.png")
    print(json.dumps({"complete": complete, "seeds_compared": common,
                      "methods": {m: v["final_hv_mean"] for m, v in summary.items()},
                      "goal": goal}, indent=1), flush=True)
    return out


def _plot(summary, runs, args, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from search.hypervolume import nondominated
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for m, v in summary.items():
        ax.plot(range(1, len(v["curve_mean"]) + 1), v["curve_mean"],
                label=f"{m} ({len(v['seeds'])} seed{'s' * (len(v['seeds']) > 1)})")
    ax.set_xlabel("expensive evaluations (measured latency + flash distillation)")
    ax.set_ylabel("hypervolume (mean over seeds)")
    ax.set_title(f"students on this CPU, flash {args.flash_steps} steps, {args.workload}",
                 fontsize=9)
    ax.legend(fontsize=8)
    pooled = {}
    for (m, _), seq in runs.items():
        for t in seq:
            if t is not None:
                pooled.setdefault(t.index, (t, m))
    for m in summary:
        pts = [objectives(t) for (mm, _), seq in runs.items() if mm == m for t in seq
               if t is not None]
        if pts:
            pts = np.array(pts)
            bx.scatter(np.exp(pts[:, 1]), -pts[:, 0], s=14, alpha=0.6, label=m)
    if pooled:
        F = np.array([objectives(t) for t, _ in pooled.values()])
        front = F[nondominated(F)]
        front = front[np.argsort(front[:, 1])]
        bx.step(np.exp(front[:, 1]), -front[:, 0], where="post", color="k", lw=1,
                label="front of everything measured")
    bx.set_xscale("log")
    bx.set_xlabel(f"measured latency, ms ({args.workload})")
    bx.set_ylabel(f"STS-B dev Spearman after {args.flash_steps} flash steps")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
