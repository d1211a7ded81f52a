import dataclasses

import jax.numpy as jnp
import pytest
from hypothesis import given, settings, strategies as st

from distill import PRESETS, StudentConfig, Workload, init_encoder, load_arch


@st.composite
def valid_configs(draw):
    heads = draw(st.sampled_from([1, 2, 4]))
    head = draw(st.sampled_from([2, 4, 8]))
    bottleneck = draw(st.booleans())
    attn = heads * head
    hidden = attn * draw(st.sampled_from([1, 2])) if bottleneck else attn
    return StudentConfig(
        num_layers=draw(st.integers(1, 2)), hidden_size=hidden, num_heads=heads,
        ffn_size=draw(st.integers(4, 32)),
        embedding_size=draw(st.one_of(st.none(), st.integers(2, hidden))),
        intra_size=attn if bottleneck else None, num_ffn=draw(st.integers(1, 3)),
        activation=draw(st.sampled_from(["gelu", "relu"])),
        normalization=draw(st.sampled_from(["layernorm", "nonorm"])),
        kq_shared_bottleneck=bottleneck and draw(st.booleans()),
        trigram_input=draw(st.booleans()), vocab_size=50, max_positions=32,
        pooler=draw(st.booleans()))


@settings(max_examples=5, deadline=None)
@given(cfg=valid_configs(), b=st.integers(1, 3), t=st.integers(1, 12))
def test_every_valid_config_runs_forward(cfg, b, t):
    model = init_encoder(cfg)
    ids = jnp.ones((b, t), jnp.int32)
    out = model(ids, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (b, t, cfg.hidden_size)
    assert len(out.hidden_states) == cfg.num_layers + 1
    assert out.attentions[0].shape == (b, cfg.num_heads, t, t)
    assert (out.pooled is not None) == cfg.pooler
    assert bool(jnp.isfinite(out.last_hidden_state).all())
    assert StudentConfig.from_dict(cfg.to_dict()) == cfg
    assert StudentConfig.from_hf_config(cfg.to_hf_config()) == cfg


BASE = dict(num_layers=2, hidden_size=64, num_heads=4, ffn_size=128)
INVALID = [
    ("num_layers", dict(num_layers=0)),
    ("hidden_size", dict(hidden_size=-64)),
    ("num_heads", dict(num_heads=3)),                     # does not divide 64
    ("ffn_size", dict(ffn_size=1.5)),
    ("intra_size", dict(intra_size=128)),                 # bottleneck wider than hidden
    ("intra_size", dict(intra_size=0)),
    ("embedding_size", dict(embedding_size=100)),
    ("kq_shared_bottleneck", dict(kq_shared_bottleneck=True)),
    ("activation", dict(activation="swish")),
    ("normalization", dict(normalization="rmsnorm")),
    ("num_ffn", dict(num_ffn=0)),
    ("num_layers", dict(num_layers=True)),
]


@pytest.mark.parametrize("field,change", INVALID)
def test_invalid_config_names_the_field(field, change):
    with pytest.raises(ValueError, match=field):
        StudentConfig(**{**BASE, **change})


@given(field=st.sampled_from(["num_layers", "hidden_size", "num_heads", "ffn_size", "num_ffn",
                              "vocab_size", "max_positions"]),
       value=st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=3)))
def test_non_positive_or_non_int_sizes_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        StudentConfig(**{**BASE, field: value})


def test_heads_error_suggests_divisors():
    with pytest.raises(ValueError, match=r"choose num_heads from \[1, 2, 4, 8"):
        StudentConfig(**{**BASE, "num_heads": 5})


def test_workload_parse_and_errors():
    assert Workload.parse("8,128") == Workload(8, 128, "float32")
    assert Workload.parse(" 1, 64 ,bfloat16") == Workload(1, 64, "bfloat16")
    assert Workload.parse("8x128") == Workload(8, 128)
    assert Workload.parse("2x384 bfloat16") == Workload(2, 384, "bfloat16")
    for bad, field in [("8", "BATCH,SEQ_LEN"), ("a,b", "integers"), ("0,128", "batch_size"),
                       ("8,128,int8", "dtype")]:
        with pytest.raises(ValueError, match=field):
            Workload.parse(bad)
    with pytest.raises(ValueError, match="max_positions"):
        Workload(1, 1024).check(PRESETS["bert-tiny"])


@given(st.integers(1, 4096), st.integers(1, 4096), st.sampled_from(["float32", "bfloat16"]))
def test_a_workload_parses_from_how_it_prints(batch, seq, dtype):
    w = Workload(batch, seq, dtype)
    assert Workload.parse(str(w)) == w
    assert Workload.parse(f"{batch},{seq},{dtype}") == w


def test_load_arch_forms(tmp_path):
    assert load_arch("bert-mini") == PRESETS["bert-mini"]
    cfg = PRESETS["mobilebert-tiny"]
    (tmp_path / "a.json").write_text(__import__("json").dumps(cfg.to_dict()))
    assert load_arch(tmp_path / "a.json") == cfg
    (tmp_path / "a.toml").write_text("num_layers = 3\nhidden_size = 96\nnum_heads = 3\n"
                                     "ffn_size = 192\n")
    assert load_arch(tmp_path / "a.toml").num_layers == 3
    assert load_arch('{"num_layers": 1, "hidden_size": 8, "num_heads": 2, "ffn_size": 8}')
    with pytest.raises(ValueError, match="neither a preset"):
        load_arch("bert-huge")
    with pytest.raises(ValueError, match="unknown architecture field"):
        load_arch('{"layers": 1}')


def test_presets_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["bert-base"].num_layers = 3
