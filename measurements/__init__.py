"""The record of what real hardware and real training said: the SQLite store, the hardware
fingerprint, the robust timing harness, and the executors that run evaluation jobs. Imports
nothing else of hwdistill.

Names are loaded on first use (PEP 562): importing :mod:`measurements.errors` (which ``distill``
does) or a record type does not load the timing statistics (scipy) or the executors.
"""

from importlib import import_module

from .errors import HwdistillError, InputError, MissingError, StateError

_LAZY = {
    "Executor": ".executor", "ExecutorError": ".executor", "Job": ".executor",
    "JobResult": ".executor", "LocalExecutor": ".executor", "ProcessExecutor": ".executor",
    "FingerprintMismatchError": ".fingerprint", "HardwareFingerprint": ".fingerprint",
    "check_compatible": ".fingerprint", "detect": ".fingerprint",
    "LatencyRecord": ".records", "OpTiming": ".records", "Trial": ".records",
    "DEFAULT_STORE": ".store", "SCHEMA_VERSION": ".store", "Store": ".store",
    "StoreError": ".store", "StoreSchemaError": ".store", "TrialStatusError": ".store",
    "TimingResult": ".timing", "time_callable": ".timing", "time_paired": ".timing",
}

__all__ = ["HwdistillError", "InputError", "MissingError", "StateError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
