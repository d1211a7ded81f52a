from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from distill import (StudentConfig, default_teacher_dir, init_encoder, load_encoder,
                     load_tokenizer)
from distill import losses
from distill.corpus import distillation_pairs, distillation_texts, task_split
from distill.data import batch_indices, read_corpus, read_task
from distill.evaluate import embed, finetune, probe_accuracy, stsb_spearman
from distill.flash import flash_distill
from distill.train import DistillConfig, Distiller, init_from_teacher

DATA = Path(__file__).parent / "fixtures" / "data"


# -- losses ------------------------------------------------------------------------------------
def test_losses_are_zero_at_the_target_and_positive_elsewhere():
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(4, 12)), jnp.float32)
    assert float(losses.embedding_mse(a, a)) == 0
    assert abs(float(losses.embedding_cosine(a, 3 * a))) < 1e-6
    assert float(losses.similarity_mse(a, a)) < 1e-10
    assert float(losses.similarity_mse(a, b)) > 0           # widths may differ
    h = jnp.asarray(rng.normal(size=(2, 5, 8)), jnp.float32)
    mask = jnp.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert float(losses.hidden_mse(h, h, mask)) == 0
    h2 = h.at[0, 4].add(100.0)                               # change a padded position only
    assert float(losses.hidden_mse(h2, h, mask)) == 0


def test_attention_kl_same_and_different_head_counts():
    rng = np.random.default_rng(1)
    p = jax.nn.softmax(jnp.asarray(rng.normal(size=(2, 4, 6, 6))), -1)
    q = jax.nn.softmax(jnp.asarray(rng.normal(size=(2, 2, 6, 6))), -1)
    mask = jnp.ones((2, 6))
    assert abs(float(losses.attention_kl(p, p, mask))) < 1e-6
    assert float(losses.attention_kl(q, p, mask)) > 0        # 2 vs 4 heads: head-averaged
    assert abs(float(losses.attention_kl(p.mean(1, keepdims=True), p, mask))) < 1e-6


@given(s=st.integers(1, 24), t=st.integers(1, 24))
def test_uniform_layer_map_is_monotone_and_in_range(s, t):
    m = losses.layer_map(s, t)
    assert len(m) == s and all(1 <= x <= t for x in m) and m == sorted(m) and m[-1] == t
    if s <= t:
        assert losses.layer_map(s, t, "last") == list(range(t - s + 1, t + 1))


def test_layer_map_errors():
    with pytest.raises(ValueError, match="s <= teacher"):
        losses.layer_map(8, 6, "last")
    with pytest.raises(ValueError, match="unknown layer map"):
        losses.layer_map(2, 6, "middle")


# -- data --------------------------------------------------------------------------------------
def test_readers_on_real_format_fixtures():
    sts = read_task("stsb", DATA / "stsb/sts-dev.csv")
    assert len(sts) == 40 and 0 <= sts[0].label <= 5 and sts[0].text_b
    sst = read_task("sst2", DATA / "sst2/dev.tsv")
    assert len(sst) == 40 and {e.label for e in sst} <= {0, 1}
    mrpc = read_task("mrpc", DATA / "mrpc/dev.tsv")
    assert len(mrpc) == 20 and not mrpc[0].text_a.startswith("\ufeff")
    wiki = read_corpus(DATA / "wikitext2_raw/wiki.valid.raw")
    assert wiki and not any(t.startswith("=") or "@-@" in t for t in wiki)
    with pytest.raises(ValueError, match="unknown task"):
        read_task("squad", DATA / "sst2/dev.tsv")
    with pytest.raises(FileNotFoundError):
        read_task("sst2", DATA / "nope.tsv")
    with pytest.raises(ValueError, match="expected columns"):
        read_task("rte", DATA / "sst2/dev.tsv")


def test_batches_are_deterministic_full_and_bucketed():
    lengths = list(np.random.default_rng(0).integers(5, 200, 1000))
    a = batch_indices(lengths, 16, seed=3, epoch=1)
    assert a == batch_indices(lengths, 16, seed=3, epoch=1)
    assert a != batch_indices(lengths, 16, seed=3, epoch=2)
    assert all(len(g) == 16 for g in a) and len({i for g in a for i in g}) == 16 * len(a)
    spread = np.mean([np.ptp([lengths[i] for i in g]) for g in a])
    assert spread < 0.5 * np.ptp(lengths)                   # bucketing groups similar lengths


# -- training ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher():
    return load_encoder(default_teacher_dir())


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(default_teacher_dir(), max_len=32)


STUDENT = StudentConfig(num_layers=2, hidden_size=64, num_heads=2, ffn_size=128)
TEXTS = distillation_texts(DATA)


