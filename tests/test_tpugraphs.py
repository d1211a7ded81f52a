"""TpuGraphs reader and the learned TPU op model on the committed fixtures (real TPU timings:
tests/fixtures/tpugraphs.md)."""

import math
from pathlib import Path

import pytest

from measurements.errors import InputError, MissingError
from perfmodel.features import FEATURE_NAMES
from perfmodel.hardware import spec_for
from perfmodel.tpugraphs import (
    TILE_FEATURE_NAMES,
    TpuGraphsError,
    default_config_evaluate,
    layout_features,
    layout_kfold_evaluate,
    loko_evaluate,
    ranking_metrics,
    read_layout_data,
    read_tile_data,
    roofline_evaluate,
    tile_features,
)

FIX = Path(__file__).parent / "fixtures"
TILE = FIX / "tpugraphs_op_tuning_data.pb"
LAYOUT = FIX / "tpugraphs_layout_small.pb"


@pytest.fixture(scope="module")
def kernels():
    return read_tile_data(TILE)


def test_reader_counts(kernels):
    assert len(kernels) == 15
    runs = {k.name: len(k.rows) + k.n_errors for k in kernels}
    assert runs["fusion.191"] == 581 and runs["fusion.232"] == 61 and runs["fusion.250"] == 2
    assert sum(runs.values()) == 754
    assert sum(k.n_errors for k in kernels) == 2
    for k in kernels:
        assert sum(r.is_default for r in k.rows) == 1
        assert all(r.runtime_ns > 0 for r in k.rows)
        assert k.entry in k.instructions
    f191 = next(k for k in kernels if k.name == "fusion.191")
    assert f191.rows[0].kernel_bounds and len(f191.rows[0].output_bounds) == 4


def test_reader_hlo_costs(kernels):
    by = {k.name: k for k in kernels}
    # a copy moves its bytes and computes nothing: bf16[32,5,5,256] in and out
    c = by["copy.24"].op
    assert c.opcode == "copy" and c.flops == 0
    assert c.bytes_accessed == 2 * 32 * 5 * 5 * 256 * 2
    # the convolution fusion: flops counted, dims of its largest contraction found
    f = by["fusion.261"].op
    assert f.opcode == "fusion" and f.fusion_kind == "kOutput"
    assert "convolution" in f.fused_opcodes and f.flops > 2 * 4096 * 1000 * 32
    assert f.result[0].dims == (4096, 1000) and f.result[0].dtype == "f32"


def test_layout_reader():
    m = read_layout_data(LAYOUT)
    assert len(m.rows) == 5 and m.n_errors == 1
    assert sum(r.is_default for r in m.rows) == 1
    assert len(m.config_nodes) == 62 and all(len(r.layout) == 62 for r in m.rows)
    assert m.ops and all(r.runtime_ns > 9e8 for r in m.rows)


def test_wrong_kind_of_file_is_named(tmp_path):
    with pytest.raises(TpuGraphsError, match="read_layout_data"):
        read_tile_data(LAYOUT)   # a ModuleTuningData is not a TuningData


def test_corrupt_file_gives_named_error(tmp_path):
    bad = tmp_path / "op_tuning_data.pb"
    bad.write_bytes(TILE.read_bytes()[:30000])   # truncated
    with pytest.raises(TpuGraphsError) as e:
        read_tile_data(bad)
    assert str(bad) in str(e.value) and "tpu_graphs" in str(e.value)
    assert isinstance(e.value, InputError)
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\xff" * 64)
    with pytest.raises(TpuGraphsError, match="junk.pb"):
        read_layout_data(junk)
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    with pytest.raises(TpuGraphsError, match="empty"):
        read_tile_data(empty)
    with pytest.raises(MissingError):
        read_tile_data(tmp_path / "absent.pb")


def test_features_shape(kernels):
    k = kernels[0]
    f = tile_features(k.op, k.rows[0], spec_for("tpu-v3"))
    assert len(f) == len(FEATURE_NAMES) + len(TILE_FEATURE_NAMES)
    assert all(math.isfinite(x) for x in f)


