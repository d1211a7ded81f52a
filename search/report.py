"""A run's report: ``report.md`` and ``report.html`` with PNGs, rendered from its state alone
(``hwdistill report RUN_ID`` re-renders it without recomputing anything)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["Doc", "render_report"]


class Doc:
    """A document of headings, paragraphs, tables and images, written as Markdown or HTML."""

    def __init__(self):
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def table(self, cols: Sequence[str], rows: Sequence[Sequence]) -> None:
        self.blocks.append(("table", list(cols), [list(map(_cell, r)) for r in rows]))

    def img(self, path: str, alt: str) -> None:
        self.blocks.append(("img", path, alt))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "code":
                out.append("```\n" + b[1] + "\n```")
            elif b[0] == "table":
                out.append("\n".join(["| " + " | ".join(b[1]) + " |",
                                      "|" + "---|" * len(b[1])]
                                     + ["| " + " | ".join(r) + " |" for r in b[2]]))
            else:
                out.append(f"![{b[2]}]({b[1]})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        e = html.escape
        body = []
        for b in self.blocks:
            if b[0] == "h":
                body.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                body.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "code":
                body.append(f"<pre>{e(b[1])}</pre>")
            elif b[0] == "table":
                head = "".join(f"<th>{e(c)}</th>" for c in b[1])
                rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                               for r in b[2])
                body.append(f"<table><tr>{head}</tr>{rows}</table>")
            else:
                body.append(f'<figure><img src="{e(b[1])}" alt="{e(b[2])}">'
                            f"<figcaption>{e(b[2])}</figcaption></figure>")
        style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
                 "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;"
                 "text-align:right}img{max-width:100%}pre{background:#f4f4f4;padding:1em}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _cell(v) -> str:
    if isinstance(v, float):
        return "-" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_hypervolume(rounds: list[dict], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["n_evals"] for r in rounds], [r["hypervolume"] for r in rounds], "o-")
    ax.set_xlabel("proxy evaluations")
    ax.set_ylabel("hypervolume (proxy x predicted latency)")
    ax.set_title("search progress per round")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _plot_accuracy(flashed: list[dict], distilled: list[dict], teacher: dict | None,
                   teacher_stsb: float | None, path: Path) -> Path:
    """Latency (measured where measured) vs STS-B after flash and full distillation."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 5))
    lat = lambda r: r.get("measured_ms", r["predicted_ms"])  # noqa: E731
    fl = [r for r in flashed if math.isfinite(r.get("flash_stsb", math.nan))]
    if fl:
        ax.scatter([lat(r) for r in fl], [r["flash_stsb"] for r in fl], s=40,
                   label="flash-distilled")
    if distilled:
        ax.scatter([lat(r) for r in distilled], [r["full_stsb"] for r in distilled], s=90,
                   marker="D", color="crimson", label="fully distilled")
    if teacher is not None and teacher_stsb is not None:
        ax.scatter([teacher.get("measured_ms", teacher.get("predicted_ms"))], [teacher_stsb],
                   s=160, marker="*", color="black", label="teacher")
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (measured here)")
    ax.set_ylabel("STS-B dev Spearman")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("accuracy vs latency of the students the search picked")
    return _save(fig, path)


