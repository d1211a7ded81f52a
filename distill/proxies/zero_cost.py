"""Zero-cost proxies: one gradient or forward pass of the student at initialisation.

Following Abdelfattah et al. 2021 ("Zero-Cost Proxies for Lightweight NAS", ICLR,
arXiv:2101.08134) and their reference code (``foresight/pruners/measures``), the per-weight
scores are summed over the weight matrices of the dense layers only (their ``Conv2d`` and
``Linear`` weights; here every ``nnx.Linear`` kernel: attention q/k/v/out, FFNs, bottlenecks,
the factorised-embedding transform and the pooler). Embedding tables, norms and biases are
not scored.

Adaptations to a sentence-embedding transformer distilled without a learned head:

* The loss of ``grad_norm`` and ``snip`` is :func:`distill.losses.similarity_mse` between the
  student's and the teacher's in-batch cosine-similarity matrices of mean-pooled embeddings
  (no task labels or heads exist at initialisation), and the gradients are averaged over the
  context's batches (the paper uses one batch).
* ``synflow``: see :func:`synflow`.
* ``naswot`` (Mellor et al. 2021, "Neural Architecture Search without Training", ICML,
  arXiv:2006.04647): see :func:`naswot`.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from measurements.errors import StateError

from .. import losses
from ..config import StudentConfig
from ..model import Encoder, mean_pool
from .base import ProxyContext, ProxyResult, build_student, result, timed

__all__ = ["grad_norm", "snip", "grad_norm_and_snip", "synflow", "naswot", "distill_grads"]


def _kernels(state) -> dict[tuple, jax.Array]:
    """The ``nnx.Linear`` kernels of a state (or of its gradient), by path."""
    return {path: var.value for path, var in nnx.to_flat_state(state) if path[-1] == "kernel"}


def _batch_args(b):
    return b["input_ids"], b["attention_mask"], b["token_type_ids"]


def distill_grads(student: Encoder, ctx: ProxyContext, score=None):
    """The gradient of the similarity-matching distillation loss, averaged over the context's
    batches, or ``score(params, grads)`` of it. Everything runs in one jitted function, new on
    every call, so its compilation is part of the caller's measured cost."""
    graph, params = nnx.split(student)
    batches = jax.tree.map(lambda *x: jnp.stack(x), *ctx.batches)            # (n, B, T)
    t_embs = jnp.stack(ctx.teacher_emb)                                        # (n, B, Ht)

    def loss(p, b, t_emb):
        out = nnx.merge(graph, p)(*_batch_args(b))
        s_emb = mean_pool(out.last_hidden_state, b["attention_mask"], normalize=False)
        return losses.similarity_mse(s_emb, t_emb)

    @jax.jit
    def run(p, batches, t_embs):
        def body(acc, xs):
            return jax.tree.map(jnp.add, acc, jax.grad(loss)(p, *xs)), None
        total, _ = jax.lax.scan(body, jax.tree.map(jnp.zeros_like, p), (batches, t_embs))
        g = jax.tree.map(lambda x: x / t_embs.shape[0], total)
        return g if score is None else score(p, g)

    return run(params, batches, t_embs)


def _grad_norm_score(p, g):
    return sum(jnp.linalg.norm(x) for x in _kernels(g).values())


def _snip_score(p, g):
    w, gw = _kernels(p), _kernels(g)
    return sum(jnp.sum(jnp.abs(gw[k] * w[k])) for k in w)


def grad_norm(config: StudentConfig, ctx: ProxyContext, *, init: str = "random",
              seed: int = 0) -> ProxyResult:
    """``grad_norm``: sum over dense layers of the Frobenius norm of the loss gradient of the
    layer's weight matrix (Abdelfattah et al.'s ``grad_norm``: per-layer norms, summed)."""
    def compute():
        return distill_grads(build_student(config, ctx, init, seed), ctx, _grad_norm_score)
    return timed("grad_norm", seed, compute)


def snip(config: StudentConfig, ctx: ProxyContext, *, init: str = "random",
         seed: int = 0) -> ProxyResult:
    """``snip`` (Lee et al. 2019, "SNIP", arXiv:1810.02340, as a NAS proxy in Abdelfattah et
    al.): sum over the dense-layer weights of |dL/dw * w|."""
    def compute():
        return distill_grads(build_student(config, ctx, init, seed), ctx, _snip_score)
    return timed("snip", seed, compute)


def grad_norm_and_snip(config: StudentConfig, ctx: ProxyContext, *, init: str = "random",
                       seed: int = 0) -> tuple[ProxyResult, ProxyResult]:
    """``grad_norm`` and ``snip`` from one gradient: the same loss on the same batches, so one
    student, one compilation and one pass serve both (what :func:`compute_proxies` runs when
    both are asked). Each result carries half of the joint wall time, so the costs of a set
    of proxies still add up to what computing it took."""
    t0 = time.perf_counter()
    g, s = distill_grads(build_student(config, ctx, init, seed), ctx,
                         lambda p, gr: (_grad_norm_score(p, gr), _snip_score(p, gr)))
    half = (time.perf_counter() - t0) / 2
    return result("grad_norm", g, half, seed), result("snip", s, half, seed)


class _Identity(nnx.Module):
    def __call__(self, x, residual=None):
        return x


class _OnesEmbed(nnx.Module):
    """An embedding lookup that returns all-ones vectors: synflow's all-ones input."""

    def __init__(self, features: int):
        self.features = features

    def __call__(self, ids):
        return jnp.ones(ids.shape + (self.features,), jnp.float64)


