"""GLUE fine-tuning on the real train/dev splits: the default teacher and a distilled student.

For each model and task, the encoder plus a fresh head (regression for STS-B, 2-way softmax for
SST-2 and MRPC) is fine-tuned with AdamW (warm-up + cosine decay, --lr, batch 32) and scored
on dev: STS-B Spearman/Pearson of the predicted similarity, SST-2 and MRPC accuracy. The teacher
is the reference the student is compared with (same code, same steps). Writes
benchmarks/results/glue_finetune[_TAG].json.

    python benchmarks/glue_finetune.py --student build/distill_student/student \
        --task stsb --task sst2 --epochs 1 --max-steps 1500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from distill import default_teacher_dir, load_encoder, load_tokenizer  # noqa: E402
from distill.corpus import task_split  # noqa: E402
from distill.evaluate import finetune  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--student", default="build/distill_student/student",
                    help="distilled student directory (from benchmarks/distill_student.py); "
                         "skipped with a note when absent")
    ap.add_argument("--task", action="append", choices=["stsb", "sst2", "mrpc"])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=None,
                    help="cap on optimiser steps per task (SST-2 has 2,100 per epoch)")
    ap.add_argument("--tag", default="", help="suffix of the result file (several recipes)")
    ap.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (default 5e-5)")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    tasks = args.task or ["stsb", "sst2"]
    models = {"teacher": default_teacher_dir()}
    if Path(args.student).is_dir():
        models["student"] = Path(args.student)
    else:
        print(f"no student at {args.student}: run benchmarks/distill_student.py first; "
              "fine-tuning the teacher only")
    scores: dict[str, dict] = {}
    for name, d in models.items():
        tok = load_tokenizer(d, max_len=128)
        for task in tasks:
            t0 = time.time()
            r = finetune(load_encoder(d), tok, task_split(task, "train", args.data_dir),
                         task_split(task, "dev", args.data_dir), regression=task == "stsb",
                         epochs=args.epochs, max_steps=args.max_steps, lr=args.lr)
            r["minutes"] = round((time.time() - t0) / 60, 2)
            scores.setdefault(name, {})[task] = r
            print(f"{name} {task}: {r}", flush=True)
    ratio = {}
    if "student" in scores:
        key = {"stsb": "spearman", "sst2": "accuracy", "mrpc": "accuracy"}
        ratio = {t: scores["student"][t][key[t]] / scores["teacher"][t][key[t]] for t in tasks}
    res = {"command": "python benchmarks/glue_finetune.py " + " ".join(sys.argv[1:]),
           "models": {k: str(v) for k, v in models.items()}, "epochs": args.epochs,
           "max_steps": args.max_steps, "batch_size": 32, "lr": args.lr, "scores": scores,
           "student_over_teacher": ratio}
    print(f"wrote {write_result('glue_finetune' + (f'_{args.tag}' if args.tag else ''), res)}")


if __name__ == "__main__":
    main()
