"""Latency of an architecture on a piece of hardware, measured, profiled, learned and predicted.

  from perfmodel import Predictor, LatencyModel
  model = LatencyModel.load(default_model_dir(fingerprint_id))
  Predictor("cpu", model).predict(cfg, workload).latency_ms      # instant, no device

Depends on ``distill`` (architectures, the served program) and ``measurements`` (the store,
timing). Names are loaded on first use (PEP 562): importing the package does not load jax.
"""

from importlib import import_module

_LAZY = {
    # prediction
    "Predictor": ".predict", "Prediction": ".predict",
    "LatencyModel": ".latency_model", "fit_from_store": ".latency_model",
    "ModelError": ".latency_model", "default_model_dir": ".latency_model",
    "OpListCache": ".opcache",
    # programs and their ops
    "compile_local": ".program", "serving_fn": ".program", "ANALYSIS_OPTIONS": ".program",
    "compile_tpu": ".aot", "AotUnavailableError": ".aot",
    "HloOp": ".hlo", "executed_ops": ".hlo", "parse_hlo": ".hlo", "HloParseError": ".hlo",
    "HardwareSpec": ".hardware", "spec_for": ".hardware", "probe_cpu": ".hardware",
    # measuring and profiling
    "measure_latency": ".measure", "Measurement": ".measure",
    "profile_pairs": ".sweep", "profile_compiled": ".profile", "TraceError": ".trace",
    "read_capture": ".capture", "store_capture": ".capture", "CaptureError": ".capture",
    # validation and baselines
    "measure_interleaved": ".validate", "score": ".validate",
    "FlopsLinear": ".baselines", "RooflineLinear": ".baselines", "ArchRegressor": ".baselines",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
