"""Teacher-derived initialisation ("derived" init): a narrower, shallower BERT cut out of the
teacher so that, before any training, it already computes (an approximation of) the teacher.

Measured motivation (all-MiniLM-L6-v2, STS-B dev, no training): the teacher with layers simply
dropped scores 0.856 with 4 of 6 layers, while a 4L/H256 student distilled for 27 minutes from
a random-ish start reaches 0.820. A student that inherits the teacher's weights starts where a
scratch student ends. Four cuts, each a structured-pruning step:

* **Layers** (depth): student layer i is teacher layer ``layers[i]``; the default keeps the
  first and the last layer and spreads the rest evenly in between (:func:`default_layers`,
  which records the measurements behind the choice).
* **Heads**: each layer keeps ``num_heads`` of the teacher's heads (head size must equal the
  teacher's), ranked by the fluctuation of their output contribution on a calibration batch
  (the variance over tokens of ``ctx_h @ W_o[h]``; FLAP, An et al. 2024, arXiv:2312.11983),
  or by weight norms ``|W_v[h]| |W_o[h]|`` without a batch.
* **FFN units**: the ``ffn_size`` units with the largest fluctuation ``Var(a_j) |W_2[j]|^2`` (or
  ``|W_1[:, j]| |W_2[j]|`` without a batch). With a batch, the mean contribution of the dropped
  heads and units is folded into the output biases (FLAP's bias compensation).
* **Width**: the residual stream is carried in a basis ``B`` (teacher hidden H -> student h,
  orthonormal columns): student state ``s = B^T x``. Every weight reading the stream becomes
  ``B^T W`` (its bias absorbs the unrepresented mean ``(I - B B^T) mu`` of that stream), every
  weight writing it ``W B``, the embedding tables ``E B``. By default ``B`` selects the h
  hidden channels of largest variance over the teacher's streams on the calibration batch
  (each stream normalised to equal total variance; without a batch, of the word-embedding
  table), so every LayerNorm scale and bias is an exact slice. The alternative ``basis="pca"``
  (top-h principal directions) keeps more variance but LayerNorm's per-channel scale does not
  commute with a rotation (the student gets ``diag(B^T diag(g) B)``): on the real teacher it
  scored 0.06 lower at 4L/H256 and 3L/H192 (benchmarks/derive_init.py).
  Factorised embeddings (``embedding_size`` e < h) take the top-e principal directions of the
  projected word table, the transform maps them back (its bias the table's mean).

LayerNorm is the one approximation besides the dropped parts: the student normalises over its h
coordinates instead of the teacher's H, so its mean and variance differ from the teacher's.
Each student LayerNorm's scale is corrected by the ratio of the two standard deviations on the
calibration batch (teacher-forced; with no batch, no correction). When the student has the
teacher's shape and keeps every layer, nothing is dropped, ``B`` is the identity and the student
is the teacher (tested to 1e-5).

Measured (benchmarks/results/derive_init.json; STS-B dev Spearman at initialisation, teacher
0.867): 4L/H384 0.852, 4L/H256 (8 heads, FFN 1024) 0.825, 3L/H192 0.801, 2L/H128 0.676,
against 0.791 / 0.635 / 0.641 / 0.648 for init="teacher" and ~0.54 for random weights. Each
part counts at 4L/H256: no calibration batch 0.737, PCA basis 0.765, TinyBERT's layer map
0.797; in one-off runs (not in the JSON) no LayerNorm scale correction 0.818 and no bias
compensation 0.815. Training a derived student at the scratch learning rate (1e-3) first
loses ground (0.825 -> 0.774 after 75 steps, 0.803 after 150); at 2e-4 it keeps it (0.823,
0.827).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from measurements.errors import InputError

from .config import StudentConfig, derivable
from .model import Encoder, _act, init_encoder

__all__ = ["derivable", "derive_student", "DerivePlan", "plan_derivation", "apply_plan",
           "default_layers", "BASES"]

BASES = ("select", "pca")


# -- what can be derived -----------------------------------------------------------------------
def default_layers(student_layers: int, teacher_layers: int) -> list[int]:
    """Teacher layers (0-based) a student of ``student_layers`` keeps: evenly spaced from the
    first to the last, ``floor(i (T-1)/(S-1) + 1/2)`` for i = 0..S-1 (one layer: the last).
    For a 6-layer teacher: 1 -> [5], 2 -> [0, 5], 3 -> [0, 3, 5], 4 -> [0, 2, 3, 5],
    5 -> [0, 1, 3, 4, 5].

    Measured on all-MiniLM-L6-v2, STS-B dev, every subset of layers at full width and no
    training: keeping the first and the last layer matters most (the best 4-layer subset
    lacking either scores 0.830, the best 3-layer one 0.805), then spreading the rest (subsets
    clustered low lose: [0, 1, 2, 5] 0.770). This rule scores 0.745 / 0.802 / 0.842 / 0.852 /
    0.867 with 1 / 2 / 3 / 4 / 5 layers; the best subsets score 0.745 ([5]) / 0.802 / 0.842 /
    0.856 ([0, 2, 4, 5]) / 0.867, and the full teacher 0.867. TinyBERT's
    uniform map (losses.layer_map) drops layer 0: [1, 2, 3, 5] scores 0.791."""
    return _spread(student_layers, teacher_layers)


def _spread(s: int, t: int) -> list[int]:
    if not 0 < s <= t:
        raise InputError(f"cannot keep {s} of {t} teacher layers")
    if s == 1:
        return [t - 1]
    return sorted({int(np.floor(i * (t - 1) / (s - 1) + 0.5)) for i in range(s)})


# -- the teacher on a calibration batch --------------------------------------------------------
def _trace(teacher: Encoder, batch: Mapping[str, np.ndarray]) -> dict:
    """Statistics of the teacher's computation over the valid tokens of ``batch``: per stream
    (LayerNorm) its input ``v`` (pre-norm sum) and output ``x``; per layer the per-head output
    contributions and the FFN activations."""
    ids = jnp.asarray(batch["input_ids"])
    mask = jnp.asarray(batch["attention_mask"])
    tt = jnp.asarray(batch.get("token_type_ids", np.zeros_like(batch["input_ids"])))
    valid = np.asarray(mask).reshape(-1) > 0
    w = (mask > 0).astype(jnp.float32)[..., None, None]                      # (B,T,1,1)
    n = jnp.sum(mask > 0)
    # float32 per-token arrays (float64 only for the reductions that use them)
    flat = lambda a: np.asarray(a, np.float32).reshape(-1, a.shape[-1])[valid]
    cfg = teacher.config
    e = teacher.embeddings
    pos = jnp.arange(ids.shape[1])[None, :]
    v = e.word(ids) + e.position(pos) + e.token_type(tt)
    x = e.norm(v)
    out = {"emb": {"v": flat(v), "x": flat(x)}, "layers": []}
    bias = jnp.where(mask[:, None, None, :] > 0, 0.0, jnp.finfo(x.dtype).min)
    b, t, _ = x.shape
    nh, d = cfg.num_heads, cfg.head_size
    act = _act(cfg.activation)
    for layer in teacher.layers:
        att = layer.attention
        split = lambda y: y.reshape(b, t, nh, d).transpose(0, 2, 1, 3)
        q, k, vv = split(att.query(x)), split(att.key(x)), split(att.value(x))
        probs = jax.nn.softmax(q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(d) + bias, axis=-1)
        ctx = (probs @ vv).transpose(0, 2, 1, 3)                             # (B,T,h,d)
        wo = att.out.kernel.value.reshape(nh, d, -1)                         # (h,d,H)
        contrib = jnp.einsum("bthd,hdo->btho", ctx, wo)                      # (B,T,h,H)
        c_mean = jnp.sum(contrib * w, (0, 1)) / n                            # (h,H)
        c_fluct = jnp.sum(jnp.square(contrib - c_mean) * w, (0, 1, 3)) / n   # (h,)
        a_out = contrib.sum(2) + att.out.bias.value
        va = a_out + x
        y = layer.attn_norm(va)
        ffn = layer.ffns[0]
        a = act(ffn.inter(y))
        vf = ffn.out(a) + y
        xn = ffn.norm(vf)
        af = flat(a).astype(np.float64)
        out["layers"].append({
            "head_mean": np.asarray(c_mean, np.float64),                    # (h,H)
            "head_fluct": np.asarray(c_fluct, np.float64),                  # (h,)
            "act_mean": af.mean(0), "act_var": af.var(0),                    # (F,)
            "attn": {"v": flat(va), "x": flat(y)}, "ffn": {"v": flat(vf), "x": flat(xn)}})
        x = xn
    return out


# -- the plan ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DerivePlan:
    """What :func:`apply_plan` cuts out of the teacher."""

    layers: tuple[int, ...]                  # teacher layer (0-based) of each student layer
    heads: tuple[tuple[int, ...], ...]       # kept teacher heads per student layer (ascending)
    units: tuple[np.ndarray, ...]            # kept FFN units per student layer (ascending)
    basis: np.ndarray                        # (H, h) orthonormal columns: s = basis.T @ x
    stats: dict | None = None                # calibration statistics (None: weights only)


def _ln_params(norm) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(norm.scale.value, np.float64), np.asarray(norm.bias.value, np.float64)


def _basis(teacher: Encoder, h: int, stats: dict | None, layers: Sequence[int],
           kind: str) -> np.ndarray:
    """(H, h) basis of the student's residual stream."""
    H = teacher.config.hidden_size
    if h == H:
        return np.eye(H)
    if stats is not None:
        streams = [stats["emb"]] + [s for l in layers for s in
                                    (stats["layers"][l]["attn"], stats["layers"][l]["ffn"])]
        xs = [s["x"].astype(np.float64) - s["x"].mean(0, dtype=np.float64) for s in streams]
        # every stream counts equally (their scales differ by layer)
        cov = sum(x.T @ x / (x ** 2).sum() for x in xs)
    else:
        word = np.asarray(teacher.embeddings.word.embedding.value, np.float64)
        word = word - word.mean(0)
        cov = word.T @ word
    if kind == "select":
        keep = np.sort(np.argsort(-np.diag(cov), kind="stable")[:h])
        return np.eye(H)[:, keep]
    w, vec = np.linalg.eigh(cov)
    vec = vec[:, np.argsort(-w, kind="stable")[:h]]
    # a deterministic sign per direction (eigh's signs are arbitrary)
    vec *= np.where(vec[np.abs(vec).argmax(0), np.arange(h)] < 0, -1.0, 1.0)
    return vec


