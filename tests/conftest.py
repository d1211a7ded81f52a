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
