"""The default teacher scored by our flax implementation and by transformers' PyTorch model,
same tokenizer, mean pooling, max_len 128: STS-B dev Spearman (goal: equal within 0.002) and
the SST-2 logistic-regression probe (20k train sentences, dev accuracy) as the reference for
distilled students. Writes benchmarks/results/teacher_parity.json.

    python benchmarks/teacher_parity.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402
from transformers import BertModel  # noqa: E402

from distill import default_teacher_dir, load_encoder, load_tokenizer  # noqa: E402
from distill.corpus import task_split  # noqa: E402
from distill.evaluate import probe_accuracy, stsb_spearman  # noqa: E402


def torch_embed(model, tok, texts, bs=128):
    out = []
    with torch.no_grad():
        for s in range(0, len(texts), bs):
            b = tok(texts[s:s + bs])
            h = model(**{k: torch.tensor(v).long() for k, v in b.items()}).last_hidden_state
            m = torch.tensor(b["attention_mask"])[..., None].float()
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(e, dim=-1).numpy())
    return np.concatenate(out)


def main():
    d = default_teacher_dir()
    tok = load_tokenizer(d, max_len=128)
    dev = task_split("stsb", "dev")
    t0 = time.time()
    ours = stsb_spearman(load_encoder(d), tok, dev)
    t_ours = time.time() - t0
    ref_model = BertModel.from_pretrained(str(d)).eval()
    t0 = time.time()
    a = torch_embed(ref_model, tok, [e.text_a for e in dev])
    b = torch_embed(ref_model, tok, [e.text_b for e in dev])
    ref = float(stats.spearmanr((a * b).sum(1), [e.label for e in dev]).statistic)
    t_ref = time.time() - t0
    probe = probe_accuracy(load_encoder(d), tok, task_split("sst2", "train")[:20000],
                           task_split("sst2", "dev"))
    res = {"command": "python benchmarks/teacher_parity.py",
           "stsb_dev_spearman": {"flax": ours, "transformers_torch": ref,
                                 "abs_diff": abs(ours - ref), "goal_abs_diff<=0.002":
                                     abs(ours - ref) <= 0.002},
           "sst2_probe_dev_accuracy_flax": probe,
           "stsb_eval_seconds": {"flax": t_ours, "transformers_torch": t_ref,
                                 "ratio_torch_over_flax": t_ref / t_ours}}
    print(res)
    print(f"wrote {write_result('teacher_parity', res)}")


if __name__ == "__main__":
    main()