def plan_derivation(config: StudentConfig, teacher: Encoder, *,
                    batch: Mapping[str, np.ndarray] | None = None,
                    layers: Sequence[int] | None = None, basis: str = "select") -> DerivePlan:
    """Choose layers, heads, FFN units and the width basis (see the module docstring)."""
    reason = derivable(config, teacher.config)
    if reason:
        raise InputError(reason)
    tcfg = teacher.config
    layers = tuple(default_layers(config.num_layers, tcfg.num_layers) if layers is None
                   else (int(l) for l in layers))
    if len(layers) != config.num_layers or not all(0 <= l < tcfg.num_layers for l in layers):
        raise InputError(f"layers={list(layers)}: need {config.num_layers} teacher layers in "
                         f"0..{tcfg.num_layers - 1}")
    if basis not in BASES:
        raise InputError(f"basis={basis!r}: expected one of {BASES}")
    stats = _trace(teacher, batch) if batch is not None else None
    nh, d = tcfg.num_heads, tcfg.head_size
    heads, units = [], []
    for l in layers:
        lay = teacher.layers[l]
        w2 = np.asarray(lay.ffns[0].out.kernel.value, np.float64)            # (F, H)
        if stats is not None:
            st = stats["layers"][l]
            h_imp = st["head_fluct"]
            u_imp = st["act_var"] * (w2 ** 2).sum(1)
        else:
            wv = np.asarray(lay.attention.value.kernel.value, np.float64).reshape(-1, nh, d)
            wo = np.asarray(lay.attention.out.kernel.value, np.float64).reshape(nh, d, -1)
            h_imp = np.linalg.norm(wv, axis=(0, 2)) * np.linalg.norm(wo, axis=(1, 2))
            w1 = np.asarray(lay.ffns[0].inter.kernel.value, np.float64)
            u_imp = np.linalg.norm(w1, axis=0) * np.linalg.norm(w2, axis=1)
        heads.append(tuple(sorted(int(i) for i in np.argsort(-h_imp, kind="stable")
                                  [:config.num_heads])))
        units.append(np.sort(np.argsort(-u_imp, kind="stable")[:config.ffn_size]))
    B = _basis(teacher, config.hidden_size, stats, layers, basis)
    return DerivePlan(layers, tuple(heads), tuple(units), B, stats)


