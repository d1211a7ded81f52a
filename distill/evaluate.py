"""Evaluation on real data: STS-B zero-shot Spearman, SST-2 linear probe, GLUE fine-tuning.

* STS-B: Spearman correlation between gold scores and the cosine similarity of mean-pooled,
  L2-normalised sentence embeddings (the teacher's documented use; SentEval-style zero-shot).
* SST-2 probe: logistic regression on frozen embeddings (scikit-learn), accuracy on dev.
* Fine-tuning: the encoder plus a linear head on the mean-pooled embedding, trained end to end
  with AdamW (cross-entropy for classification, MSE on score/5 for STS-B).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy import stats

from measurements import hostlock

from .data import Example, batch_indices
from .model import Encoder, mean_pool
from .tokenizer import TextEncoder

__all__ = ["embed", "stsb_spearman", "probe_accuracy", "finetune"]


@functools.lru_cache(maxsize=8)
def _embed_fn(graphdef):
    @jax.jit
    def f(params, ids, mask, tt):
        out = nnx.merge(graphdef, params)(ids, mask, tt)
        return mean_pool(out.last_hidden_state, mask)
    return f


def embed(model: Encoder, tok: TextEncoder, texts: Sequence[str], batch_size: int = 128):
    """(N, H) L2-normalised mean-pooled embeddings, in input order."""
    graphdef, params = nnx.split(model)
    f = _embed_fn(graphdef)
    order = np.argsort([len(t) for t in texts])       # similar lengths together: less padding
    out = np.zeros((len(texts), model.config.hidden_size), np.float32)
    for s in range(0, len(texts), batch_size):
        idx = order[s:s + batch_size]
        b = tok([texts[i] for i in idx])
        with hostlock.work():
            out[idx] = np.asarray(f(params, b["input_ids"], b["attention_mask"],
                                    b["token_type_ids"]))
    return out


def stsb_spearman(model: Encoder, tok: TextEncoder, examples: Sequence[Example]) -> float:
    a = embed(model, tok, [e.text_a for e in examples])
    b = embed(model, tok, [e.text_b for e in examples])
    cos = np.sum(a * b, axis=1)
    return float(stats.spearmanr(cos, [e.label for e in examples]).statistic)


def probe_accuracy(model: Encoder, tok: TextEncoder, train: Sequence[Example],
                   dev: Sequence[Example], *, C: float = 1.0) -> float:
    """Logistic-regression probe on frozen embeddings (single-sentence tasks)."""
    from sklearn.linear_model import LogisticRegression
    xtr = embed(model, tok, [e.text_a for e in train])
    xdv = embed(model, tok, [e.text_a for e in dev])
    clf = LogisticRegression(C=C, max_iter=2000).fit(xtr, [e.label for e in train])
    return float(clf.score(xdv, [e.label for e in dev]))


class _Classifier(nnx.Module):
    def __init__(self, encoder: Encoder, n_out: int, rngs: nnx.Rngs):
        self.encoder = encoder
        self.head = nnx.Linear(encoder.config.hidden_size, n_out, rngs=rngs)

    def __call__(self, ids, mask, tt):
        h = self.encoder(ids, mask, tt).last_hidden_state
        return self.head(mean_pool(h, mask, normalize=False))


def finetune(model: Encoder, tok: TextEncoder, train: Sequence[Example],
             dev: Sequence[Example], *, regression: bool, epochs: int = 1,
             batch_size: int = 32, lr: float = 5e-5, seed: int = 0,
             max_steps: int | None = None, progress: bool = True) -> dict[str, float]:
    """Fine-tune encoder + head; returns dev accuracy (classification) or Spearman/Pearson."""
    n_out = 1 if regression else int(max(e.label for e in train)) + 1
    clf = _Classifier(model, n_out, nnx.Rngs(seed))
    graphdef, params = nnx.split(clf)
    groups = [g for ep in range(epochs) for g in batch_indices(
        [len(e.text_a) for e in train], batch_size, seed=seed, epoch=ep)]
    groups = groups[:max_steps] if max_steps else groups
    tx = optax.adamw(optax.warmup_cosine_decay_schedule(0, lr, max(1, len(groups) // 10),
                                                        len(groups)), weight_decay=0.01)
    opt = tx.init(params)

    def loss_fn(p, b, y):
        logits = nnx.merge(graphdef, p)(b["input_ids"], b["attention_mask"],
                                        b["token_type_ids"])
        if regression:
            return jnp.mean(jnp.square(logits[:, 0] - y))
        return optax.softmax_cross_entropy_with_integer_labels(logits, y.astype(jnp.int32)).mean()

    @jax.jit
    def step(p, o, b, y):
        loss, g = jax.value_and_grad(loss_fn)(p, b, y)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, loss

    def enc(exs):
        return tok([e.text_a for e in exs], [e.text_b for e in exs]) \
            if exs[0].text_b is not None else tok([e.text_a for e in exs])

    from tqdm import tqdm

    scale = 5.0 if regression else 1.0
    bar = tqdm(groups, desc="fine-tuning", disable=not progress)
    for g in bar:
        exs = [train[i] for i in g]
        params, opt, loss = step(params, opt, enc(exs),
                                 jnp.asarray([e.label / scale for e in exs], jnp.float32))
        if bar.n % 20 == 0:
            bar.set_postfix(loss=f"{float(loss):.4f}")
    predict = jax.jit(lambda p, b: nnx.merge(graphdef, p)(b["input_ids"], b["attention_mask"],
                                                          b["token_type_ids"]))
    preds = np.concatenate([np.asarray(predict(params, enc(dev[s:s + 64])))
                            for s in range(0, len(dev), 64)])
    gold = np.array([e.label for e in dev], float)
    if regression:
        return {"spearman": float(stats.spearmanr(preds[:, 0], gold).statistic),
                "pearson": float(stats.pearsonr(preds[:, 0], gold).statistic),
                "steps": len(groups)}
    return {"accuracy": float((preds.argmax(1) == gold).mean()), "steps": len(groups)}
