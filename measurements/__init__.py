"""The record of what real hardware and real training said: the SQLite store, the hardware
fingerprint, the robust timing harness, and the executors that run evaluation jobs. Imports
nothing else of hwdistill."""

from .executor import Executor, ExecutorError, Job, JobResult, LocalExecutor, ProcessExecutor
from .fingerprint import FingerprintMismatchError, HardwareFingerprint, check_compatible, detect
from .records import LatencyRecord, OpTiming, Trial
from .store import (DEFAULT_STORE, SCHEMA_VERSION, Store, StoreError, StoreSchemaError,
                    TrialStatusError)
from .timing import TimingResult, time_callable, time_paired

__all__ = [
    "DEFAULT_STORE", "Executor", "ExecutorError", "FingerprintMismatchError", "Job", "JobResult",
    "LocalExecutor", "ProcessExecutor", "HardwareFingerprint", "LatencyRecord",
    "OpTiming", "SCHEMA_VERSION", "Store", "StoreError", "StoreSchemaError", "TimingResult",
    "Trial", "TrialStatusError", "check_compatible", "detect", "time_callable", "time_paired",
]
