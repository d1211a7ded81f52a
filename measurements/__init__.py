"""The record of what real hardware and real training said: the SQLite store, the hardware
fingerprint, the robust timing harness. Imports nothing else of hwdistill."""

from .fingerprint import FingerprintMismatchError, HardwareFingerprint, check_compatible, detect
from .records import Evaluation, LatencyRecord, OpTiming
from .store import DEFAULT_STORE, SCHEMA_VERSION, Store, StoreError, StoreSchemaError
from .timing import TimingResult, time_callable, time_paired

__all__ = [
    "DEFAULT_STORE", "Evaluation", "FingerprintMismatchError", "HardwareFingerprint",
    "LatencyRecord", "OpTiming", "SCHEMA_VERSION", "Store", "StoreError", "StoreSchemaError",
    "TimingResult", "check_compatible", "detect", "time_callable", "time_paired",
]
