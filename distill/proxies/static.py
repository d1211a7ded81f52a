"""Proxies read off the architecture alone: parameter count and forward FLOPs.

Both are analytic (no jax, no allocation), so a search can ask them for thousands of
candidates. ``tests/test_proxies.py`` checks them against the built model
(:func:`distill.model.count_params`) and against XLA's own FLOP count of the compiled forward.
"""

from __future__ import annotations

from measurements.errors import InputError

from ..config import StudentConfig

__all__ = ["param_count", "embedding_params", "non_embedding_params", "forward_flops"]


def _linear(i: int, o: int) -> int:
    return i * o + o


def param_count(cfg: StudentConfig) -> int:
    """All parameters of :class:`distill.model.Encoder` (embeddings and pooler included);
    equals :func:`distill.model.count_params` without building anything."""
    h, a, e, f = cfg.hidden_size, cfg.attention_size, cfg.emb_size, cfg.ffn_size
    width = 3 * e if cfg.trigram_input else e
    n = embedding_params(cfg) + 2 * h                             # tables + embedding norm
    n += _linear(width, h) if width != h else 0                   # factorised-embedding transform
    layer = 0
    if cfg.intra_size:
        layer += _linear(h, a) + 2 * a + _linear(a, h) + 2 * h    # bottleneck in / out (+ norms)
    if cfg.kq_shared_bottleneck:
        layer += _linear(h, a) + 2 * a
    v_in = h if cfg.kq_shared_bottleneck else a
    layer += 3 * _linear(a, a) + _linear(v_in, a) + 2 * a         # q, k, out, v; attention norm
    layer += cfg.num_ffn * (_linear(a, f) + _linear(f, a) + 2 * a)
    n += cfg.num_layers * layer
    n += _linear(h, h) if cfg.pooler else 0
    return n


def embedding_params(cfg: StudentConfig) -> int:
    """The embedding tables: word (V x E), position (P x H) and token type (2 x H)."""
    return (cfg.vocab_size * cfg.emb_size + cfg.max_positions * cfg.hidden_size
            + cfg.type_vocab_size * cfg.hidden_size)


def non_embedding_params(cfg: StudentConfig) -> int:
    """Parameters outside the embedding tables (Kaplan et al. 2020's N): the layers, the
    factorised-embedding transform, norms and the pooler."""
    return param_count(cfg) - embedding_params(cfg)


def forward_flops(cfg: StudentConfig, seq_len: int = 128) -> int:
    """FLOPs (2 per multiply-add) of the matmuls of one sequence's forward pass at ``seq_len``
    tokens: dense layers, attention scores (QK^T) and the attention-weighted sum (PV).
    Elementwise work (softmax, norms, activations, bias adds) is left out: it is a few per
    cent of the total at BERT shapes (see the test against XLA's count)."""
    if seq_len <= 0:
        raise InputError(f"seq_len={seq_len} must be positive")
    t, h, a, e, f = seq_len, cfg.hidden_size, cfg.attention_size, cfg.emb_size, cfg.ffn_size
    width = 3 * e if cfg.trigram_input else e
    mm = lambda m, k, n: 2 * m * k * n                            # noqa: E731
    total = mm(t, width, h) if width != h else 0
    layer = 0
    if cfg.intra_size:
        layer += mm(t, h, a) + mm(t, a, h)
    if cfg.kq_shared_bottleneck:
        layer += mm(t, h, a)
    v_in = h if cfg.kq_shared_bottleneck else a
    layer += 3 * mm(t, a, a) + mm(t, v_in, a)                     # q, k, out; v
    layer += 2 * mm(t, t, a)                                      # QK^T and PV over all heads
    layer += cfg.num_ffn * (mm(t, a, f) + mm(t, f, a))
    total += cfg.num_layers * layer
    total += mm(1, h, h) if cfg.pooler else 0                     # pooler on [CLS]
    return total


# -- as proxies (common signature; the value does not depend on init or seed) ------------------
def params(config: StudentConfig, ctx, *, init: str = "random", seed: int = 0):
    """``params``: :func:`non_embedding_params` of the architecture."""
    from .base import timed
    return timed("params", seed, lambda: non_embedding_params(config))


def flops(config: StudentConfig, ctx, *, init: str = "random", seed: int = 0):
    """``flops``: :func:`forward_flops` per sequence at ``ctx.seq_len`` tokens."""
    from .base import timed
    seq_len = getattr(ctx, "seq_len", 128)
    return timed("flops", seed, lambda: forward_flops(config, seq_len))
