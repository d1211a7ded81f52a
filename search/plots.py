"""Pictures of a search: every evaluated point, the Pareto front, reference models marked."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["plot_front"]


def plot_front(values: np.ndarray, pareto: np.ndarray, *, x_name: str, y_name: str,
               y_higher_is_better: bool, path: str | Path, title: str = "",
               markers: Sequence[tuple[str, float]] = (), rounds: Sequence[int] | None = None,
               log_x: bool = True) -> Path:
    """Scatter of evaluated points (x: latency, y: accuracy), the front as a step line, and
    vertical markers (name, x) for the teacher and hand-designed presets."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = np.atleast_2d(values)
    fig, ax = plt.subplots(figsize=(7, 5))
    c = None if rounds is None else np.asarray(rounds)
    sc = ax.scatter(values[:, 0], values[:, 1], s=16, c=c, cmap="viridis", alpha=0.7,
                    label="evaluated")
    if rounds is not None:
        fig.colorbar(sc, ax=ax, label="round")
    front = values[pareto]
    front = front[np.argsort(front[:, 0])]
    ax.step(front[:, 0], front[:, 1], where="post" if y_higher_is_better else "pre",
            color="crimson", lw=1.5)
    ax.scatter(front[:, 0], front[:, 1], s=40, facecolors="none", edgecolors="crimson",
               label=f"Pareto front ({len(front)})")
    for name, x in markers:
        ax.axvline(x, color="grey", ls=":", lw=1)
        ax.text(x, ax.get_ylim()[1], f" {name}", rotation=90, va="top", fontsize=7,
                color="dimgrey")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right" if y_higher_is_better else "upper right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
