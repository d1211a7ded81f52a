"""Multi-objective Bayesian optimisation on synthetic problems: our search vs peers.

Problems (pymoo, treated as expensive black boxes): ZDT1 and ZDT2 (n_var=6, reference point
(1.1, 11)) and DTLZ2 (n_var=6, n_obj=2, reference point (2.5, 2.5)); fixed loose reference
points as in BoTorch's own benchmarks. Hypervolume by ``pymoo.indicators.hv.HV``; regret =
HV(true front, 100,000 points) - HV(points evaluated so far).

Methods (benchmarks/search_peers.py holds the peers):
  ours       ``search.minimize(problem, budget, seed, q=1, ref_point, noise_var=0)``: GP + log-EHVI
  qlognehvi  BoTorch's multi-objective tutorial loop, sequential q=1
  pysamoo    GPSAF-NSGA-II (pysamoo 0.1.2; run in a separate venv, see search_peers.py)
  nsga2      pymoo NSGA-II, pop 20
  random     uniform in the box
Budgets: 100 evaluations for ours/qlognehvi/pysamoo, 400 for nsga2/random.

Each (method, problem, seed) run is cached as one JSON file,
``benchmarks/results/search_synthetic/<method>/<problem>_seed<NN>.json``; a re-run skips the
finished ones (a cached run with a budget at least the requested one counts as finished) and
only aggregates. Writes benchmarks/results/search_synthetic.json and
benchmarks/results/search_synthetic_<problem>.png (log regret, median and IQR over seeds).

    python benchmarks/search_synthetic.py                          # all methods, 10 seeds
    python benchmarks/search_synthetic.py --methods random,nsga2,qlognehvi,pysamoo
    python benchmarks/search_synthetic.py --methods ours --rerun ours
    python benchmarks/search_synthetic.py --seeds 1 --budget 20    # smoke
    python benchmarks/search_synthetic.py --plot-only              # aggregate the cache only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path


def _early_threads() -> int:
    """--threads must act before numpy/torch are imported (BLAS pools are sized at import)."""
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return 1


THREADS = _early_threads()
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(THREADS)

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, write_result  # noqa: E402

import numpy as np  # noqa: E402
from pymoo.indicators.hv import HV  # noqa: E402

import search_peers  # noqa: E402
from search_peers import PROBLEMS, make_problem, ref_point  # noqa: E402

NAME = "search_synthetic"
CACHE = RESULTS / NAME
METHODS = ["ours", "qlognehvi", "pysamoo", "nsga2", "random"]
BO_METHODS = ["ours", "qlognehvi", "pysamoo"]
DEFAULT_BUDGET = {"ours": 100, "qlognehvi": 100, "pysamoo": 100, "nsga2": 400, "random": 400}
RUN_ORDER = ["random", "nsga2", "pysamoo", "ours", "qlognehvi"]   # cheap first
CHECKPOINTS = [20, 50, 100, 200, 400]
N_PARETO = 100_000
ROOT = Path(__file__).resolve().parent.parent
COLORS = {"ours": "C3", "qlognehvi": "C0", "pysamoo": "C2", "nsga2": "C1", "random": "C7"}

# Why pysamoo is not in the `bench` extra (found while setting this benchmark up).
PYSAMOO_NOTE = (
    "pysamoo 0.1.2 (latest on PyPI) declares install_requires pymoo==0.6.1.1 (and ezmodel); "
    "pip cannot resolve it together with the project's pymoo>=0.6.2,<0.7 (ResolutionImpossible: "
    "'pysamoo 0.1.2 depends on pymoo==0.6.1.1'), so it cannot go in the bench extra and the "
    "project venv keeps pymoo 0.6.2. Installed with --no-deps next to pymoo 0.6.2 it imports and "
    "runs (ezmodel 0.2.1, pydacefit, pandas are its remaining dependencies); it is run in a "
    "separate venv (PYSAMOO_PYTHON, default /tmp/pysamoo-venv/bin/python) through a subprocess. "
    "pymoo 0.6.2 no longer seeds numpy's/Python's global generators in Algorithm.setup, which "
    "pysamoo and ezmodel draw from, so the adapter seeds both (and the LHS initial design) "
    "itself; with that, runs are reproducible per seed.")


# -- ours ------------------------------------------------------------------------------------

def search_code_hash() -> str:
    h = hashlib.sha256()
    for f in sorted((ROOT / "search").glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def run_ours(problem_name: str, seed: int, budget: int) -> dict:
    try:
        from search import minimize
    except ImportError as e:
        raise NotAvailable(f"not available: {e!r}") from e
    p = make_problem(problem_name)
    # ZDT/DTLZ are deterministic and ours is told so (noise_var=0: "noise fixed when known");
    # qLogNEHVI runs as BoTorch's tutorial writes it, learning the noise
    res = minimize(p, budget=budget, seed=seed, q=1, ref_point=ref_point(problem_name),
                   noise_var=0.0)
    F = np.asarray(res.F, dtype=float)
    n_init = min(budget, 2 * (p.n_var + 1))
    rounds = [{"n_evals": int(r.n_evals), "propose_s": float(r.propose_s), "q": int(r.q)}
              for r in res.rounds]
    return {"F": F.tolist(), "propose_s": [r["propose_s"] for r in rounds
                                           if r["n_evals"] > n_init],
            "q": 1, "n_initial": n_init, "rounds": rounds, "code_hash": search_code_hash(),
            "config": {"call": "search.minimize(problem, budget, seed, q=1, ref_point, "
                                "noise_var=0.0)"}}


class NotAvailable(Exception):
    pass


RUNNERS = {"ours": run_ours, **search_peers.PEERS}


# -- cache -----------------------------------------------------------------------------------

def cache_path(method: str, problem: str, seed: int) -> Path:
    return CACHE / method / f"{problem}_seed{seed:02d}.json"


def load_run(method: str, problem: str, seed: int, budget: int) -> dict | None:
    path = cache_path(method, problem, seed)
    if not path.exists():
        return None
    run = json.loads(path.read_text())
    if run["budget"] < budget or len(run["F"]) < budget:
        return None
    return run


def do_run(method: str, problem: str, seed: int, budget: int) -> dict:
    t = time.perf_counter()
    out = RUNNERS[method](problem, seed, budget)
    wall = time.perf_counter() - t
    if len(out["F"]) < budget:
        raise RuntimeError(f"{method} returned {len(out['F'])} evaluations < budget {budget}")
    run = {"method": method, "problem": problem, "seed": seed, "budget": budget,
           "ref_point": ref_point(problem).tolist(), "wall_s": wall,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "threads": THREADS, **out}
    path = cache_path(method, problem, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(run, default=float))
    tmp.replace(path)
    return run


def _job(args):
    method, problem, seed, budget = args
    try:
        run = do_run(method, problem, seed, budget)
        return args, "ok", f"{run['wall_s']:.1f}s"
    except NotAvailable as e:
        return args, "unavailable", str(e)
    except Exception as e:  # noqa: BLE001 - one failed run must not stop the others
        return args, "error", f"{e!r}\n{traceback.format_exc()}"


# -- metrics ---------------------------------------------------------------------------------

def true_front_hv(problem: str) -> dict:
    from pymoo.util.ref_dirs import get_reference_directions
    p = make_problem(problem)
    if problem.startswith("zdt"):
        pf = p.pareto_front(n_pareto_points=N_PARETO, use_cache=False)
    else:
        pf = p.pareto_front(use_cache=False, ref_dirs=get_reference_directions(
            "das-dennis", 2, n_partitions=N_PARETO - 1))
    r = ref_point(problem)
    hv = float(HV(ref_point=r)(pf))
    # closed forms (2 objectives, front inside the reference box) to check the discretisation
    analytic = {"zdt1": r[0] * r[1] - 1 / 3, "zdt2": r[0] * r[1] - 2 / 3,
                "dtlz2": r[0] * r[1] - np.pi / 4}.get(problem)
    return {"hv": hv, "n_pareto_points": int(len(pf)), "analytic_hv": analytic,
            "discretisation_error": None if analytic is None else float(analytic - hv)}


def hv_curve(F: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """HV of the first n points, n = 1..len(F) (recomputed only when the front changes)."""
    ind = HV(ref_point=ref)
    out = np.zeros(len(F))
    best = None
    hv = 0.0
    for n in range(1, len(F) + 1):
        f = F[n - 1]
        if np.all(f < ref) and (best is None or not np.any(np.all(best <= f, axis=1))):
            best = f[None] if best is None else np.vstack([best, f])
            hv = float(ind(best))
        out[n - 1] = hv
    return out


def qstats(v: np.ndarray) -> dict:
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75), "n": int(len(v))}


def aggregate(methods, problems, seeds, budgets, truth) -> tuple[dict, dict]:
    """-> (stats[method][problem], curves[method][problem] = regret array (seeds, n))."""
    stats, curves = {}, {}
    code_hash = search_code_hash()
    for m in methods:
        for pr in problems:
            runs = [r for s in seeds if (r := load_run(m, pr, s, budgets[m])) is not None]
            if not runs:
                continue
            ref = ref_point(pr)
            B = budgets[m]
            hv = np.array([hv_curve(np.asarray(r["F"], float)[:B], ref) for r in runs])
            reg = truth[pr]["hv"] - hv
            curves.setdefault(m, {})[pr] = reg
            prop = np.concatenate([np.asarray(r["propose_s"], float) for r in runs]) \
                if any(r["propose_s"] for r in runs) else np.zeros(0)
            q = runs[0].get("q", 1) or 1
            st = {"seeds": [r["seed"] for r in runs], "budget": B, "q": q,
                  "n_initial": runs[0].get("n_initial"),
                  "checkpoints": {str(c): {"hv": qstats(hv[:, c - 1]),
                                           "regret": qstats(reg[:, c - 1])}
                                  for c in CHECKPOINTS if c <= B},
                  "propose_s": (qstats(prop) if len(prop) else None),
                  "propose_s_per_eval_median": (float(np.median(prop)) / q if len(prop)
                                                else None),
                  "run_wall_s": qstats(np.array([r["wall_s"] for r in runs])),
                  "config": runs[0].get("config"), "versions": runs[0].get("versions")}
            for k in ("fit_s", "acq_s"):
                if all(k in r for r in runs):
                    st[k + "_median"] = float(np.median(np.concatenate(
                        [np.asarray(r[k], float) for r in runs])))
            if m == "ours":
                stale = [r["seed"] for r in runs if r.get("code_hash") != code_hash]
                st["code_hash"] = code_hash
                st["stale_seeds"] = stale   # run with an older search/ than the current one
            stats.setdefault(m, {})[pr] = st
    return stats, curves


def _ck(stats, m, pr, c, key):
    try:
        return stats[m][pr]["checkpoints"][str(c)][key]["median"]
    except KeyError:
        return None


def goal_checks(stats, problems) -> dict:
    out = {}
    for pr in problems:
        ours_hv50, nsga_hv200 = _ck(stats, "ours", pr, 50, "hv"), _ck(stats, "nsga2", pr, 200, "hv")
        ours_r50, q_r50 = _ck(stats, "ours", pr, 50, "regret"), _ck(stats, "qlognehvi", pr, 50,
                                                                    "regret")
        a = {"ours_hv_at_50": ours_hv50, "nsga2_hv_at_200": nsga_hv200,
             "met": None if None in (ours_hv50, nsga_hv200) else bool(ours_hv50 >= nsga_hv200)}
        b = {"ours_regret_at_50": ours_r50, "qlognehvi_regret_at_50": q_r50,
             "limit": None if q_r50 is None else 1.1 * q_r50,
             "met": None if None in (ours_r50, q_r50) else bool(ours_r50 <= 1.1 * q_r50)}
        out[pr] = {"a_ours_hv50_ge_nsga2_hv200": a, "b_ours_regret50_le_1.1x_qlognehvi": b}
    return out


# -- output ----------------------------------------------------------------------------------

def plot(curves, problems, truth):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = []
    for pr in problems:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for m in METHODS:
            if pr not in curves.get(m, {}):
                continue
            reg = np.maximum(curves[m][pr], 1e-6)
            x = np.arange(1, reg.shape[1] + 1)
            q25, med, q75 = np.percentile(reg, [25, 50, 75], axis=0)
            ax.plot(x, med, color=COLORS[m], label=f"{m} ({reg.shape[0]} seeds)")
            ax.fill_between(x, q25, q75, color=COLORS[m], alpha=0.2, lw=0)
        ax.set_yscale("log")
        ax.set_xlim(1, 400)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("hypervolume regret")
        ax.set_title(f"{pr.upper()} (ref {tuple(PROBLEMS[pr][1])}, true HV {truth[pr]['hv']:.4f}):"
                     " median, IQR")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = RESULTS / f"{NAME}_{pr}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def table(stats, problems) -> list[dict]:
    rows = []
    for pr in problems:
        for m in METHODS:
            st = stats.get(m, {}).get(pr)
            if st is None:
                continue
            row = {"problem": pr, "method": m, "seeds": len(st["seeds"])}
            for c in CHECKPOINTS:
                ck = st["checkpoints"].get(str(c))
                row[f"regret@{c}"] = None if ck is None else ck["regret"]["median"]
                row[f"regret@{c}_iqr"] = None if ck is None else [ck["regret"]["q25"],
                                                                   ck["regret"]["q75"]]
                row[f"hv@{c}"] = None if ck is None else ck["hv"]["median"]
            row["propose_s_median"] = None if st["propose_s"] is None else st["propose_s"]["median"]
            row["q"] = st["q"]
            rows.append(row)
    return rows


def print_table(rows, checks, unavailable):
    head = f"{'problem':7s} {'method':10s} {'n':>3s} " + " ".join(
        f"{'reg@' + str(c):>17s}" for c in CHECKPOINTS) + f" {'prop s':>8s}"
    print(head)
    for r in rows:
        cells = []
        for c in CHECKPOINTS:
            v = r[f"regret@{c}"]
            cells.append(f"{'-':>17s}" if v is None else
                         f"{v:7.3f} [{r[f'regret@{c}_iqr'][0]:.2f},{r[f'regret@{c}_iqr'][1]:.2f}]"
                         .rjust(17))
        p = r["propose_s_median"]
        print(f"{r['problem']:7s} {r['method']:10s} {r['seeds']:3d} " + " ".join(cells)
              + f" {('-' if p is None else f'{p:.3f}'):>8s}" + (f" (q={r['q']})" if r["q"] != 1
                                                                 else ""))
    print("propose s: median seconds per proposed batch (fit + acquisition), initial design "
          "excluded; regret: median [IQR] over seeds")
    for m, why in unavailable.items():
        print(f"{m}: {why}")
    for pr, c in checks.items():
        a, b = c["a_ours_hv50_ge_nsga2_hv200"], c["b_ours_regret50_le_1.1x_qlognehvi"]
        fa = "n/a" if a["met"] is None else ("MET" if a["met"] else "not met")
        fb = "n/a" if b["met"] is None else ("MET" if b["met"] else "not met")
        print(f"goal {pr}: (a) ours HV@50 {a['ours_hv_at_50']} >= NSGA-II HV@200 "
              f"{a['nsga2_hv_at_200']}: {fa};  (b) ours regret@50 {b['ours_regret_at_50']} <= "
              f"1.1 x qLogNEHVI {b['qlognehvi_regret_at_50']}: {fb}")


def versions() -> dict:
    from importlib import metadata
    out = {}
    for d in ("pymoo", "numpy", "scipy", "torch", "botorch", "gpytorch", "linear_operator",
              "matplotlib"):
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--problems", default=",".join(PROBLEMS),
                    help=f"comma-separated subset of {','.join(PROBLEMS)}")
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    ap.add_argument("--budget", type=int, default=None,
                    help="evaluations for every method (default: 100 for the BO methods, "
                         "400 for nsga2 and random)")
    ap.add_argument("--plot-only", action="store_true",
                    help="run nothing: aggregate the cached runs, write JSON and plots")
    ap.add_argument("--rerun", default="",
                    help="comma-separated methods whose cached runs are ignored and redone")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel (default 1)")
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS/torch threads per run (default 1; read before numpy import)")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    problems = [p for p in args.problems.split(",") if p]
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}")
    for p in problems:
        if p not in PROBLEMS:
            ap.error(f"unknown problem {p!r}")
    rerun = {m for m in args.rerun.split(",") if m}
    seeds = list(range(args.seeds))
    budgets = {m: (args.budget or DEFAULT_BUDGET[m]) for m in METHODS}
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        pass

    command = "python benchmarks/search_synthetic.py " + " ".join(sys.argv[1:])
    truth = {p: true_front_hv(p) for p in problems}
    unavailable: dict[str, str] = {}
    errors: list[dict] = []
    if "ours" in methods:
        try:
            from search import minimize  # noqa: F401
        except ImportError as e:
            unavailable["ours"] = f"not available: {e!r}"
            print(f"ours: {unavailable['ours']} (skipped)", flush=True)

    def summarise():
        stats, curves = aggregate(methods, problems, seeds, budgets, truth)
        checks = goal_checks(stats, problems)
        rows = table(stats, problems)
        timing = {m: {pr: stats[m][pr]["propose_s"] for pr in stats[m]}
                  for m in BO_METHODS if m in stats}
        payload = {"command": command, "seeds": seeds, "budgets": {m: budgets[m] for m in methods},
                   "threads_per_run": args.threads, "checkpoints": CHECKPOINTS,
                   "problems": {p: {"get_problem": {"name": p, **PROBLEMS[p][0]},
                                    "ref_point": list(PROBLEMS[p][1]), "true_front": truth[p]}
                                for p in problems},
                   "table": rows, "goal_checks": checks, "propose_s_by_method": timing,
                   "stats": stats, "unavailable": unavailable, "errors": errors,
                   "pysamoo_note": PYSAMOO_NOTE, "versions": versions()}
        path = write_result(NAME, payload)
        pngs = plot(curves, problems, truth)
        return rows, checks, path, pngs

    if not args.plot_only:
        order = [m for m in RUN_ORDER if m in methods and m not in unavailable]
        for m in order:
            todo = [(m, pr, s, budgets[m]) for s in seeds for pr in problems
                    if m in rerun or load_run(m, pr, s, budgets[m]) is None]
            if not todo:
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {m}: {len(todo)} runs to do "
                  f"(budget {budgets[m]})", flush=True)
            if args.jobs > 1:
                from concurrent.futures import ProcessPoolExecutor
                with ProcessPoolExecutor(args.jobs) as ex:
                    results = ex.map(_job, todo)
                    outcome = _consume(results, unavailable, errors)
            else:
                outcome = _consume(map(_job, todo), unavailable, errors)
            if outcome:
                summarise()
    rows, checks, path, pngs = summarise()
    print_table(rows, checks, unavailable)
    print(f"wrote {path}")
    for p in pngs:
        print(f"wrote {p}")


def _consume(results, unavailable, errors) -> bool:
    """Print each run's outcome as it finishes; return True if any run finished."""
    any_ok = False
    for (m, pr, s, b), status, msg in results:
        if status == "ok":
            any_ok = True
            print(f"[{time.strftime('%H:%M:%S')}]   {m} {pr} seed {s}: {msg}", flush=True)
        elif status == "unavailable":
            unavailable[m] = msg
            print(f"  {m}: {msg} (skipped)", flush=True)
            if isinstance(results, map):      # sequential: skip the rest of this method
                return any_ok
        else:
            errors.append({"method": m, "problem": pr, "seed": s, "error": msg})
            print(f"  {m} {pr} seed {s}: FAILED {msg}", flush=True)
    return any_ok


if __name__ == "__main__":
    main()
