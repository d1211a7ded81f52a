"""Accuracy proxies (distill.proxies) and `hwdistill proxies`, on a tiny teacher (random 2-layer
BERT with the real tokenizer) and the fixture texts."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from distill import PRESETS, StudentConfig, abstract_encoder, count_params, default_teacher_dir
from distill import init_encoder, load_tokenizer, save_encoder
from distill.corpus import distillation_texts, task_split
from distill.flash import flash_distill
from distill.proxies import (PROXIES, ProxyResult, compute_proxies, forward_flops, get_proxy,
                             make_context, non_embedding_params, param_count, parse_names)
from distill.proxies.similarity import linear_cka
from distill.train import DistillConfig

DATA = Path(__file__).parent / "fixtures" / "data"
TEXTS = distillation_texts(DATA)
TEACHER = StudentConfig(num_layers=2, hidden_size=48, num_heads=2, ffn_size=96)
STUDENT = StudentConfig(num_layers=2, hidden_size=32, num_heads=2, ffn_size=64)
GRADIENT = ("grad_norm", "snip", "synflow", "naswot", "cka")


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(default_teacher_dir(), max_len=32)


@pytest.fixture(scope="module")
def teacher():
    return init_encoder(TEACHER, seed=123)


@pytest.fixture(scope="module")
def ctx(teacher, tok):
    return make_context(teacher, tok, TEXTS, seed=0, n_batches=2, batch_size=8, max_len=32,
                        stsb_pairs=task_split("stsb", "dev", DATA),
                        flash_config=DistillConfig(batch_size=8, max_len=32, packing=False))


# -- static ------------------------------------------------------------------------------------
# every preset's layer structure, on 2 layers (building 24-layer models' shapes takes ~15 s)
@pytest.mark.parametrize("cfg", [*(c.replace(num_layers=2) for c in PRESETS.values()), STUDENT,
                                 PRESETS["mobilebert"].replace(num_layers=2, pooler=True,
                                                               kq_shared_bottleneck=False,
                                                               trigram_input=False)])
def test_param_count_matches_the_built_model(cfg):
    assert param_count(cfg) == count_params(cfg)
    tables = cfg.vocab_size * cfg.emb_size + (cfg.max_positions + cfg.type_vocab_size) * \
        cfg.hidden_size
    assert non_embedding_params(cfg) == count_params(cfg) - tables


@pytest.mark.parametrize("name", ["bert-tiny", "mobilebert-tiny"])
def test_forward_flops_agree_with_xla(name):
    cfg = PRESETS[name].replace(vocab_size=64, pooler=False)
    graph, state = nnx.split(abstract_encoder(cfg))
    f = jax.jit(lambda s, ids: nnx.merge(graph, s)(ids).last_hidden_state)
    cost = f.lower(state, jax.ShapeDtypeStruct((1, 128), jnp.int32)).compile().cost_analysis()
    xla = (cost[0] if isinstance(cost, list) else cost)["flops"]
    ours = forward_flops(cfg, 128)
    assert 0.95 * xla <= ours <= xla        # XLA also counts the elementwise work
    assert forward_flops(cfg, 256) > 2 * ours                          # attention is quadratic
    with pytest.raises(ValueError, match="seq_len"):
        forward_flops(cfg, 0)


def test_params_and_flops_proxies(ctx):
    p, f = compute_proxies(STUDENT, ctx, "params,flops", seed=3)
    assert p.value == non_embedding_params(STUDENT) and f.value == forward_flops(STUDENT, 128)
    assert p.cost_s > 0 and f.cost_s > 0 and p.seed == 3 and p.higher_is_better
    assert ProxyResult(**p.to_dict()) == p


# -- zero-cost ---------------------------------------------------------------------------------
def test_context_is_real_and_deterministic(ctx, teacher, tok):
    assert len(ctx.batches) == 2 and ctx.batches[0]["input_ids"].shape == (8, 32)
    assert len(ctx.batch_texts) == 16 and set(ctx.batch_texts) <= set(TEXTS)
    assert ctx.teacher_emb[0].shape == (8, TEACHER.hidden_size)
    again = make_context(teacher, tok, TEXTS, seed=0, n_batches=2, batch_size=8, max_len=32)
    other = make_context(teacher, tok, TEXTS, seed=1, n_batches=2, batch_size=8, max_len=32)
    assert again.batch_texts == ctx.batch_texts and other.batch_texts != ctx.batch_texts
    with pytest.raises(ValueError, match="distinct texts"):
        make_context(teacher, tok, TEXTS[:10], n_batches=2, batch_size=8)


@pytest.mark.parametrize("name", GRADIENT)
def test_zero_cost_proxy_is_finite_deterministic_and_timed(ctx, name):
    fn = get_proxy(name)
    a, b, c = fn(STUDENT, ctx, seed=0), fn(STUDENT, ctx, seed=0), fn(STUDENT, ctx, seed=1)
    assert a.name == name and math.isfinite(a.value) and a.cost_s > 0 and a.seed == 0
    assert a.value == b.value                      # same seed, same value
    assert c.value != a.value and c.seed == 1      # the init differs across seeds
    if name in ("grad_norm", "snip"):
        assert a.value > 0
    if name == "cka":
        assert 0 <= a.value <= 1


def test_grad_norm_and_snip_asked_together_share_one_gradient(ctx):
    # the same loss on the same batches: one gradient gives both, each with half its cost
    alone = {n: get_proxy(n)(STUDENT, ctx, seed=2) for n in ("grad_norm", "snip")}
    got = compute_proxies(STUDENT, ctx, ["snip", "params", "grad_norm"], seed=2)
    assert [r.name for r in got] == ["snip", "params", "grad_norm"]
    by = {r.name: r for r in got}
    for n in ("grad_norm", "snip"):
        assert by[n].value == pytest.approx(alone[n].value, rel=1e-5) and by[n].seed == 2
    assert by["grad_norm"].cost_s == by["snip"].cost_s > 0
    seen = []
    compute_proxies(STUDENT, ctx, ["grad_norm", "snip"], seed=2, on_result=seen.append)
    assert [r.name for r in seen] == ["grad_norm", "snip"]        # each reported once


def test_teacher_init_changes_the_student(ctx):
    names = ("snip", "synflow", "cka")
    rnd = {r.name: r.value for r in compute_proxies(STUDENT, ctx, names, init="random")}
    tch = compute_proxies(STUDENT, ctx, names, init="teacher")
    assert all(math.isfinite(r.value) and r.cost_s > 0 for r in tch)
    assert all(r.value != rnd[r.name] for r in tch)


def test_derived_init(ctx):
    pytest.importorskip("distill.derive")
    cfg = StudentConfig(num_layers=1, hidden_size=24, num_heads=1, ffn_size=48)  # head size 24
    a = compute_proxies(cfg, ctx, GRADIENT, init="derived", seed=0)
    b = compute_proxies(cfg, ctx, GRADIENT, init="derived", seed=0)
    assert [r.value for r in a] == [r.value for r in b]
    assert all(math.isfinite(r.value) and r.cost_s > 0 for r in a)
    with pytest.raises(ValueError, match="head_size"):       # not derivable: a clear error
        compute_proxies(STUDENT.replace(num_heads=1), ctx, ["snip"], init="derived")


def test_linear_cka():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x, x) == pytest.approx(1)
    assert linear_cka(x, 3 * x @ q + 1) == pytest.approx(1)   # orthogonal, scale, shift
    assert 0 <= linear_cka(x, rng.normal(size=(50, 5))) < 0.5
    with pytest.raises(ValueError, match="same n"):
        linear_cka(x, x[:10])


# -- flash -------------------------------------------------------------------------------------
def test_stsb_at_initialisation(ctx):
    a = get_proxy("stsb_init")(STUDENT, ctx, seed=0)
    assert a.name == "stsb_init" and -1 <= a.value <= 1 and a.cost_s > 0
    assert get_proxy("stsb_init")(STUDENT, ctx, seed=0).value == a.value
    assert get_proxy("stsb_init")(STUDENT, ctx, seed=1).value != a.value
    with pytest.raises(ValueError, match="stsb_init needs STS-B pairs"):
        get_proxy("stsb_init")(STUDENT, dataclasses.replace(ctx, stsb_pairs=None))


def test_flash_proxy_and_result_fields(ctx, teacher, tok):
    r = get_proxy("flash_2")(STUDENT, ctx, seed=0)
    assert r.name == "flash_2" and -1 <= r.value <= 1 and r.cost_s > 0 and r.seed == 0
    plain = flash_distill(STUDENT, teacher, tok, TEXTS, steps=2,
                          distill_config=DistillConfig(batch_size=8, max_len=32, packing=False))
    assert plain.stsb is None and math.isfinite(plain.final_loss) and plain.steps == 2
    assert not hasattr(plain, "score")
    no_pairs = make_context(teacher, tok, TEXTS, n_batches=1, batch_size=8, max_len=32)
    with pytest.raises(ValueError, match="STS-B pairs"):
        get_proxy("flash_2")(STUDENT, no_pairs)


# -- names -------------------------------------------------------------------------------------
def test_unknown_proxy_names_the_known_ones(ctx):
    with pytest.raises(ValueError, match="unknown proxy 'nope'.*params.*cka.*flash_K"):
        get_proxy("nope")
    with pytest.raises(ValueError, match="unknown proxy 'flash'"):
        compute_proxies(STUDENT, ctx, "params,flash")       # fails before anything runs
    with pytest.raises(ValueError, match="positive"):
        get_proxy("flash_0")
    with pytest.raises(ValueError, match="unknown init"):
        compute_proxies(STUDENT, ctx, "params", init="pretrained")
    assert parse_names(" params, flops,params,flash_50 ") == ["params", "flops", "flash_50"]
    assert set(PROXIES) == {"params", "flops", "stsb_init", *GRADIENT}


# -- command line ------------------------------------------------------------------------------
def hw(*args):
    return subprocess.run([sys.executable, "-m", "hwdistill", "proxies", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def teacher_dir(teacher, tmp_path_factory):
    return save_encoder(teacher, tmp_path_factory.mktemp("tiny") / "teacher",
                        tokenizer_from=default_teacher_dir())


@pytest.mark.slow   # minutes; the main job's end-to-end test covers the same path
def test_cli_json_and_table(teacher_dir):
    arch = json.dumps(STUDENT.to_dict())
    common = ["--arch", arch, "--teacher", str(teacher_dir), "--data-dir", str(DATA),
              "--batch-size", "8", "--max-len", "32"]
    r = hw(*common, "--proxies", "params,snip", "--flash-steps", "2", "--stsb-split", "dev",
           "--stsb-pairs", "20", "--seed", "2", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    rows = {p["name"]: p for p in out["proxies"]}
    assert list(rows) == ["params", "snip", "flash_2"] and out["stsb_pairs"] == 20
    assert rows["params"]["value"] == non_embedding_params(STUDENT)
    assert all(p["seed"] == 2 and p["cost_s"] > 0 and math.isfinite(p["value"])
               for p in rows.values())
    r = hw(*common, "--proxies", "params,cka", "--init", "teacher")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.splitlines()
    assert lines[1].split() == ["name", "value", "cost_s", "seed"]
    assert [ln.split()[0] for ln in lines[3:]] == ["params", "cka"]


def test_cli_unknown_proxy_is_a_clear_error():
    r = hw("--arch", "bert-mini", "--proxies", "params,zen")
    assert r.returncode == 2 and "unknown proxy 'zen'" in r.stderr and "synflow" in r.stderr
    assert "Traceback" not in r.stderr
    r = hw("--arch", "bert-mini", "--flash-steps", "ten")
    assert r.returncode == 2 and "--flash-steps" in r.stderr
