"""A program's op list composed from a few reference programs ("parts"), so that predicting a
search space compiles far fewer programs than it has layer signatures.

The exact method (:mod:`perfmodel.predict`) compiles the 1/2/3-layer programs of every
*signature* (every field but ``num_layers``). Every quantity the predictor sums (ops, flops,
bytes, roofline time, XLA cycles, the learned per-op times) is additive over ops, so a
signature's totals can be written as a signed sum of other signatures' totals wherever the
fields act on separate ops. With the attention width ``A`` of a signature ``s`` and three
reference substitutions

- ``e0``: no factorised embedding (``embedding_size=None``);
- ``a0``: the reference head count :func:`reference_heads` (one head stays one head, and
  ``kq_shared_bottleneck`` is kept: both change how the last layer fuses with NoNorm, measured);
- ``f0``: one FFN of width ``A`` with GELU (``ffn_size=A, activation="gelu", num_ffn=1``);

the composition is first-order (ANOVA-like) around the centre ``s|e0,a0,f0``::

    T(s) = T(s|e0,f0) + T(s|a0,f0) + T(s|e0,a0) - 2 T(s|e0,a0,f0)

for every number of layers, each ``T`` being the exact 1/2/3-layer extrapolation of that
reference. The embedding, the heads and the FFN stack (size, activation, count) are the three
effects; everything else (hidden and bottleneck sizes, normalisation, kq sharing, vocabulary,
the workload) is shared by all four terms. The FFN term is keyed on the full stack (size,
activation *and* count) with the layer's widths because XLA:CPU does not fuse locally there:
with NoNorm the last layer's FFNs, its bottleneck and the mean pool become one ``__ynn_fusion``
of up to seven dots, and each further FFN re-computes the residual chain before it, so a
"one FFN times ``num_ffn``" part was off by up to 20% in bytes; keyed on the stack, the
composition matched the exact op totals on every sampled architecture (the accuracy check is
in ``tests/test_predict_compose.py`` and ``benchmarks/predict_speed.py``).

A reference that coincides with the signature (e.g. an unfactorised student with the
reference head count) makes the others cancel: such a signature costs exactly what the exact
method costs. Over the default space the 8,320 signatures (24,960 programs) need 2,306
references (6,918 programs).
"""

from __future__ import annotations

from collections import Counter

from distill import StudentConfig

from .growth import grows_with_depth

__all__ = ["reference_heads", "references", "plan", "plan_references", "programs", "Weights",
           "REFERENCE_HEAD_SIZE"]

REFERENCE_HEAD_SIZE = 32

# weights of a program's totals in a composed total: (at 1 layer, a, b) with a + b * L at L >= 2
Weights = tuple[float, float, float]
# the exact 1/2/3-layer extrapolation: T(1) = P1; T(L >= 2) = P2 + (L - 2)(P3 - P2)
_EXACT: dict[int, Weights] = {1: (1.0, 0.0, 0.0), 2: (0.0, 3.0, -1.0), 3: (0.0, -2.0, 1.0)}


def reference_heads(width: int, num_heads: int = 2) -> int:
    """The reference head count for an attention width: 1 for a single-head signature (one
    head needs no head transpose, (B, 1, T, d) -> (B, T, A) is a reshape, and XLA then fuses the
    out-projection with what follows differently: measured, a multi-head reference was off by
    1.4% in ops there), else heads of 32 units when there are at least two, else the fewest
    heads (at least two) of at most 64 units."""
    if num_heads == 1:
        return 1
    if width % REFERENCE_HEAD_SIZE == 0 and width // REFERENCE_HEAD_SIZE >= 2:
        return width // REFERENCE_HEAD_SIZE
    multi = [h for h in range(2, width + 1) if width % h == 0 and width // h <= 64]
    return min(multi) if multi else num_heads


def references(cfg: StudentConfig) -> dict[StudentConfig, int]:
    """The reference signatures (``num_layers=1``) whose exact totals compose ``cfg``'s, with
    their integer coefficients (references that coincide are merged; zeros dropped)."""
    s = cfg.replace(num_layers=1)
    a = s.attention_size
    e0 = {"embedding_size": None}
    a0 = {"num_heads": reference_heads(a, s.num_heads)}
    f0 = {"ffn_size": a, "activation": "gelu", "num_ffn": 1}
    coef: Counter = Counter()
    coef[s.replace(**e0, **f0)] += 1          # the heads (attention) effect
    coef[s.replace(**a0, **f0)] += 1          # the embedding effect
    coef[s.replace(**e0, **a0)] += 1          # the FFN stack effect
    coef[s.replace(**e0, **a0, **f0)] -= 2    # the centre
    return {r: k for r, k in coef.items() if k}


def plan_references(cfg: StudentConfig, *, exact: bool = False) -> dict[StudentConfig, int]:
    """The signatures (``num_layers=1``) whose programs :func:`plan` takes, with their
    coefficients: the signature itself for the exact method, else :func:`references`."""
    return {cfg.replace(num_layers=1): 1} if exact else references(cfg)


def plan(cfg: StudentConfig, *, exact: bool = False) -> dict[StudentConfig, Weights]:
    """Programs (configs with 1, 2 or 3 layers) and their weights: the composed total of any
    quantity at ``L`` layers is ``sum(w1 * t)`` at ``L == 1`` and ``sum((a + b * L) * t)``
    at ``L >= 2`` over the programs' totals ``t``. ``exact=True`` gives the exact method
    (the signature's own 1/2/3-layer programs)."""
    out: dict[StudentConfig, Weights] = {}
    for ref, k in plan_references(cfg, exact=exact).items():
        for n, (w1, a, b) in _EXACT.items():
            out[ref.replace(num_layers=n)] = (k * w1, k * a, k * b)
    return out


def programs(cfg: StudentConfig, *, exact: bool = False) -> list[StudentConfig]:
    """Every program a prediction of ``cfg``'s signature compiles: :func:`plan`'s, and the
    4-layer program of each reference whose per-layer ops grow with depth
    (:mod:`perfmodel.growth`)."""
    out = list(plan(cfg, exact=exact))
    out += [r.replace(num_layers=4) for r in plan_references(cfg, exact=exact)
            if grows_with_depth(r.normalization)]
    return out
