"""Compile one architecture's serving program on this machine, time it robustly, print a table
and store the result.

  hwdistill measure --arch bert-mini --workload 8,128
  hwdistill measure --arch my_student.toml --workload 1,128 --workload 32,128,bfloat16
  hwdistill measure --arch '{"num_layers": 4, "hidden_size": 256, "num_heads": 4, "ffn_size": 512}'

--arch takes a preset (bert-base, bert-medium, bert-small, bert-mini, bert-tiny,
minilm-l6-h384, mobilebert, mobilebert-tiny), a JSON/TOML file, a checkpoint directory or
inline JSON. Timing repeats until the median's 95% CI is within --target-ci or --budget-s is
spent; the compile time is reported apart. Repeat a measurement deliberately with --tag.
"""

from __future__ import annotations



from .common import add_store_arg, print_table


def add_parser(p):
    p.add_argument("--arch", required=True, help="preset name, JSON/TOML file, checkpoint "
                   "directory or inline JSON")
    p.add_argument("--workload", action="append", default=None, metavar="B,S[,DTYPE]",
                   help="batch,seq_len[,dtype]; repeatable (default: 8,128)")
    p.add_argument("--budget-s", type=float, default=10.0,
                   help="timing budget per workload in seconds (default %(default)s)")
    p.add_argument("--target-ci", type=float, default=0.02,
                   help="stop when the median's CI half-width is below this fraction "
                        "(default %(default)s)")
    p.add_argument("--tag", default="", help="label for a deliberate repeat of a measurement")
    p.add_argument("--allow-foreign", action="store_true",
                   help="add records to a store written on other hardware")
    add_store_arg(p)


def run(args):
    from distill import Workload, load_arch
    from measurements import Store, detect
    from perfmodel.measure import measure_latency, to_record

    cfg = load_arch(args.arch)
    workloads = [Workload.parse(w) for w in (args.workload or ["8,128"])]
    for wl in workloads:
        wl.check(cfg)
    fp = detect("cpu")
    rows = []
    with Store(args.store) as store:
        store.check_fingerprint(fp, allow_foreign=args.allow_foreign)
        store.register_fingerprint(fp)
        for wl in workloads:
            m = measure_latency(cfg, wl, budget_s=args.budget_s, target_rel_ci=args.target_ci)
            new = store.put_latency(to_record(m, fp, tag=args.tag))
            t = m.timing
            rows.append({"workload": str(wl), "params": f"{m.params / 1e6:.2f}M",
                         "GFLOPs": f"{m.flops / 1e9:.2f}", "compile_s": f"{m.compile_s:.2f}",
                         "median_ms": f"{t.median_ms:.3f}", "IQR_ms": f"{t.iqr_ms:.3f}",
                         "p90_ms": f"{t.p90_ms:.3f}",
                         "CI95_ms": f"{t.ci_low_s * 1e3:.3f}-{t.ci_high_s * 1e3:.3f}",
                         "runs": t.n_runs, "stored": "new" if new else "exists"})
    print(f"{args.arch} on {fp.describe()}")
    print_table(rows)
    print(f"store: {store.path}")
    return 0
