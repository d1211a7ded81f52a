"""Representation similarity between student and teacher at initialisation."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from measurements.errors import InputError

from ..config import StudentConfig
from ..model import mean_pool
from .base import ProxyContext, ProxyResult, build_student, timed

__all__ = ["linear_cka", "cka"]


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019, "Similarity of Neural Network Representations
    Revisited", arXiv:1905.00414, Eq. 5) of (n, p) and (n, q) feature matrices:
    ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F) on column-centred features, in [0, 1]."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise InputError(f"CKA needs the same n >= 2 rows: {x.shape} vs {y.shape}")
    x = x - x.mean(0)
    y = y - y.mean(0)
    den = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    if den == 0:
        raise InputError("CKA of a constant representation is undefined")
    return float(np.linalg.norm(y.T @ x) ** 2 / den)


def cka(config: StudentConfig, ctx: ProxyContext, *, init: str = "random",
        seed: int = 0) -> ProxyResult:
    """``cka``: linear CKA between the student's and the teacher's L2-normalised mean-pooled
    sentence embeddings of all the context's sentences, the student at initialisation."""
    def compute():
        student = build_student(config, ctx, init, seed)
        graph, state = nnx.split(student)

        @jax.jit
        def emb(p, b):
            out = nnx.merge(graph, p)(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            return mean_pool(out.last_hidden_state, b["attention_mask"])

        s = np.concatenate([np.asarray(emb(state, b)) for b in ctx.batches])
        t = np.concatenate(ctx.teacher_emb)
        t = t / np.clip(np.linalg.norm(t, axis=1, keepdims=True), 1e-12, None)
        return linear_cka(s, t)
    return timed("cka", seed, compute)
