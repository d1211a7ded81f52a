"""Profile per-op HLO timings of architectures sampled from the search space, on this machine,
and store them (with each program's end-to-end latency) under the hardware fingerprint.

  hwdistill profile --target cpu --archs 60 --workload 1,128 --workload 8,128

Sampling is deterministic in --seed. Resumable: pairs already in the store are skipped, so an
interrupted sweep continues where it stopped. `hwdistill fit` trains on what is stored.

Drift-corrected by default: this machine's speed drifts by tens of percent over the minutes a
sweep takes, so each program is timed run by run beside a reference program (--reference,
profiled first) and its label scaled to the speed the reference was profiled at; the record
keeps the uncorrected latency and the factor. --reference none times each program alone.
TPU/GPU: run the same command on that machine (--target local) and merge the store here with
`hwdistill store import`.
"""

from __future__ import annotations

from measurements.errors import InputError

from .common import add_store_arg, add_space_arg, load_space

DEFAULT_WORKLOADS = ["1,128", "8,128"]


def add_parser(p):
    p.add_argument("--target", default="cpu", choices=["cpu", "local"],
                   help="backend to profile on (default %(default)s); TPU timings need a TPU VM")
    p.add_argument("--archs", type=int, default=40, help="architectures to sample")
    p.add_argument("--preset", action="append", default=[],
                   help="also profile this preset (repeatable)")
    p.add_argument("--workload", action="append", default=None, metavar="B,S[,DTYPE]",
                   help=f"repeatable (default: {' '.join(DEFAULT_WORKLOADS)})")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default %(default)s)")
    p.add_argument("--runs", type=int, default=10, help="profiled runs per program")
    p.add_argument("--budget-s", type=float, default=3.0,
                   help="end-to-end timing budget per program (default %(default)s)")
    p.add_argument("--reference", default="bert-mini@8,128", metavar="ARCH@B,S",
                   help="program timed beside each one to correct the machine's drift "
                        "(default %(default)s; 'none': time each program alone)")
    p.add_argument("--allow-foreign", action="store_true",
                   help="add records to a store written on other hardware")
    add_space_arg(p)
    add_store_arg(p)


def run(args):
    from tqdm import tqdm

    from distill import PRESETS, Workload
    from measurements import Store, detect
    from perfmodel.sweep import profile_pairs

    workloads = [Workload.parse(w) for w in (args.workload or DEFAULT_WORKLOADS)]
    cfgs = load_space(args.space).sample_configs(args.archs, args.seed) if args.archs else []
    for name in args.preset:
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
        cfgs.append(PRESETS[name])
    pairs = [(c, w) for c in cfgs for w in workloads]
    reference = None
    if args.reference != "none":
        from perfmodel.validate import parse_program
        reference = parse_program(args.reference)
        if reference not in pairs:          # profiled first, as its own anchor
            pairs.insert(0, reference)
    fp = detect(args.target)
    with Store(args.store) as store:
        store.check_fingerprint(fp, allow_foreign=args.allow_foreign)
        store.register_fingerprint(fp)
        run_id = store.start_run("profile", fingerprint_id=fp.id, args=vars(args) | {
            "_run": None})
        bar = tqdm(total=len(pairs), desc="profiling", unit="prog")

        def progress(msg):
            bar.set_postfix_str(msg)
            bar.update(1)
        try:
            res = profile_pairs(store, fp, pairs, run_id=run_id, runs=args.runs,
                                budget_s=args.budget_s, progress=progress,
                                reference=reference)
        except BaseException:
            store.finish_run(run_id, "interrupted")
            raise
        finally:
            bar.close()
        store.finish_run(run_id)
    print(f"profiled {res.profiled} program(s), skipped {res.skipped} already stored, "
          f"{res.ops_stored} op records added to {store.path} (fingerprint {fp.id})")
    return 0