def test_ranking_metrics():
    m = ranking_metrics([1, 2, 3], [10, 20, 30])
    assert m["kendall_tau"] == pytest.approx(1.0) and m["slowdown_top1"] == 1.0
    m = ranking_metrics([3, 2, 1], [10, 20, 30])
    assert m["kendall_tau"] == pytest.approx(-1.0) and m["slowdown_top1"] == 3.0
    m = ranking_metrics([5, 5, 5], [10, 20, 30])   # all tied: no information
    assert m["prediction_all_tied"] and m["kendall_tau"] == 0.0 and m["slowdown_top1"] == 2.0
    # top-2 of 3 tied configs at random: the best (10) is missed with probability 1/3 -> 20
    m = ranking_metrics([5, 5, 5], [10, 20, 30], top_k=2)
    assert m["top2_error"] == pytest.approx((2 / 3 * 10 + 1 / 3 * 20) / 10 - 1)
    m = ranking_metrics([1, 5, 5, 5], [40, 10, 20, 30], top_k=2)   # 40 taken, one of three
    assert m["top2_error"] == pytest.approx((10 + 20 + 30) / 3 / 10 - 1)


def test_loko_runs_on_fixture(kernels):
    small = [k for k in kernels if k.name != "fusion.191"]   # keeps the test quick
    r = loko_evaluate(small, xgb_params=dict(n_estimators=20, max_depth=3,
                                             learning_rate=0.3))
    assert r["kernels"] == 14
    for m in r["per_kernel"].values():
        assert -1.0 <= m["kendall_tau"] <= 1.0 and m["slowdown_top1"] >= 1.0
    assert -1.0 <= r["kendall_tau_mean"] <= 1.0
    pw = loko_evaluate(small[:4], objective="pairwise",
                       xgb_params=dict(n_estimators=10, max_depth=3, learning_rate=0.3))
    assert pw["kernels"] == 4 and all(-1.0 <= m["kendall_tau"] <= 1.0
                                      for m in pw["per_kernel"].values())
    with pytest.raises(InputError, match="objective"):
        loko_evaluate(small, objective="listwise")
    roof = roofline_evaluate(small)
    assert roof["kernels_all_tied"] == roof["kernels"] == 14
    d = default_config_evaluate(small)
    assert d["slowdown_median"] >= 1.0


def _xla_text(module) -> str:
    """The HLO text XLA itself writes for an HloModuleProto (jaxlib's printer)."""
    hlo = pytest.importorskip("jaxlib._hlo")
    from jax._src.lib import xla_client as xc
    if not hasattr(hlo, "HloPrintOptions"):
        pytest.skip("this jaxlib has no HloPrintOptions")
    o = hlo.HloPrintOptions()
    o.print_percent = o.print_operand_shape = o.print_program_shape = True
    o.include_layout_in_shapes, o.print_metadata = True, False
    return xc.XlaComputation(module.SerializeToString()).get_hlo_module().to_string(o)


def test_proto_ops_match_the_text_parser(kernels):
    """The op built from the protobuf equals the one perfmodel.hlo parses from the HLO text XLA
    prints for the same module: flops, bytes, shapes with layout and tiling, fused opcodes."""
    from perfmodel.hlo import executed_ops
    from perfmodel.protos import tuning_pb2
    td = tuning_pb2.TuningData.FromString(TILE.read_bytes())
    for m, k in zip(td.modules, kernels):
        (text_op,) = executed_ops(_xla_text(m.module))
        for f in ("name", "opcode", "fusion_kind", "fused_opcodes", "result", "operands",
                  "flops", "transcendentals", "bytes_accessed", "dot_dims"):
            assert getattr(k.op, f) == getattr(text_op, f), (k.name, f)


def test_layout_model_runs_on_fixture():
    m = read_layout_data(LAYOUT)
    X = layout_features(m)
    assert X.shape[0] == len(m.rows) and X.shape[1] % len(m.config_nodes) == 0
    r = layout_kfold_evaluate(m, folds=2, xgb_params=dict(n_estimators=10, max_depth=3))
    assert r["configs"] == 5 and len(r["per_fold"]) == 2
    assert all(-1.0 <= p["kendall_tau"] <= 1.0 for p in r["per_fold"])
    with pytest.raises(InputError, match="folds"):
        layout_kfold_evaluate(m, folds=5)