def _plot_proxy_vs_flash(flashed: list[dict], proxy_name: str, path: Path) -> Path:
    plt = _plt()
    fl = [r for r in flashed if math.isfinite(r.get("flash_stsb", math.nan))]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([r["proxy"] for r in fl], [r["flash_stsb"] for r in fl], s=40)
    for r in fl:
        ax.annotate(str(r["trial"]), (r["proxy"], r["flash_stsb"]), fontsize=7)
    ax.set_xlabel(proxy_name)
    ax.set_ylabel("STS-B after flash distillation")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def render_report(run_dir: str | Path, state: dict) -> list[Path]:
    """Write ``report.md``, ``report.html`` and their PNGs into ``run_dir``; returns the paths.
    Sections whose stage has not run say so."""
    d = Path(run_dir)
    s, st = state["settings"], state["stages"]
    doc = Doc()
    written: list[Path] = []
    doc.h(1, f"hwdistill run {state['run_id']}")
    doc.p(f"Target {s['target']}, workload {s['workload']} (batch, sequence length), budget "
          f"{s['budget_minutes']:g} min, seed {s['seed']}, accuracy proxy {s['proxy']}, "
          f"{s['search_budget']} proxy evaluations, flash distillation {s['flash_steps']} steps.")
    doc.table(["stage", "seconds", "note"],
              [[k, st[k].get("seconds", math.nan) if k in st else math.nan,
                st[k].get("note", "") if k in st else "not run yet"]
               for k in ("profile", "fit", "search", "measure", "flash", "full")])

    full = st.get("full", {}).get("distilled", [])
    flash = st.get("flash", {})
    teacher = st.get("measure", {}).get("teacher")
    t_stsb = flash.get("teacher_stsb")
    doc.h(2, "Result")
    if full:
        rows = []
        for r in full:
            ms = r.get("measured_ms", r["predicted_ms"])
            speed = teacher["measured_ms"] / ms if teacher and "measured_ms" in r else math.nan
            rows.append([r["candidate"], ms, speed, r["full_stsb"],
                         100 * r["full_stsb"] / t_stsb if t_stsb else math.nan, r["steps"],
                         r["student_dir"]])
        doc.table(["student", "latency ms", "x faster than teacher", "STS-B dev",
                   "% of teacher", "steps", "checkpoint (in this folder)"], rows)
        if t_stsb is not None:
            doc.p(f"Teacher: STS-B dev {t_stsb:.4f}"
                  + (f", {teacher['measured_ms']:.3g} ms here." if teacher else "."))
    else:
        doc.p("No student fully distilled yet (the `full` stage has not completed).")

    if "measure" in st and "measured" in st["measure"]:
        m = st["measure"]
        from perfmodel.validate import plot_predicted_vs_measured, score
        pts = [*m["measured"], {**m["teacher"], "candidate": "teacher"}]
        pred = [r["predicted_ms"] for r in pts]
        meas = [r["measured_ms"] for r in pts]
        sc = score(pred, meas)
        doc.h(2, "Latency: predicted vs measured")
        written.append(plot_predicted_vs_measured({"op model": (pred, meas)}, d / "latency.png",
                                                  title=f"{s['target']} {s['workload']}"))
        doc.img("latency.png", "predicted vs measured latency of the measured candidates")
        doc.table(["program", "predicted ms", "measured ms", "error %", "rounds ms"],
                  [[r["candidate"], r["predicted_ms"], r["measured_ms"],
                    100 * (r["predicted_ms"] / r["measured_ms"] - 1),
                    ", ".join(f"{x:.3g}" for x in r["rounds_ms"])] for r in pts])
        doc.p(f"{100 * sc['within_10pct']:.0f}% of predictions within ±10% of the measurement; "
              f"two measurement rounds of the same program agree within ±10% in "
              f"{100 * m['repeatability_within_10pct']:.0f}% of pairs (the machine's "
              "repeatability, the best a predictor can be judged to).")

    if "search" in st:
        se = st["search"]
        from search.plots import plot_front
        ev = se["evaluated"]
        doc.h(2, "The search")
        if ev:
            V = np.array([[r["predicted_ms"], r["proxy"]] for r in ev])
            written.append(plot_front(
                V, np.array([r["pareto"] for r in ev]), x_name="predicted latency, ms",
                y_name=f"proxy {s['proxy']}", y_higher_is_better=True, path=d / "front.png",
                markers=[("teacher" if k == "minilm-l6-h384" else k, v)
                         for k, v in se.get("markers", {}).items()],
                rounds=[r["round"] for r in ev], title=f"search, workload {s['workload']}"))
            doc.img("front.png", "every evaluated student, the Pareto front, teacher and presets")
        if se.get("rounds"):
            written.append(_plot_hypervolume(se["rounds"], d / "hypervolume.png"))
            doc.img("hypervolume.png", "hypervolume per round")
        doc.p(f"{len(ev)} students scored by the proxy ({se.get('failed', 0)} failed); the "
              f"acquisition predicted the latency of {se.get('predicted_only', 0)} "
              "architectures without scoring them (predicted latency is exact and cheap, so it "
              "enters the acquisition directly).")
        front = sorted([r for r in ev if r["pareto"]], key=lambda r: r["predicted_ms"])
        doc.table(["trial", "student", "predicted ms", f"proxy {s['proxy']}"],
                  [[r["trial"], r["candidate"], r["predicted_ms"], r["proxy"]] for r in front])

    if flash.get("flashed"):
        doc.h(2, "Accuracy: proxy, flash and full distillation")
        written.append(_plot_accuracy(flash["flashed"], full, teacher, t_stsb,
                                      d / "accuracy.png"))
        doc.img("accuracy.png", "latency vs STS-B after flash and full distillation")
        written.append(_plot_proxy_vs_flash(flash["flashed"], f"proxy {s['proxy']}",
                                            d / "proxy_vs_flash.png"))
        doc.img("proxy_vs_flash.png", "proxy vs flash-distilled STS-B")
        fulls = {r["candidate"]: r["full_stsb"] for r in full}
        doc.table(["student", "latency ms", f"proxy {s['proxy']}",
                   f"STS-B flash {flash['steps']}", "STS-B full", "flash cost s"],
                  [[r["candidate"], r.get("measured_ms", r["predicted_ms"]), r["proxy"],
                    r["flash_stsb"], fulls.get(r["candidate"], math.nan), r["flash_cost_s"]]
                   for r in flash["flashed"]])
        doc.p(f"STS-B dev Spearman on {flash.get('dev_pairs', '?')} pairs.")

    doc.h(2, "Reproduce")
    cmd = state.get("command") or ("from search import Pipeline, RunSettings\n"
                                   f"Pipeline(RunSettings(**{s!r})).run()")
    doc.code(cmd + "\nhwdistill report " + state["run_id"])
    md, page = d / "report.md", d / "report.html"
    md.write_text(doc.markdown())
    page.write_text(doc.html(f"hwdistill run {state['run_id']}"))
    return [md, page, *written]
