"""Distillation training throughput (tokens/s) of our jitted step vs. the same step in PyTorch
with transformers' BertModel, same student shape (4L, H256), same teacher, same batches, same
losses (embedding MSE through a linear map + in-batch similarity MSE + cosine), AdamW, on this
CPU, timed in interleaved rounds (median per side). Goal: ratio ours/torch >= 1. Writes benchmarks/results/throughput.json.

    python benchmarks/throughput.py --steps 20 --rounds 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import BertConfig, BertModel  # noqa: E402

from distill import StudentConfig, default_teacher_dir, load_encoder, load_tokenizer  # noqa
from distill.corpus import distillation_texts  # noqa: E402
from distill.data import batch_indices  # noqa: E402
from distill.train import DistillConfig, Distiller  # noqa: E402

STUDENT = StudentConfig(num_layers=4, hidden_size=256, num_heads=4, ffn_size=1024)


def torch_step_fn(tdir, batch_size):
    teacher = BertModel.from_pretrained(str(tdir)).eval()
    s = BertModel(BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                             intermediate_size=1024, hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0), add_pooling_layer=False)
    head = torch.nn.Linear(256, 384)
    opt = torch.optim.AdamW(list(s.parameters()) + list(head.parameters()), lr=1e-3,
                            weight_decay=0.01)

    def pool(h, m):
        m = m[..., None].float()
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def sim(x):
        x = torch.nn.functional.normalize(x, dim=-1)
        return x @ x.T

    def step(b):
        ids, mask = torch.tensor(b["input_ids"]).long(), torch.tensor(b["attention_mask"]).long()
        with torch.no_grad():
            t = pool(teacher(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
        e = pool(s(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
        p = head(e)
        loss = ((p - t) ** 2).mean() + 100 * ((sim(e) - sim(t)) ** 2).mean() + \
            (1 - torch.nn.functional.cosine_similarity(p, t)).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(s.parameters()) + list(head.parameters()), 1.0)
        opt.step()
        return float(loss)
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    tdir = default_teacher_dir()
    tok = load_tokenizer(tdir, max_len=64)
    texts = distillation_texts()
    groups = batch_indices([len(t) for t in texts], args.batch_size, seed=0)[: args.steps + 5]
    bts = [{k: v[:, :64] for k, v in tok([texts[i] for i in g]).items()} for g in groups]
    tokens = [int(b["attention_mask"].sum()) for b in bts[5:]]

    d = Distiller(STUDENT, load_encoder(tdir), tok, DistillConfig(steps=1000))
    # compile every bucketed shape outside the timed region
    shapes = {b["input_ids"].shape for b in bts}
    for shp in shapes:
        b = next(x for x in bts if x["input_ids"].shape == shp)
        jax.block_until_ready(d._step_fn(d.params, d.opt_state, b, stage=0))
    def ours_round():
        t0 = time.perf_counter()
        for b in bts[5:]:
            d.params, d.opt_state, _, _ = d._step_fn(d.params, d.opt_state, b, stage=0)
        jax.block_until_ready(d.params)
        return time.perf_counter() - t0

    torch.set_num_threads(2)
    step = torch_step_fn(tdir, args.batch_size)
    for b in bts[:5]:
        step(b)

    def torch_round():
        t0 = time.perf_counter()
        for b in bts[5:]:
            step(b)
        return time.perf_counter() - t0

    # interleaved rounds: this shared machine drifts by tens of percent over minutes
    ours_t, torch_t = [], []
    for _ in range(args.rounds):
        ours_t.append(ours_round())
        torch_t.append(torch_round())
    ours_s, torch_s = float(np.median(ours_t)), float(np.median(torch_t))
    ratios = [t / o for o, t in zip(ours_t, torch_t)]
    res = {"command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:]),
           "student": STUDENT.to_dict(), "batch_size": args.batch_size, "steps": args.steps,
           "tokens": sum(tokens),
           "tokens_per_s": {"ours_jax": sum(tokens) / ours_s, "torch_transformers":
                            sum(tokens) / torch_s},
           "ratio_ours_over_torch": torch_s / ours_s, "goal_ratio>=1": torch_s / ours_s >= 1,
           "rounds": args.rounds, "ratio_per_round": ratios,
           "round_s": {"ours": ours_t, "torch": torch_t},
           "torch_threads": torch.get_num_threads()}
    print(res)
    print(f"wrote {write_result('throughput', res)}")


if __name__ == "__main__":
    main()
