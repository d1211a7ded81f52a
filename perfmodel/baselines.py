"""Baseline latency predictors the learned op model is compared with, each trained on the same
profiled programs:

* ``flops_linear``: latency = a + b * FLOPs (XLA cost_analysis FLOPs).
* ``xla_roofline``: latency = a + b * roofline(cost_analysis FLOPs, bytes; measured CPU spec).
* ``arch_regressor``: gradient-boosted trees on architecture + workload hyperparameters
  (the HELP / BRP-NAS style of predictor: no knowledge of the compiled program).
"""

from __future__ import annotations

import numpy as np
import xgboost as xgb
from sklearn.linear_model import LinearRegression

from distill import StudentConfig, Workload

from .hardware import HardwareSpec

__all__ = ["arch_features", "FlopsLinear", "RooflineLinear", "ArchRegressor"]


def arch_features(cfg: StudentConfig, wl: Workload) -> list[float]:
    return [cfg.num_layers, cfg.hidden_size, cfg.intra_size or 0, cfg.num_heads, cfg.ffn_size,
            cfg.num_ffn, cfg.emb_size, float(cfg.activation == "relu"),
            float(cfg.normalization == "nonorm"), float(cfg.kq_shared_bottleneck),
            float(cfg.trigram_input), wl.batch_size, wl.seq_len,
            {"float32": 4, "bfloat16": 2, "float16": 2}[wl.dtype]]


class FlopsLinear:
    def fit(self, flops, lat_ms):
        self.m = LinearRegression().fit(np.c_[flops], lat_ms)
        return self

    def predict(self, flops):
        return self.m.predict(np.c_[flops])


class RooflineLinear:
    def __init__(self, spec: HardwareSpec):
        self.spec = spec

    def _x(self, flops, nbytes):
        return np.c_[[self.spec.roofline_s(f, b) for f, b in zip(flops, nbytes)]]

    def fit(self, flops, nbytes, lat_ms):
        self.m = LinearRegression().fit(self._x(flops, nbytes), lat_ms)
        return self

    def predict(self, flops, nbytes):
        return self.m.predict(self._x(flops, nbytes))


class ArchRegressor:
    def fit(self, pairs, lat_ms, seed: int = 0):
        X = np.array([arch_features(c, w) for c, w in pairs], float)
        self.m = xgb.XGBRegressor(n_estimators=400, max_depth=4, learning_rate=0.05,
                                  subsample=0.9, random_state=seed, n_jobs=2)
        self.m.fit(X, np.log(lat_ms))
        return self

    def predict(self, pairs):
        X = np.array([arch_features(c, w) for c, w in pairs], float)
        return np.exp(self.m.predict(X))
