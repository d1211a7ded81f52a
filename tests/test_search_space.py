"""The student search space: a TOML file of dimensions; decode is one-to-one or rejects by
name; encode inverts it; repair is explicit; sampling is uniform over valid candidates."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from distill import PRESETS, StudentConfig
from search import DEFAULT_SPACE, Candidate, SearchSpace, SpaceError
from distill.config import derivable

S = DEFAULT_SPACE
vectors = st.lists(st.integers(0, 7), min_size=len(S.names), max_size=len(S.names)).map(
    lambda x: np.minimum(np.array(x), S.upper))


@settings(max_examples=400, deadline=None)
@given(vectors)
def test_every_index_vector_decodes_or_is_rejected_naming_the_field(x):
    try:
        cand = S.decode(x)
    except SpaceError as e:
        assert any(name in str(e) for name in S.names + ["num_heads"]), str(e)
        fixed = S.repair(x)
        assert S.check(fixed) is None
        assert np.array_equal(S.repair(fixed), fixed)          # repair is idempotent
        return
    assert isinstance(cand.config, StudentConfig)
    assert cand.config.attention_size % cand.config.num_heads == 0
    assert np.array_equal(S.encode(cand), x)                   # encode inverts decode
    assert np.array_equal(S.repair(x), x)                      # valid vectors are left alone


def test_decode_is_one_to_one_on_valid_vectors():
    rng = np.random.default_rng(0)
    X = rng.integers(0, S.sizes, size=(3000, len(S.names)))
    seen = {}
    for x in X:
        if S.check(x) is None:
            c = S.decode(x)
            assert seen.setdefault(c, tuple(x)) == tuple(x), f"{x} repeats {seen[c]}"
    assert len(seen) > 500


def test_categoricals_are_unordered_and_numbers_ordinal():
    assert S.categorical("activation") and S.categorical("init") and S.categorical("kq_shared")
    assert not S.categorical("hidden_size") and not S.categorical("num_layers")


def test_sampling_is_seeded_distinct_and_valid():
    a = S.sample(40, 3)
    assert a == S.sample(40, 3) and a != S.sample(40, 4)
    assert len(set(a)) == 40
    configs = S.sample_configs(30, 0)
    assert len(set(configs)) == 30


def test_derived_init_needs_a_student_the_teacher_slices_into():
    t = S.teacher
    ok = StudentConfig(num_layers=4, hidden_size=256, num_heads=8, ffn_size=1024, pooler=False)
    assert derivable(ok, t) is None
    wide = ok.replace(hidden_size=512, num_heads=16, ffn_size=1024)
    assert "hidden_size" in derivable(wide, t)
    assert "head_size" in derivable(ok.replace(num_heads=4), t)
    x = S.encode(Candidate(ok, "derived"))
    assert S.decode(x).init == "derived"
    bad = x.copy()
    bad[S.names.index("num_layers")] = S.options("num_layers").index(8)
    with pytest.raises(SpaceError, match="num_layers"):
        S.decode(bad)
    assert S.decode(S.repair(bad)).init == "scratch"


@pytest.mark.parametrize("field, value, match", [
    ("intra_size", 512, "intra_size=512 is not narrower"),
    ("head_size", 64, "head_size=64 does not divide"),
    ("embedding_size", 128, "embedding_size=128 is not narrower"),
    ("kq_shared", True, "kq_shared=true needs a bottleneck"),
])
def test_invalid_combinations_are_named(field, value, match):
    space = SearchSpace.from_dict({"dimensions": {
        "hidden_size": [128], "intra_size": [0, 512] if field == "intra_size" else [0],
        "head_size": [32, 96] if field == "head_size" else [32],
        "embedding_size": [0, 128], "kq_shared": [False, True]}})
    v = {n: 0 for n in space.names}
    opts = space.options(field)
    v[field] = opts.index(value if field != "head_size" else 96)
    with pytest.raises(SpaceError, match=match.replace("64", "96")):
        space.decode(v)


@pytest.mark.parametrize("data, match", [
    ({"dimensions": {"hidden": [128]}}, r"unknown dimension\(s\) \['hidden'\]"),
    ({"dimensions": {"hidden_size": []}}, "non-empty list"),
    ({"dimensions": {"hidden_size": [128, "wide"]}}, "option 'wide' is a str; expected int"),
    ({"dimensions": {"activation": ["swish"]}}, "'swish' is not one of"),
    ({"dimensions": {"num_layers": [0]}}, "must be positive"),
    ({"dimensions": {"num_layers": [2, 2]}}, "lists an option twice"),
    ({"dimensions": {"hidden_size": [128], "intra_size": [128]}}, "no combination"),
    ({"space": {"version": 1}}, "version 1 is not supported"),
    ({"teacher": {"hidden_size": 100}}, r"\[teacher\] is not a valid"),
    ({"dims": {}}, "unknown table"),
])
def test_bad_space_files_are_named(data, match):
    with pytest.raises(SpaceError, match=match):
        SearchSpace.from_dict(data)


def test_space_file_round_trip_and_errors(tmp_path):
    import tomllib
    p = tmp_path / "space.toml"
    p.write_text(SearchSpace.default_text())
    assert SearchSpace.from_toml(p) == S
    assert SearchSpace.from_dict(tomllib.loads(p.read_text())).to_dict() == S.to_dict()
    p.write_text("[dimensions\n")
    with pytest.raises(SpaceError, match="not valid TOML"):
        SearchSpace.from_toml(p)
    with pytest.raises(SpaceError, match="does not exist"):
        SearchSpace.from_toml(tmp_path / "nope.toml")


def test_encode_names_what_the_space_cannot_express():
    with pytest.raises(SpaceError, match="num_layers=12 is not an option"):
        S.encode(PRESETS["bert-base"])
    c = S.sample(1, 0)[0]
    assert S.decode(S.encode(c)) == c


def test_describing_candidates_loads_no_jax():
    code = ("import sys; from search import DEFAULT_SPACE as S; "
            "[c.describe() for c in S.sample(20, 0)]; print('jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
