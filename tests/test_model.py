import jax.numpy as jnp
import numpy as np
import pytest

from distill import PRESETS, StudentConfig, count_params, init_encoder, mean_pool


@pytest.mark.parametrize("name,expected", [
    ("bert-base", 109_482_240),        # Devlin et al.; transformers BertModel incl. pooler
    ("minilm-l6-h384", 22_713_216),    # MiniLM-L6-H384 / all-MiniLM-L6-v2
    ("mobilebert", 24_581_888),        # transformers MobileBertModel (google/mobilebert-uncased)
])
def test_param_counts_match_published(name, expected):
    assert count_params(PRESETS[name]) == expected


@pytest.mark.parametrize("name", ["bert-tiny", "mobilebert-tiny"])
def test_masked_positions_do_not_change_unmasked_outputs(name):
    cfg = PRESETS[name].replace(num_layers=2)
    model = init_encoder(cfg, seed=1)
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 2000, (2, 12)).astype(np.int32)
    mask = np.ones((2, 12), np.int32)
    mask[:, 8:] = 0
    ids2 = ids.copy()
    # change only padded tokens; the trigram embedding lets unmasked token 7 see token 8, so
    # token 8 is kept and only 9.. change (transformers' MobileBERT behaves the same way)
    ids2[:, 9:] = rng.integers(2000, 3000, (2, 3))
    keep = slice(0, 8)
    a = model(jnp.asarray(ids), jnp.asarray(mask)).last_hidden_state
    b = model(jnp.asarray(ids2), jnp.asarray(mask)).last_hidden_state
    np.testing.assert_allclose(np.asarray(a)[:, keep], np.asarray(b)[:, keep], atol=1e-5)
    assert not np.allclose(np.asarray(a)[:, 9:], np.asarray(b)[:, 9:])


def test_mean_pool_ignores_padding_and_normalises():
    h = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, 8)), jnp.float32)
    mask = jnp.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    e = mean_pool(h, mask)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(e), axis=1), 1.0, rtol=1e-6)
    ref = np.asarray(h[0, :3].mean(0))
    np.testing.assert_allclose(np.asarray(e[0]), ref / np.linalg.norm(ref), rtol=1e-5)


def test_bottleneck_student_is_not_bert():
    assert PRESETS["bert-mini"].is_bert and not PRESETS["mobilebert"].is_bert
    assert StudentConfig(2, 64, 4, 128, intra_size=32).attention_size == 32