class _UniformAttention(nnx.Module):
    """Attention with uniform weights over the sequence: what softmax gives when every token
    is the same, computed without the scores (q.k grows with the square of the flow and
    overflows float64 in deep students)."""

    def __init__(self, attn):
        self.value, self.out = attn.value, attn.out

    def __call__(self, q_in, k_in, v_in, mask_bias):
        v = self.value(v_in)                                              # (B, T, A)
        ctx = jnp.broadcast_to(jnp.mean(v, axis=1, keepdims=True), v.shape)
        return self.out(ctx), None


def _synflow_surgery(m: Encoder) -> None:
    """LayerNorms -> identity (the ``bn=False`` variant: normalising the constant all-ones
    signal would zero it), word embedding lookup -> all ones, attention -> uniform."""
    def strip(owner, name):
        if isinstance(getattr(owner, name), nnx.LayerNorm):
            setattr(owner, name, _Identity())
    strip(m.embeddings, "norm")
    for layer in m.layers:
        strip(layer, "attn_norm")
        for b in (layer.bottleneck_in, layer.bottleneck_kq, layer.bottleneck_out):
            if b is not None:
                strip(b, "norm")
        for ffn in layer.ffns:
            strip(ffn, "norm")
        layer.attention = _UniformAttention(layer.attention)
    m.embeddings.word = _OnesEmbed(m.config.emb_size)


def synflow(config: StudentConfig, ctx: ProxyContext, *, init: str = "random",
            seed: int = 0) -> ProxyResult:
    """``synflow`` (Tanaka et al. 2020, "Pruning neural networks without any data by
    iteratively conserving synaptic flow", arXiv:2006.05467), as Abdelfattah et al. compute it:
    every parameter replaced by its absolute value, float64, one all-ones input,
    R = sum of the output, score = sum over dense-layer weights of |w * dR/dw|. Data-free:
    the batches are not used.

    Transformer adaptations: the input is all-ones *token embeddings* (the word lookup returns
    ones; position and token-type tables are kept, as |.|, like biases) for one sequence of
    the context's length; LayerNorms are removed (their ``bn=False`` variant; NoNorm, an
    elementwise affine map, is kept with |scale|, |bias|); attention weights are uniform over
    the sequence, as softmax makes them for identical tokens: the scores q.k grow with the
    square of the flow and overflow float64 in deep students (24-layer MobileBERT gave NaN),
    and the query/key projections (and MobileBERT's shared q/k bottleneck) carry no flow and
    score 0, as they would with exactly identical tokens; values, output projections, FFNs,
    bottlenecks and activations are kept. The output is the last hidden state (the pooler is
    not on the sentence embedding's path and scores 0). The value is the natural log of the
    score: the score is a product over depth spanning hundreds of orders of magnitude across
    architectures (e^40 for bert-mini); the log keeps every ranking."""
    seq_len = ctx.batches[0]["input_ids"].shape[1] if ctx.batches else 128

    def compute():
        student = build_student(config, ctx, init, seed)
        with jax.enable_x64(True):
            graph, state = nnx.split(student)

            def flow(p):
                m = nnx.merge(graph, p)
                _synflow_surgery(m)
                ids = jnp.zeros((1, seq_len), jnp.int32)
                return jnp.sum(m(ids).last_hidden_state)

            @jax.jit
            def synaptic_flow(state):
                p = jax.tree.map(lambda x: jnp.abs(x.astype(jnp.float64)), state)
                w, gw = _kernels(p), _kernels(jax.grad(flow)(p))
                return sum(jnp.sum(jnp.abs(w[k] * gw[k])) for k in w)

            score = float(synaptic_flow(state))
        if not score > 0:
            raise StateError(f"synflow score {score} is not positive (float64 over- or "
                             "underflow?)")
        return np.log(score)
    return timed("synflow", seed, compute)


def naswot(config: StudentConfig, ctx: ProxyContext, *, init: str = "random",
           seed: int = 0) -> ProxyResult:
    """``naswot`` (Mellor et al. 2021): log |K_H|, K_H[i, j] = N_A - Hamming(c_i, c_j), where
    c_i is input i's binary code of which units are active (x > 0), over every FFN's
    intermediate units in every layer (N_A units).

    Transformer adaptations: the units are the FFN pre-activations (exactly ReLU's linear
    regions; for GELU, the side of zero where it is near linear). An input is a sentence of
    several tokens, so its code is the per-unit fraction of its (unpadded) tokens on which the
    unit is active, p_i in [0, 1]^N_A, and K[i, j] = p_i . p_j + (1 - p_i) . (1 - p_j): the
    mean over token pairs of the token-level K_H, which is Mellor's kernel when a sentence has
    one token and stays positive semi-definite. The value is slogdet(K) averaged over the
    context's batches."""
    def compute():
        student = build_student(config, ctx, init, seed)
        graph, state = nnx.split(student)

        def codes(p, b):
            m = nnx.merge(graph, p)
            seen = []
            for layer in m.layers:
                for ffn in layer.ffns:
                    def record(x, act=ffn.act):
                        seen.append(x > 0)
                        return act(x)
                    ffn.act = record
            m(*_batch_args(b))
            mask = b["attention_mask"][..., None].astype(jnp.float32)
            c = jnp.concatenate(seen, axis=-1).astype(jnp.float32)       # (B, T, N_A)
            return jnp.sum(c * mask, axis=1) / jnp.sum(mask, axis=1)       # (B, N_A)

        f = jax.jit(codes)
        dets = []
        for b in ctx.batches:
            p = np.asarray(f(state, b), np.float64)
            k = p @ p.T + (1 - p) @ (1 - p).T
            sign, logdet = np.linalg.slogdet(k)
            if sign <= 0:
                raise StateError("naswot: the activation kernel is singular (two sentences "
                                 "with identical activation codes)")
            dets.append(logdet)
        return float(np.mean(dets))
    return timed("naswot", seed, compute)
