"""Hardware fingerprint: what a measurement was taken on.

A latency number means nothing without the machine and software that produced it. Every record
in the store carries the id of a :class:`HardwareFingerprint`; models and searches refuse to mix
fingerprints unless asked to (see :func:`check_compatible`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform as _platform
from importlib import metadata
from .errors import HwdistillError, InputError

__all__ = ["HardwareFingerprint", "FingerprintMismatchError", "detect", "check_compatible"]


class FingerprintMismatchError(HwdistillError, ValueError):
    """Records from different hardware/software were about to be mixed."""


@dataclasses.dataclass(frozen=True)
class HardwareFingerprint:
    """Identity of the hardware and software stack a measurement ran on.

    ``target`` is what the program was compiled for: ``cpu`` (local), or an ahead-of-time
    TPU target such as ``tpu-v5e``. ``xla_flags`` is the XLA_FLAGS environment string.
    """

    target: str
    platform: str
    device_kind: str
    device_count: int
    cpu_model: str
    cpu_cores: int
    jax_version: str
    jaxlib_version: str
    libtpu_version: str = ""
    xla_flags: str = ""

    @property
    def id(self) -> str:
        """Stable short hash of every field (12 hex digits)."""
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "HardwareFingerprint":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"fingerprint JSON is corrupt ({e}): {text[:80]!r}") from e
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = fields - set(data) - {"libtpu_version", "xla_flags"}
        unknown = set(data) - fields
        if missing or unknown:
            raise InputError(
                f"fingerprint JSON has missing fields {sorted(missing)} / unknown fields "
                f"{sorted(unknown)}; expected {sorted(fields)}. Was it written by another "
                "hwdistill version?")
        return cls(**data)

    def differences(self, other: "HardwareFingerprint") -> dict[str, tuple]:
        """Fields that differ, as {field: (self_value, other_value)}."""
        a, b = dataclasses.asdict(self), dataclasses.asdict(other)
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    def describe(self) -> str:
        if not self.cpu_cores and not self.jax_version:   # e.g. from a profiler capture
            return (f"{self.target} [{self.device_kind}] x{self.device_count}, host and "
                    f"software not recorded (id {self.id})")
        return (f"{self.target} [{self.device_kind}] on {self.cpu_model} x{self.cpu_cores}, "
                f"jax {self.jax_version} (id {self.id})")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or _platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def detect(target: str = "cpu") -> HardwareFingerprint:
    """Fingerprint of this process's JAX backend (``target='cpu'`` or the local accelerator),
    or of an ahead-of-time compile target such as ``tpu-v5e`` (whose device facts come from
    the target name, since the device is not attached)."""
    import jax  # local import: fingerprints are also built from JSON without jax

    if target in ("cpu", "local", "gpu", "tpu"):
        dev = jax.devices()[0] if target == "local" else jax.devices(
            "cpu" if target == "cpu" else target)[0]
        platform, kind, count = dev.platform, dev.device_kind, len(jax.devices(dev.platform))
        target = dev.platform
    else:
        platform, kind, count = "tpu-aot", target, 1
    return HardwareFingerprint(
        target=target, platform=platform, device_kind=str(kind), device_count=int(count),
        cpu_model=_cpu_model(), cpu_cores=os.cpu_count() or 0,
        jax_version=_version("jax"), jaxlib_version=_version("jaxlib"),
        libtpu_version=_version("libtpu"), xla_flags=os.environ.get("XLA_FLAGS", ""))


def check_compatible(fingerprints, *, allow_mixed: bool = False) -> None:
    """Raise :class:`FingerprintMismatchError` if ``fingerprints`` are not all the same
    (unless ``allow_mixed``), naming the fields that differ and the fix."""
    fps = {fp.id: fp for fp in fingerprints}
    if len(fps) <= 1 or allow_mixed:
        return
    items = list(fps.values())
    base = items[0]
    lines = []
    for other in items[1:]:
        diff = base.differences(other)
        lines.append(f"  {base.id} vs {other.id}: " + ", ".join(
            f"{k}={a!r} vs {b!r}" for k, (a, b) in sorted(diff.items())))
    raise FingerprintMismatchError(
        f"refusing to mix records of {len(fps)} hardware fingerprints:\n" + "\n".join(lines) +
        "\nFix: select one with --fingerprint ID (see `hwdistill store info`), use a separate "
        "store per machine, or pass allow_mixed=True / --allow-mixed if you mean it.")
