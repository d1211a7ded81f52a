"""Distillation training throughput (tokens/s) of our jitted step vs. the same step in PyTorch
with transformers' BertModel, same student shape (4L, H256), same teacher, same sentences per
step, same losses (embedding MSE through a linear map + in-batch similarity MSE + cosine),
AdamW, on this CPU, timed in interleaved rounds (median per side). Goal: ours/torch >= 1.

Three sides, each given the 64 sentences of a step in its own best layout:
  ours (packed)  the step `hwdistill distill` runs: sentences packed into rows of 64 tokens
                 with block-diagonal attention (distill.packing), ~85% of positions are tokens;
  ours (padded)  the same jitted step on the padded batch (rows padded to a multiple of 16,
                 which jit needs for few shapes): the implementation-for-implementation ratio;
  torch          padded to the longest sentence of each batch (no multiple: eager PyTorch pays
                 nothing for new shapes), what transformers' DataCollatorWithPadding does.
Tokens/s counts real tokens only, the same number on every side.
Writes benchmarks/results/throughput.json.

    python benchmarks/throughput.py --steps 20 --rounds 7
"""

from __future__ import annotations

import argparse
import json
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
        return float(loss.detach())
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

    def timed_round(run_batches, batches):
        t0 = time.perf_counter()
        run_batches(batches)
        return time.perf_counter() - t0

    sides = {}   # name -> (run(batches), all batches: 5 warm-up, then the timed ones)
    teacher = load_encoder(tdir)
    for name, packing in (("ours_packed", True), ("ours_padded", False)):
        d = Distiller(STUDENT, teacher, tok, DistillConfig(steps=1000, packing=packing))

        def run(batches, d=d):
            for b in batches:
                d.train_step(b)
            jax.block_until_ready(d.params)
        sides[name] = (run, [d.prepare([texts[i] for i in g]) for g in groups])

    torch.set_num_threads(2)
    step = torch_step_fn(tdir, args.batch_size)

    def run_torch(batches):
        for b in batches:
            step(b)
    sides["torch"] = (run_torch, [{k: v[:, :int(b["attention_mask"].sum(1).max())]
                                   for k, v in b.items()} for b in bts])
    shapes = {n: sorted({b["input_ids"].shape for b in bs}) for n, (_, bs) in sides.items()}
    for n, (run, bs) in sides.items():
        assert sum(int(b["attention_mask"].sum()) for b in bs[5:]) == sum(tokens), n
        # warm up outside the timed region, compiling every batch shape jit will meet
        run(bs[:5] + [next(b for b in bs if b["input_ids"].shape == shp) for shp in shapes[n]])

    # interleaved rounds: this shared machine drifts by tens of percent over minutes
    times = {n: [] for n in sides}
    for r in range(args.rounds):
        for n, (run, bs) in sides.items():
            times[n].append(timed_round(run, bs[5:]))
        print(f"round {r + 1}/{args.rounds}: " +
              ", ".join(f"{n} {sum(tokens) / t[-1]:.0f} tok/s" for n, t in times.items()),
              flush=True)
    med = {n: float(np.median(t)) for n, t in times.items()}
    ratio = med["torch"] / med["ours_packed"]
    res = {"command": "python benchmarks/throughput.py " + " ".join(sys.argv[1:]),
           "student": STUDENT.to_dict(), "batch_size": args.batch_size, "steps": args.steps,
           "tokens": sum(tokens),
           "tokens_per_s": {n: sum(tokens) / t for n, t in med.items()},
           "ratio_ours_over_torch": ratio, "goal_ratio>=1": ratio >= 1,
           "ratio_padded_over_torch": med["torch"] / med["ours_padded"],
           "ratio_packed_over_padded": med["ours_padded"] / med["ours_packed"],
           "ratio_per_round": [t / o for o, t in zip(times["ours_packed"], times["torch"])],
           "ratio_padded_per_round": [t / o for o, t in zip(times["ours_padded"],
                                                            times["torch"])],
           "rounds": args.rounds, "round_s": times,
           "batch_shapes": {n: [list(x) for x in v] for n, v in shapes.items()},
           "positions_per_token": {n: sum(b["input_ids"].size for b in bs[5:]) / sum(tokens)
                                   for n, (_, bs) in sides.items()},
           "torch_threads": torch.get_num_threads()}
    print(json.dumps({k: res[k] for k in ("tokens_per_s", "ratio_ours_over_torch",
                                          "ratio_padded_over_torch", "positions_per_token")},
                     indent=1))
    print(f"wrote {write_result('throughput', res)}")


if __name__ == "__main__":
    main()