# -- cutting -----------------------------------------------------------------------------------
def _std_ratio(stream: dict, B: np.ndarray, eps: float) -> float:
    """Mean over tokens of student/teacher LayerNorm standard deviations (teacher-forced)."""
    v = stream["v"].astype(np.float64)
    w = v @ B
    r_t = np.sqrt(v.var(1) + eps)
    r_s = np.sqrt(w.var(1) + eps)
    return float(np.mean(r_s / r_t))


def apply_plan(plan: DerivePlan, config: StudentConfig, teacher: Encoder, *,
               seed: int = 0) -> Encoder:
    """Build the student ``config`` from ``teacher`` as ``plan`` says."""
    tcfg = teacher.config
    B, st = plan.basis, plan.stats
    H, h = B.shape
    exact = h == H and np.array_equal(B, np.eye(H))
    d = tcfg.head_size
    student = init_encoder(config, seed)
    P = lambda a: jnp.asarray(np.asarray(a, np.float64), jnp.float32)
    npv = lambda p: np.asarray(p.value, np.float64)

    def set_(param, value):
        value = np.asarray(value)
        if value.shape != param.value.shape:
            raise AssertionError(f"derived shape {value.shape} != {param.value.shape}")
        param.value = P(value)

    def norm_(dst, src, stream):
        g, b = _ln_params(src)
        g_s = np.einsum("hk,h,hk->k", B, g, B)         # diag(B^T diag(g) B): a slice if B is
        if st is not None and not exact:               # a column selection
            g_s = g_s * _std_ratio(stream, B, tcfg.layer_norm_eps)
        set_(dst.scale, g_s)
        set_(dst.bias, b @ B)

    def unrepresented(stream_x):
        """The part of a stream's mean the student cannot carry: added back to readers' biases."""
        if st is None:
            return None
        mu = stream_x.mean(0, dtype=np.float64)
        return mu - B @ (B.T @ mu)

    def read_(dst, src, cols, m):
        w = npv(src.kernel)[:, cols]
        set_(dst.kernel, B.T @ w)
        bias = npv(src.bias)[cols]
        set_(dst.bias, bias if m is None else bias + m @ w)

    # embeddings
    te, se = teacher.embeddings, student.embeddings
    word = npv(te.word.embedding) @ B
    if config.emb_size < h:
        mu = word.mean(0)
        _, _, vt = np.linalg.svd(word - mu, full_matrices=False)
        E = vt[:config.emb_size].T                                            # (h, e)
        set_(se.word.embedding, (word - mu) @ E)
        set_(se.transform.kernel, E.T)
        set_(se.transform.bias, mu)
    else:
        set_(se.word.embedding, word)
    set_(se.position.embedding, npv(te.position.embedding)[:config.max_positions] @ B)
    set_(se.token_type.embedding, npv(te.token_type.embedding)[:config.type_vocab_size] @ B)
    norm_(se.norm, te.norm, st["emb"] if st else None)
    prev_x = st["emb"]["x"] if st else None
    for i, l in enumerate(plan.layers):
        tl, sl = teacher.layers[l], student.layers[i]
        ls = st["layers"][l] if st else None
        cols = np.concatenate([np.arange(k * d, (k + 1) * d) for k in plan.heads[i]])
        m_in = unrepresented(prev_x) if st else None
        for name in ("query", "key", "value"):
            read_(getattr(sl.attention, name), getattr(tl.attention, name), cols, m_in)
        wo = npv(tl.attention.out.kernel)
        set_(sl.attention.out.kernel, wo[cols] @ B)
        bo = npv(tl.attention.out.bias)
        if ls is not None:                      # mean output of the dropped heads
            dropped = [k for k in range(tcfg.num_heads) if k not in plan.heads[i]]
            bo = bo + ls["head_mean"][dropped].sum(0)
        set_(sl.attention.out.bias, bo @ B)
        norm_(sl.attn_norm, tl.attn_norm, ls["attn"] if ls else None)
        tf, sf = tl.ffns[0], sl.ffns[0]
        u = plan.units[i]
        read_(sf.inter, tf.inter, u, unrepresented(ls["attn"]["x"]) if ls else None)
        w2 = npv(tf.out.kernel)
        set_(sf.out.kernel, w2[u] @ B)
        b2 = npv(tf.out.bias)
        if ls is not None:                      # mean output of the dropped units
            drop = np.setdiff1d(np.arange(tcfg.ffn_size), u)
            b2 = b2 + ls["act_mean"][drop] @ w2[drop]
        set_(sf.out.bias, b2 @ B)
        norm_(sf.norm, tf.norm, ls["ffn"] if ls else None)
        prev_x = ls["ffn"]["x"] if ls else None
    if config.pooler and tcfg.pooler:
        wp = npv(teacher.pooler.kernel)
        m = unrepresented(prev_x)
        set_(student.pooler.kernel, B.T @ wp @ B)
        bp = npv(teacher.pooler.bias) + (0 if m is None else m @ wp)
        set_(student.pooler.bias, bp @ B)
    return student


def derive_student(config: StudentConfig, teacher: Encoder, *,
                   batch: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                   layers: Sequence[int] | None = None, basis: str = "select") -> Encoder:
    """The student ``config`` cut out of ``teacher`` (module docstring); raises ValueError with
    :func:`derivable`'s reason when that is impossible.

    ``batch``: a tokenised calibration batch (``TextEncoder.__call__``'s dict) for importance,
    basis and LayerNorm statistics; without it, weight norms and the word-embedding table stand
    in. ``layers``: teacher layers to keep (default :func:`default_layers`). ``basis``:
    ``"select"`` keeps the h hidden channels of largest variance (B a column selection: every
    LayerNorm scale/bias is an exact slice), ``"pca"`` the top-h principal directions (more
    variance kept, but LayerNorm's per-channel scale does not commute with a rotation).
    ``seed`` only initialises what the teacher cannot give (a pooler the teacher lacks)."""
    plan = plan_derivation(config, teacher, batch=batch, layers=layers, basis=basis)
    return apply_plan(plan, config, teacher, seed=seed)
