"""Evaluate a checkpoint directory (teacher or student) on real dev data.

  hwdistill evaluate --model students/mini --task stsb        # zero-shot cosine Spearman
  hwdistill evaluate --model students/mini --task sst2        # logistic-regression probe
  hwdistill evaluate --task stsb-finetune --task sst2-finetune # fine-tune a head, default teacher

Tasks: stsb, sst2 (frozen-embedding scores), stsb-finetune, sst2-finetune, mrpc-finetune
(GLUE fine-tuning). Without --model the default teacher is evaluated, as the reference.
"""

from __future__ import annotations

import json
import time


def add_parser(p):
    p.add_argument("--model", help="checkpoint directory (default: the default teacher)")
    p.add_argument("--task", action="append", required=True,
                   choices=["stsb", "sst2", "stsb-finetune", "sst2-finetune", "mrpc-finetune"])
    p.add_argument("--data-dir", help="data folder with stsb/, sst2/, wikitext2_raw/ (default: $HWDISTILL_DATA, else the STS-B and WikiText-2 shipped in distill/datasets)")
    p.add_argument("--probe-train", type=int, default=20000,
                   help="SST-2 train sentences for the probe (default %(default)s)")
    p.add_argument("--finetune-steps", type=int, default=1000,
                   help="cap on fine-tuning optimiser steps (batch 32; default 1000)")
    p.add_argument("--finetune-epochs", type=int, default=1,
                   help="passes over the train split, up to --finetune-steps (default 1)")
    p.add_argument("--json", action="store_true")


def run(args):
    from distill import default_teacher_dir, load_encoder, load_tokenizer
    from distill.corpus import task_split
    from distill.evaluate import finetune, probe_accuracy, stsb_spearman

    d = args.model or default_teacher_dir()
    model = load_encoder(d)
    tok = load_tokenizer(d, max_len=128)
    results = {}
    for task in args.task:
        t0 = time.time()
        if task == "stsb":
            r = {"spearman": stsb_spearman(model, tok, task_split("stsb", "dev", args.data_dir))}
        elif task == "sst2":
            train = task_split("sst2", "train", args.data_dir)[: args.probe_train]
            r = {"accuracy": probe_accuracy(model, tok, train,
                                            task_split("sst2", "dev", args.data_dir))}
        else:
            name = task.split("-")[0]
            r = finetune(load_encoder(d), tok, task_split(name, "train", args.data_dir),
                         task_split(name, "dev", args.data_dir), regression=name == "stsb",
                         epochs=args.finetune_epochs, max_steps=args.finetune_steps)
        r["seconds"] = round(time.time() - t0, 1)
        results[task] = r
        if not args.json:
            print(f"{task}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in r.items()))
    if args.json:
        print(json.dumps({"model": str(d), **results}, indent=2))
    return 0
