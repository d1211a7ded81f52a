"""Distillation distances: pure functions of arrays (shapes in comments).

* Sentence-embedding transfer: MSE / cosine between student and teacher mean-pooled embeddings
  (Reimers & Gurevych 2020, "Making Monolingual Sentence Embeddings Multilingual using
  Knowledge Distillation", arXiv:2004.09813: MSE to the teacher's embedding).
* Hidden-state transfer through a learned linear map when widths differ (Jiao et al. 2020,
  TinyBERT, arXiv:1909.10351, Eq. 7).
* Attention transfer: KL between attention distributions (Sun et al. 2020, MobileBERT, Eq. 2);
  heads are averaged when student and teacher head counts differ.
"""

from __future__ import annotations


import jax.numpy as jnp
from measurements.errors import InputError

__all__ = ["embedding_mse", "embedding_cosine", "hidden_mse", "attention_kl", "layer_map",
           "similarity_mse"]


def embedding_mse(student, teacher):
    """(B, D), (B, D) -> scalar."""
    return jnp.mean(jnp.square(student - teacher))


def embedding_cosine(student, teacher):
    """1 - cosine similarity, averaged over the batch. (B, D), (B, D) -> scalar."""
    s = student / jnp.clip(jnp.linalg.norm(student, axis=-1, keepdims=True), 1e-9)
    t = teacher / jnp.clip(jnp.linalg.norm(teacher, axis=-1, keepdims=True), 1e-9)
    return jnp.mean(1.0 - jnp.sum(s * t, axis=-1))


def hidden_mse(student, teacher, mask):
    """Masked MSE of hidden states; ``student`` already mapped to the teacher's width.
    (B, T, D), (B, T, D), (B, T) -> scalar."""
    m = mask[..., None].astype(student.dtype)
    return jnp.sum(jnp.square(student - teacher) * m) / (jnp.sum(m) * student.shape[-1])


def attention_kl(student, teacher, mask):
    """KL(teacher || student) of attention rows over valid query positions.
    (B, hs, T, T), (B, ht, T, T), (B, T) -> scalar. Heads are averaged if hs != ht."""
    if student.shape[1] != teacher.shape[1]:
        student = student.mean(axis=1, keepdims=True)
        teacher = teacher.mean(axis=1, keepdims=True)
    eps = 1e-9
    kl = jnp.sum(teacher * (jnp.log(teacher + eps) - jnp.log(student + eps)), axis=-1)
    m = mask[:, None, :].astype(kl.dtype)                         # (B, 1, T) valid queries
    return jnp.sum(kl * m) / (jnp.sum(m) * kl.shape[1])


def layer_map(student_layers: int, teacher_layers: int, mode: str = "uniform") -> list[int]:
    """Teacher layer (1-based hidden-state index) each student layer learns from.

    ``uniform``: student layer i <- teacher layer ceil(i * T / S) (TinyBERT's g(m) = m * T/S);
    ``last``: the last S teacher layers."""
    if student_layers <= 0 or teacher_layers <= 0:
        raise InputError(f"layer counts must be positive: {student_layers}, {teacher_layers}")
    if mode == "uniform":
        return [max(1, round(i * teacher_layers / student_layers))
                for i in range(1, student_layers + 1)]
    if mode == "last":
        if student_layers > teacher_layers:
            raise InputError(f"mode 'last' needs student_layers <= teacher_layers; got "
                             f"{student_layers} > {teacher_layers}")
        return list(range(teacher_layers - student_layers + 1, teacher_layers + 1))
    raise InputError(f"unknown layer map mode {mode!r}; expected 'uniform' or 'last'")




def similarity_mse(student, teacher):
    """MSE between the in-batch cosine-similarity matrices of student and teacher embeddings:
    transfers the geometry the teacher's users rely on (cosine similarity) without needing equal
    widths (similarity-preserving KD, Tung & Mori 2019, arXiv:1907.09682).
    (B, Ds), (B, Dt) -> scalar."""
    def sim(x):
        x = x / jnp.clip(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-9)
        return x @ x.T                                                  # (B, B)
    return jnp.mean(jnp.square(sim(student) - sim(teacher)))
