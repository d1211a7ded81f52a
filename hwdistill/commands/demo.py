"""The main job on embedded defaults, end to end on this machine (what `make demo` runs):

  1. profile per-op timings of 12 sampled students (2 workloads) into WORKDIR/store.db
  2. fit the op-latency model                       -> WORKDIR/model/
  3. predict the named presets instantly             (table)
  4. validate on 6 held-out students, interleaved   -> WORKDIR/validation/ (JSON + PNG)

Everything is resumable; re-running reuses what is stored. Takes about 5-10 minutes on 2 cores.
"""

from __future__ import annotations

from pathlib import Path


def add_parser(p):
    p.add_argument("--workdir", default="demo-out")
    p.add_argument("--archs", type=int, default=12)


def run(args):
    from hwdistill.cli import main

    w = Path(args.workdir)
    w.mkdir(parents=True, exist_ok=True)
    store = ["--store", str(w / "store.db")]
    wls = ["--workload", "1,64", "--workload", "4,64"]
    steps = [
        ["profile", "--archs", str(args.archs), *wls, "--runs", "6", "--budget-s", "1", *store],
        ["fit", *store, "--out", str(w / "model")],
        ["predict", "--model", str(w / "model"), "--workload", "4,64", "--arch", "bert-tiny",
         "--arch", "bert-mini", "--arch", "bert-small", "--arch", "minilm-l6-h384",
         "--arch", "mobilebert-tiny"],
        ["validate", "--archs", "6", *wls, "--rounds", "2", "--model", str(w / "model"),
         "--out", str(w / "validation"), *store],
    ]
    for cmd in steps:
        print(f"\n$ hwdistill {' '.join(cmd)}", flush=True)
        rc = main(cmd)
        if rc:
            return rc
    print(f"\ndemo done: store {w / 'store.db'}, model {w / 'model'}, "
          f"validation {w / 'validation'}")
    return 0
