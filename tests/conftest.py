import os

# libtpu is installed for AOT TPU compiles; profiling needs the CPU platform pinned (docs/architecture.md).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from measurements import HardwareFingerprint  # noqa: E402


def make_fp(**over) -> HardwareFingerprint:
    base = dict(target="cpu", platform="cpu", device_kind="cpu", device_count=1,
                cpu_model="Test CPU", cpu_cores=2, jax_version="0.10.2",
                jaxlib_version="0.10.2", libtpu_version="", xla_flags="")
    base.update(over)
    return HardwareFingerprint(**base)


@pytest.fixture
def fp():
    return make_fp()


COMMITTED_STORE = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "store", "cpu.db")


@pytest.fixture(scope="session")
def real_store(tmp_path_factory):
    """A store of 48 programs of the committed profile (real timings of its machine, 24 per
    workload at 1x128 and 8x128): (path, fingerprint id)."""
    from measurements import Store
    with Store(COMMITTED_STORE, readonly=True) as src:
        fp = src.fingerprints()[0]
        lats = [r for r in src.latencies(fp.id) if r.tag == "profile"]
        keep = []
        for wl in ({"batch_size": 1, "dtype": "float32", "seq_len": 128},
                   {"batch_size": 8, "dtype": "float32", "seq_len": 128}):
            keep += [r for r in lats if dict(r.workload) == wl][:24]
        progs = {r.extra["program"] for r in keep}
        ops = [o for p in sorted(progs) for o in src.op_timings(fp.id, program=p)]
    path = tmp_path_factory.mktemp("real-store") / "s.db"
    with Store(path) as dst:
        dst.register_fingerprint(fp)
        dst.put_op_timings(ops)
        dst.put_latencies(keep)
    return path, fp.id


@pytest.fixture(scope="session")
def real_model(real_store):
    """A latency model fitted on the 48 programs of ``real_store``: small enough to fit in
    seconds."""
    from measurements import Store
    from perfmodel import fit_from_store, spec_for
    path, fp_id = real_store
    with Store(path, readonly=True) as st:
        return fit_from_store(st, fp_id, spec_for("cpu"))
