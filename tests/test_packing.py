from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from distill import PRESETS, StudentConfig, default_teacher_dir, init_encoder, load_encoder, \
    load_tokenizer
from distill.corpus import distillation_texts
from distill.model import mean_pool, packed_mean_pool
from distill.packing import first_fit_decreasing, pack_batch, unpack_tokens
from distill.train import DistillConfig, Distiller

DATA = Path(__file__).parent / "fixtures" / "data"


def padded_batch(lengths, t, seed=0):
    rng = np.random.default_rng(seed)
    b = len(lengths)
    ids = np.zeros((b, t), np.int32)
    mask = np.zeros((b, t), np.int32)
    tt = np.zeros((b, t), np.int32)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1000, 3000, n)
        mask[i, :n] = 1
        tt[i, n // 2:n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}


@given(st.lists(st.integers(1, 40), min_size=1, max_size=60), st.integers(40, 80))
def test_first_fit_decreasing_places_everything_once_and_no_two_bins_merge(lengths, cap):
    bins = first_fit_decreasing(lengths, cap)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    loads = [sum(lengths[i] for i in b) for b in bins]
    assert max(loads) <= cap
    # first fit: a later bin's first item did not fit any earlier bin, so no two bins fit in one
    assert all(loads[i] + loads[j] > cap for i in range(len(loads)) for j in range(i + 1, len(loads)))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 32), min_size=1, max_size=40), st.integers(32, 64),
       st.integers(1, 4))
def test_pack_batch_keeps_every_token_with_its_position(lengths, row_len, multiple):
    b = padded_batch(lengths, 32)
    p = pack_batch(b, row_len, row_multiple=multiple, pad_id=0)
    rows = p["input_ids"].shape[0]
    assert rows % multiple == 0 and p["input_ids"].shape[1] == row_len
    assert p["attention_mask"].sum() == sum(lengths)
    np.testing.assert_array_equal(p["lengths"], lengths)
    for key in ("input_ids", "token_type_ids"):
        np.testing.assert_array_equal(unpack_tokens(p[key], p, len(lengths), 32),
                                      b[key] * b["attention_mask"])
    for r in range(rows):                     # segments are contiguous runs numbered 1, 2, ...
        seg = p["segment_ids"][r]
        used = seg[seg > 0]
        assert np.all(np.diff(used) >= 0) and (len(used) == 0 or used[0] == 1)
        for s in np.unique(used):
            np.testing.assert_array_equal(p["position_ids"][r][seg == s],
                                          np.arange((seg == s).sum()))


def test_pack_batch_errors_name_the_problem():
    b = padded_batch([3, 5], 8)
    with pytest.raises(ValueError, match="does not fit rows of 4"):
        pack_batch(b, 4)
    left = dict(b, attention_mask=b["attention_mask"][:, ::-1].copy())
    with pytest.raises(ValueError, match="right-padded"):
        pack_batch(left, 8)
    with pytest.raises(ValueError, match="row_len"):
        pack_batch(b, 0)


@pytest.mark.parametrize("name", ["bert-tiny", "mobilebert-tiny"])
def test_packed_encoder_equals_each_sentence_alone(name):
    """Block-diagonal attention, restarted positions and (MobileBERT) trigram neighbours from
    the same sentence: every token's output equals the sentence run on its own, unpadded."""
    cfg = PRESETS[name].replace(num_layers=2)
    model = init_encoder(cfg, seed=3)
    lengths = [7, 3, 12, 5, 9, 1]
    b = padded_batch(lengths, 12)
    p = pack_batch(b, 16, row_multiple=1)
    assert p["input_ids"].shape[0] < len(lengths)      # sentences really share rows
    out = model(jnp.asarray(p["input_ids"]), jnp.asarray(p["attention_mask"]),
                jnp.asarray(p["token_type_ids"]), position_ids=jnp.asarray(p["position_ids"]),
                segment_ids=jnp.asarray(p["segment_ids"]))
    assert out.pooled is None                           # no per-row [CLS] in a packed row
    tokens = unpack_tokens(np.asarray(out.last_hidden_state), p, len(lengths), 12)
    pooled = packed_mean_pool(out.last_hidden_state, jnp.asarray(p["sentence_ids"]),
                              len(lengths))
    for i, n in enumerate(lengths):
        alone = model(jnp.asarray(b["input_ids"][i:i + 1, :n]),
                      token_type_ids=jnp.asarray(b["token_type_ids"][i:i + 1, :n]))
        np.testing.assert_allclose(tokens[i, :n], np.asarray(alone.last_hidden_state[0]),
                                   atol=2e-5, rtol=1e-4)
        np.testing.assert_allclose(
            np.asarray(pooled[i]),
            np.asarray(mean_pool(alone.last_hidden_state, jnp.ones((1, n)))[0]),
            atol=2e-5)


@pytest.fixture(scope="module")
def teacher():
    return load_encoder(default_teacher_dir())


def test_packed_distillation_step_equals_the_padded_one(teacher):
    """Same sentences, same losses (every term) and gradients, fewer positions computed."""
    tok = load_tokenizer(default_teacher_dir(), max_len=32)
    texts = sorted(distillation_texts(DATA), key=len)[:16]       # short: they share rows
    student = StudentConfig(num_layers=2, hidden_size=64, num_heads=2, ffn_size=128)
    kw = dict(steps=10, batch_size=16, max_len=32, w_hidden=1.0, w_attention=1.0)
    packed = Distiller(student, teacher, tok, DistillConfig(**kw))
    padded = Distiller(student, teacher, tok, DistillConfig(packing=False, **kw))
    bp, bu = packed.prepare(texts), padded.prepare(texts)
    assert bp["input_ids"].size < bu["input_ids"].size
    assert bp["attention_mask"].sum() == bu["attention_mask"].sum()
    (lp, tp), gp = jax.value_and_grad(packed._loss, has_aux=True)(packed.params, bp, 0)
    (lu, tu), gu = jax.value_and_grad(padded._loss, has_aux=True)(padded.params, bu, 0)
    assert set(tp) == set(tu) and len(tp) == 7
    for k in tp:
        np.testing.assert_allclose(float(tp[k]), float(tu[k]), rtol=1e-5, err_msg=k)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(gp), jax.tree.leaves(gu)):
        # atol: gradients that are zero in exact arithmetic (the key bias: softmax is
        # shift-invariant) come out as ~1e-10 float noise on both sides
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-3, atol=1e-6,
                                   err_msg=jax.tree_util.keystr(path))
