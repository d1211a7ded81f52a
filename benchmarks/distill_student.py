"""Distil a 4-layer, hidden-256 student from the default teacher for at most --minutes on this
CPU, evaluating STS-B dev Spearman along the way (off the training clock), then score the
final student on STS-B dev and the SST-2 probe against the teacher's own scores (same code).
Goals: >= 90% of the teacher's STS-B dev Spearman, >= 95% of its SST-2 probe accuracy.
Resumable (re-run the same command). Writes benchmarks/results/distill_student.{json,png}.

    python benchmarks/distill_student.py --minutes 30 --steps 3400 --eval-every 500 \
        --workdir build/distill_student_packed
    python benchmarks/distill_student.py --plot-only \
        --compare benchmarks/results/distill_student_padded.json    # redraw with an earlier run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, write_result  # noqa: E402

from distill import StudentConfig, default_teacher_dir, load_encoder, load_tokenizer  # noqa
from distill.corpus import distillation_pairs, distillation_texts, task_split  # noqa: E402
from distill.evaluate import probe_accuracy, stsb_spearman  # noqa: E402
from distill.train import DistillConfig, Distiller  # noqa: E402

STUDENT = StudentConfig(num_layers=4, hidden_size=256, num_heads=4, ffn_size=1024)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--workdir", default="build/distill_student")
    ap.add_argument("--no-packing", action="store_true", help="padded batches (for comparison)")
    ap.add_argument("--pair-every", type=int, default=0, help="every Nth batch sentence pairs")
    ap.add_argument("--w-hidden", type=float, default=0.0, help="hidden-state loss weight")
    ap.add_argument("--w-attention", type=float, default=0.0, help="attention KL weight")
    ap.add_argument("--tag", default="", help="suffix of the result files (several runs)")
    ap.add_argument("--compare", action="append", default=[], metavar="JSON",
                    help="also draw the curve of an earlier result file (repeatable)")
    ap.add_argument("--plot-only", action="store_true",
                    help="redraw the PNG from the result JSON without training")
    args = ap.parse_args()
    name = "distill_student" + (f"_{args.tag}" if args.tag else "")
    if args.plot_only:
        plot(json.loads((RESULTS / f"{name}.json").read_text()), args.compare, name)
        return
    tdir = default_teacher_dir()
    teacher = load_encoder(tdir)
    tok = load_tokenizer(tdir, max_len=64)
    eval_tok = load_tokenizer(tdir, max_len=128)
    dev = task_split("stsb", "dev")
    texts = distillation_texts()
    cfg = DistillConfig(steps=args.steps, minutes=args.minutes, batch_size=args.batch_size,
                        lr=args.lr, eval_every=args.eval_every, ckpt_every=250,
                        packing=not args.no_packing, pair_every=args.pair_every,
                        w_hidden=args.w_hidden, w_attention=args.w_attention)
    d = Distiller(STUDENT, teacher, tok, cfg)
    pairs = distillation_pairs() if args.pair_every else None
    res = d.run(texts, args.workdir, pairs=pairs, on_eval=lambda m, s: {
        "stsb_dev_spearman": stsb_spearman(m, eval_tok, dev)})
    student = d.student()
    d.save_student(Path(args.workdir) / "student", tokenizer_from=tdir)
    sst_train, sst_dev = task_split("sst2", "train")[:20000], task_split("sst2", "dev")
    scores = {"student": {"stsb": stsb_spearman(student, eval_tok, dev),
                          "sst2_probe": probe_accuracy(student, eval_tok, sst_train, sst_dev)},
              "teacher": {"stsb": stsb_spearman(teacher, eval_tok, dev),
                          "sst2_probe": probe_accuracy(teacher, eval_tok, sst_train, sst_dev)}}
    ratio = {k: scores["student"][k] / scores["teacher"][k] for k in ("stsb", "sst2_probe")}
    history = list(res.history) + [{"step": res.steps, "train_s": res.train_s,
                                    "stsb_dev_spearman": scores["student"]["stsb"]}]
    out = {"command": "python benchmarks/distill_student.py " + " ".join(sys.argv[1:]),
           "student": STUDENT.to_dict(), "distill_config": {
               k: v for k, v in vars(cfg).items()},
           "steps": res.steps, "train_minutes": res.train_s / 60,
           "tokens_per_s": res.tokens_per_s, "texts": len(texts), "scores": scores,
           "ratio_to_teacher": ratio,
           "goals": {"stsb>=0.90": ratio["stsb"] >= 0.90, "sst2>=0.95": ratio["sst2_probe"] >= 0.95,
                     "minutes<=30": res.train_s / 60 <= 30.05},
           "curve": history}
    print(json.dumps({k: out[k] for k in ("steps", "train_minutes", "scores", "ratio_to_teacher",
                                          "goals")}, indent=2, default=float))
    print(f"wrote {write_result(name, out)}")
    plot(out, args.compare, name)


def plot(out: dict, compare: list[str], name: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    def label(run):
        packed = run["distill_config"].get("packing", False)
        return f"4L/H256, {'packed' if packed else 'padded'} batches, {run['steps']} steps"
    runs = [(out, label(out))] + [(o, f"{label(o)} ({Path(p).name})") for p, o in
                                  ((p, json.loads(Path(p).read_text())) for p in compare)]
    for i, (run, text) in enumerate(runs):
        ax.plot([h["train_s"] / 60 for h in run["curve"]],
                [h["stsb_dev_spearman"] for h in run["curve"]], "o-" if i == 0 else "s--",
                label=text, alpha=1.0 if i == 0 else 0.6)
    teacher = out["scores"]["teacher"]["stsb"]
    ax.axhline(teacher, color="k", ls="--", label="teacher")
    ax.axhline(0.9 * teacher, color="grey", ls=":", label="90% of teacher")
    ax.set_xlabel("training minutes (this CPU)")
    ax.set_ylabel("STS-B dev Spearman")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=120)
    print(f"wrote {RESULTS / (name + '.png')}")


if __name__ == "__main__":
    main()
