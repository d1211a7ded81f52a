"""The "derived" initialisation (distill.derive) on a tiny random teacher: exact when nothing is
cut, exact layer dropping, finite and deterministic narrower students, clear refusals."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import HealthCheck, given, settings, strategies as st

from distill import StudentConfig, init_encoder
from distill.derive import (default_layers, derivable, derive_student, plan_derivation)

TEACHER = StudentConfig(num_layers=3, hidden_size=32, num_heads=4, ffn_size=64, vocab_size=120,
                        max_positions=40)                      # head size 8


def _teacher(cfg: StudentConfig = TEACHER, seed: int = 0):
    """A random teacher whose every parameter (LayerNorm scales and biases included) is
    non-trivial, so an identity that holds here is not an accident of ones and zeros."""
    model = init_encoder(cfg, seed)
    state = nnx.state(model, nnx.Param)
    leaves, tree = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(seed + 100), len(leaves))
    leaves = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    nnx.update(model, jax.tree.unflatten(tree, leaves))
    return model


def _batch(n=6, t=12, vocab=120, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, (n, t)).astype(np.int32)
    mask = np.ones((n, t), np.int32)
    for i in range(n):
        mask[i, rng.integers(3, t + 1):] = 0
    ids[mask == 0] = 0
    tt = np.zeros_like(ids)
    tt[:, t // 2:] = mask[:, t // 2:]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}


@pytest.fixture(scope="module")
def teacher():
    return _teacher()


def _run(model, b):
    return model(jnp.asarray(b["input_ids"]), jnp.asarray(b["attention_mask"]),
                 jnp.asarray(b["token_type_ids"]))


def _valid(x, b):
    return np.asarray(x)[b["attention_mask"] > 0]


@pytest.mark.parametrize("calibrate", [False, True])
@pytest.mark.parametrize("basis", ["select", "pca"])
def test_same_shape_reproduces_the_teacher(teacher, calibrate, basis):
    b = _batch(seed=1)
    s = derive_student(TEACHER, teacher, batch=_batch(seed=2) if calibrate else None,
                       basis=basis)
    out, ref = _run(s, b), _run(teacher, b)
    np.testing.assert_allclose(_valid(out.last_hidden_state, b),
                               _valid(ref.last_hidden_state, b), atol=1e-5)
    np.testing.assert_allclose(np.asarray(out.pooled), np.asarray(ref.pooled), atol=1e-5)


def _dropped_layers_reference(teacher, layers, b):
    """The teacher run with only ``layers``, written out step by step."""
    ids, mask = jnp.asarray(b["input_ids"]), jnp.asarray(b["attention_mask"])
    x = teacher.embeddings(ids, jnp.asarray(b["token_type_ids"]))
    bias = jnp.where(mask[:, None, None, :] > 0, 0.0, jnp.finfo(x.dtype).min)
    for l in layers:
        x, _ = teacher.layers[l](x, bias)
    return x


@pytest.mark.parametrize("layers", [[0, 2], [1], [2, 0], [0, 1, 2]])
def test_layer_selection_is_the_teacher_with_layers_dropped(teacher, layers):
    b = _batch(seed=3)
    cfg = TEACHER.replace(num_layers=len(layers))
    for batch in (None, _batch(seed=4)):
        s = derive_student(cfg, teacher, batch=batch, layers=layers)
        np.testing.assert_allclose(_valid(_run(s, b).last_hidden_state, b),
                                   _valid(_dropped_layers_reference(teacher, layers, b), b),
                                   atol=1e-5)


def test_default_layers_keep_first_and_last():
    assert default_layers(6, 6) == list(range(6))
    assert default_layers(1, 6) == [5]
    for s in range(2, 13):
        got = default_layers(s, 12)
        assert len(got) == s and got == sorted(set(got)) and got[0] == 0 and got[-1] == 11


@pytest.mark.parametrize("basis", ["select", "pca"])
def test_narrower_students_are_finite_and_deterministic(teacher, basis):
    cfg = StudentConfig(num_layers=2, hidden_size=16, num_heads=2, ffn_size=24, vocab_size=120,
                        max_positions=32, type_vocab_size=2)
    b, cal = _batch(seed=5), _batch(seed=6)
    outs = []
    for _ in range(2):
        s = derive_student(cfg, teacher, batch=cal, seed=3, basis=basis)
        o = _run(s, b)
        assert o.last_hidden_state.shape == (6, 12, 16) and o.pooled.shape == (6, 16)
        assert np.isfinite(np.asarray(o.last_hidden_state)).all()
        outs.append(jax.tree.leaves(nnx.state(s, nnx.Param)))
    for x, y in zip(*outs):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    plan = plan_derivation(cfg, teacher, batch=cal, basis=basis)
    np.testing.assert_allclose(plan.basis.T @ plan.basis, np.eye(16), atol=1e-10)
    assert all(len(h) == 2 and list(h) == sorted(h) for h in plan.heads)
    assert all(len(u) == 24 for u in plan.units)


@pytest.mark.parametrize("changes,field", [
    (dict(hidden_size=64, num_heads=8), "hidden_size"),
    (dict(num_heads=2), "head_size"),
    (dict(ffn_size=65), "ffn_size"),
    (dict(num_layers=4), "num_layers"),
    (dict(intra_size=16), "intra_size"),
    (dict(num_ffn=2), "num_ffn"),
    (dict(trigram_input=True, embedding_size=16), "trigram_input"),
    (dict(normalization="nonorm"), "normalization"),
    (dict(activation="relu"), "activation"),
    (dict(vocab_size=30522), "vocab_size"),
    (dict(type_vocab_size=3), "type_vocab_size"),
    (dict(max_positions=41), "max_positions"),
])
def test_derivable_names_the_field(teacher, changes, field):
    cfg = TEACHER.replace(**changes)
    reason = derivable(cfg, TEACHER)
    assert reason is not None and field in reason and "init=" in reason
    with pytest.raises(ValueError, match=field):
        derive_student(cfg, teacher)


def test_non_bert_teacher_is_refused():
    mobile = TEACHER.replace(intra_size=16)
    assert "teacher" in derivable(TEACHER, mobile)
    assert derivable(TEACHER, TEACHER) is None


def test_bad_layer_list(teacher):
    with pytest.raises(ValueError, match="layers"):
        derive_student(TEACHER.replace(num_layers=2), teacher, layers=[0, 3])
    with pytest.raises(ValueError, match="layers"):
        derive_student(TEACHER.replace(num_layers=2), teacher, layers=[0])


_configs = st.builds(
    lambda layers, heads, ffn, emb, calibrate: (
        StudentConfig(num_layers=layers, hidden_size=8 * heads, num_heads=heads, ffn_size=ffn,
                      embedding_size=None if emb is None else min(emb, 8 * heads),
                      vocab_size=120, max_positions=40), calibrate),
    st.integers(1, 3), st.integers(1, 4), st.integers(1, 64),
    st.one_of(st.none(), st.integers(1, 32)), st.booleans())


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=_configs)
def test_any_valid_small_config_derives(teacher, case):
    cfg, calibrate = case
    assert derivable(cfg, TEACHER) is None
    b = _batch(seed=9)
    s = derive_student(cfg, teacher, batch=b if calibrate else None)
    h = np.asarray(_run(s, b).last_hidden_state)
    assert h.shape == (6, 12, cfg.hidden_size) and np.isfinite(h).all()


# -- hooked into distillation -----------------------------------------------------------------
DATA = Path(__file__).parent / "fixtures" / "data"


def test_distiller_with_derived_init(tmp_path):
    from distill import default_teacher_dir, load_tokenizer
    from distill.corpus import distillation_texts
    from distill.train import DistillConfig, Distiller

    with pytest.raises(ValueError, match="derived"):
        DistillConfig(init="pruned")
    tok = load_tokenizer(default_teacher_dir(), max_len=32)
    tcfg = StudentConfig(num_layers=2, hidden_size=32, num_heads=4, ffn_size=64)
    teacher = _teacher(tcfg, seed=1)
    texts = distillation_texts(DATA)
    scfg = StudentConfig(num_layers=1, hidden_size=16, num_heads=2, ffn_size=32)
    d = Distiller(scfg, teacher, tok, DistillConfig(steps=3, batch_size=8, init="derived",
                                                    w_hidden=1.0), calibration_texts=texts)
    assert d.mapping == [2]                      # the hidden loss follows the kept layer
    ref = derive_student(scfg, teacher, batch=d.calibration_batch(texts))
    for x, y in zip(jax.tree.leaves(nnx.state(d.student(), nnx.Param)),
                    jax.tree.leaves(nnx.state(ref, nnx.Param))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    res = d.run(texts, tmp_path, progress=False)
    assert res.steps == 3 and np.isfinite(res.final_loss)
    with pytest.raises(ValueError, match="head_size"):
        Distiller(scfg.replace(num_heads=1), teacher, tok, DistillConfig(init="derived"))


def test_cli_offers_derived():
    from hwdistill.cli import build_parser
    args = build_parser().parse_args(["distill", "--arch", "bert-mini", "--out", "x",
                                      "--init", "derived"])
    assert args.init == "derived"