def test_init_from_teacher_copies_and_projects(teacher):
    s = init_encoder(StudentConfig(num_layers=2, hidden_size=384, num_heads=12, ffn_size=1536))
    n = init_from_teacher(s, teacher, losses.layer_map(2, 6))
    assert n > 30  # same widths: layers and embeddings copied
    np.testing.assert_array_equal(np.asarray(s.layers[1].attention.query.kernel.value),
                                  np.asarray(teacher.layers[5].attention.query.kernel.value))
    narrow = init_encoder(STUDENT)
    init_from_teacher(narrow, teacher, losses.layer_map(2, 6))
    w = np.asarray(narrow.embeddings.word.embedding.value)
    assert w.shape == (30522, 64) and np.std(w) > 0.02  # PCA-projected teacher embeddings


def test_distillation_lowers_the_loss(teacher, tok, tmp_path):
    d = Distiller(STUDENT, teacher, tok, DistillConfig(steps=30, batch_size=8, lr=3e-3,
                                                       w_hidden=1.0, w_attention=1.0))
    first = float(d._loss(d.params, tok(TEXTS[:8]), 0)[0])
    res = d.run(TEXTS, tmp_path, progress=False)
    assert res.steps == 30 and res.tokens_per_s > 0
    assert float(d._loss(d.params, tok(TEXTS[:8]), 0)[0]) < first


def test_resume_after_kill_gives_the_same_result(teacher, tok, tmp_path):
    cfg = DistillConfig(steps=6, batch_size=8, ckpt_every=3, lr=3e-3)
    full = Distiller(STUDENT, teacher, tok, cfg)
    full.run(TEXTS, tmp_path / "a", progress=False)
    first = Distiller(STUDENT, teacher, tok, cfg)
    first.run(TEXTS, tmp_path / "b", progress=False, stop_after=3)  # "killed" after step 3
    resumed = Distiller(STUDENT, teacher, tok, cfg)                  # a fresh process
    resumed.run(TEXTS, tmp_path / "b", progress=False)
    assert resumed.step == 6
    for x, y in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_progressive_and_mixed_precision_run(teacher, tok, tmp_path):
    d = Distiller(STUDENT, teacher, tok, DistillConfig(steps=4, batch_size=8, progressive=True,
                                                       w_hidden=1.0, mixed_precision=True))
    assert [d.stage_of(s) for s in range(4)] == [1, 1, 2, 2]
    res = d.run(TEXTS, tmp_path, progress=False)
    assert np.isfinite(res.final_loss)


def test_corrupt_training_checkpoint(teacher, tok, tmp_path):
    (tmp_path / "state.safetensors").write_bytes(b"garbage")
    d = Distiller(STUDENT, teacher, tok, DistillConfig(steps=2, batch_size=8))
    with pytest.raises(ValueError, match="corrupt"):
        d.run(TEXTS, tmp_path, progress=False)


def test_flash_and_evaluation(teacher, tok, tmp_path):
    dev = task_split("stsb", "dev", DATA)
    r = flash_distill(STUDENT, teacher, tok, TEXTS, steps=3, score_pairs=dev,
                      distill_config=DistillConfig(batch_size=8))
    assert -1 <= r.stsb <= 1 and r.cost_s > 0 and r.steps == 3 and np.isfinite(r.final_loss)
    assert stsb_spearman(teacher, tok, dev) > 0.7            # the real teacher on real pairs
    e = embed(teacher, tok, ["a b c", "hello world"])
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, rtol=1e-5)
    acc = probe_accuracy(teacher, tok, task_split("sst2", "train", DATA),
                         task_split("sst2", "dev", DATA))
    assert 0.5 <= acc <= 1
    ft = finetune(init_encoder(STUDENT), tok, task_split("stsb", "train", DATA), dev,
                  regression=True, max_steps=3, batch_size=8)
    assert ft["steps"] == 3 and -1 <= ft["spearman"] <= 1


def test_pair_batches_every_nth_step(teacher, tok, tmp_path):
    pairs = distillation_pairs(DATA)
    assert pairs and all(isinstance(a, str) and isinstance(b, str) for a, b in pairs)
    cfg = DistillConfig(steps=4, batch_size=8, pair_every=2)
    d = Distiller(STUDENT, teacher, tok, cfg)
    with pytest.raises(ValueError, match="needs sentence pairs"):
        d.run(TEXTS, tmp_path / "none", progress=False)
    b = d.prepare([a for a, _ in pairs[:8]], [b for _, b in pairs[:8]])
    assert (b["token_type_ids"] == 1).any()        # second segments, as GLUE pair tasks
    res = d.run(TEXTS, tmp_path / "run", pairs=pairs, progress=False)
    assert res.steps == 4 and np.isfinite(res.final_loss)
    with pytest.raises(ValueError, match="pair_every"):
        DistillConfig(pair_every=-1)
