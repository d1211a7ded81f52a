"""Writes the notebooks (unexecuted) from their cells here, the one place they are edited.

  python notebooks/make_notebooks.py 03        # rewrite only notebook 03 (others keep outputs)

A rewritten notebook has no outputs; the committed ones carry the outputs of a full run:
  jupyter nbconvert --to notebook --execute --inplace notebooks/03_tpu_ahead_of_time.ipynb
(``tests/test_notebooks.py`` runs each in its small mode and checks the committed outputs).
"""

import sys
from pathlib import Path

import nbformat as nbf
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

META = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}

SETUP = '''import os
from pathlib import Path

# HWDISTILL_NOTEBOOK_SMALL=1 (what `make test` sets) runs a small version in a minute or two;
# the committed outputs are from a full run.
SMALL = os.environ.get("HWDISTILL_NOTEBOOK_SMALL") == "1"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
WORK = Path(os.environ.get("HWDISTILL_NOTEBOOK_WORK", "notebook-runs"))
WORK.mkdir(parents=True, exist_ok=True)
print("small mode" if SMALL else "full mode", "->", WORK)'''

nb1 = new_notebook(metadata=META, cells=[
    new_markdown_cell("""# 01 · Profile, predict, validate: latency on *this* machine

A student is cheap to serve only if its architecture suits the hardware. This notebook builds a
latency predictor for the CPU it runs on, from real per-op timings, and checks it against the
hardware:

1. **profile** per-op timings of students sampled from the search space (stored in SQLite under
   this machine's hardware fingerprint),
2. **fit** the op-latency model (XGBoost per op + a composition model),
3. **predict** unseen architectures instantly (no device),
4. **validate**: time held-out students in interleaved rounds and compare, next to how well two
   measurements of the same program agree (the machine's repeatability).

The same steps are CLI commands: `hwdistill profile`, `fit`, `predict`, `validate`."""),
    new_code_cell(SETUP),
    new_code_cell('''from distill import PRESETS, Workload
from measurements import Store, detect
from search import DEFAULT_SPACE

fp = detect("cpu")
print(fp.describe())
WL = Workload.parse("1,16" if SMALL else "8,128")
N_PROFILE, N_HELD_OUT = (5, 2) if SMALL else (16, 6)
store = Store(WORK / "nb01.db")
store.register_fingerprint(fp)
profile_cfgs = DEFAULT_SPACE.sample_configs(N_PROFILE, seed=0)
held_out = DEFAULT_SPACE.sample_configs(N_PROFILE + N_HELD_OUT, seed=1)[-N_HELD_OUT:]
print(f"{len(profile_cfgs)} students to profile at {WL}, {len(held_out)} held out")'''),
    new_markdown_cell("## 1 · Profile\nEach program is compiled, run under the JAX profiler, and its executed HLO ops joined with their timings. Resumable: pairs already in the store are skipped."),
    new_code_cell('''import time
from perfmodel import profile_pairs

t0 = time.perf_counter()
res = profile_pairs(store, fp, [(c, WL) for c in profile_cfgs], runs=6, budget_s=1.0)
print(f"profiled {res.profiled}, skipped {res.skipped} already stored, "
      f"{res.ops_stored} op timings added, {time.perf_counter() - t0:.0f} s")'''),
    new_markdown_cell("## 2 · Fit the op-latency model"),
    new_code_cell('''from perfmodel import fit_from_store, spec_for

model = fit_from_store(store, fp.id, spec_for("cpu"), seed=0)
{k: v for k, v in model.summary.items() if not isinstance(v, (list, dict))}'''),
    new_markdown_cell("## 3 · Predict unseen architectures instantly\nThe first prediction of a new layer signature composes op lists from a few small reference programs (compiled once per machine and cached on disk); after that a prediction is arithmetic."),
    new_code_cell('''from perfmodel import Predictor

pred = Predictor("cpu", model)
rows = []
for name in ("bert-tiny", "bert-mini", "minilm-l6-h384", "mobilebert-tiny"):
    t0 = time.perf_counter(); cold = pred.predict(PRESETS[name], WL)
    t1 = time.perf_counter(); pred.predict(PRESETS[name], WL); t2 = time.perf_counter()
    rows.append((name, round(cold.latency_ms, 3), f"{(t1 - t0):.2f} s", f"{(t2 - t1) * 1e6:.0f} us"))
print(f"{'preset':18s} {'predicted ms':>12s} {'first':>8s} {'again':>8s}")
for r in rows:
    print(f"{r[0]:18s} {r[1]:12.3f} {r[2]:>8s} {r[3]:>8s}")'''),
    new_markdown_cell("## 4 · Validate against the hardware\nHeld-out students are timed in 3 interleaved rounds (this machine drifts by tens of percent over minutes, so rounds are interleaved and their agreement is reported beside the prediction error)."),
    new_code_cell('''from perfmodel import measure_interleaved, score

pairs = [(c, WL) for c in held_out]
m = measure_interleaved(pairs, rounds=3, budget_s=1.0, seed=0)
p = [pred.predict(c, WL).latency_ms for c in held_out]
s = score(p, m.latency_ms)
print(f"prediction within ±10% of the measurement: {100 * s['within_10pct']:.0f}% "
      f"(MAPE {s['mape']:.3f}, Spearman {s['spearman']:.3f}, n={s['n']})")
print(f"two rounds of the same program within ±10% of each other: "
      f"{100 * m.noise_within_10pct:.0f}% (the machine's repeatability)")
for c, pi, mi in zip(held_out, p, m.latency_ms):
    print(f"  {c.num_layers}L/H{c.hidden_size}/F{c.ffn_size}x{c.num_ffn}: predicted {pi:.3f} ms, measured {mi:.3f} ms")'''),
    new_code_cell('''%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np

fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.loglog(m.latency_ms, p, "o")
lo, hi = min(min(p), m.latency_ms.min()) * 0.8, max(max(p), m.latency_ms.max()) * 1.25
x = np.array([lo, hi]); ax.plot(x, x, "k-", lw=0.8); ax.fill_between(x, 0.9 * x, 1.1 * x, alpha=0.15)
ax.set_xlabel("measured ms"); ax.set_ylabel("predicted ms"); ax.set_title(f"held-out students, {WL}")
store.close()'''),
])

nb2 = new_notebook(metadata=META, cells=[
    new_markdown_cell("""# 02 · Search and distil: the most accurate student at each latency

The main job (`hwdistill run`) as a library, one stage at a time: profile and fit the latency
model, search the student space (predicted latency is exact and cheap, so it enters the
acquisition directly; accuracy is an expensive proxy the GP models), time the Pareto-promising
students here, flash-distil them, fully distil the best one, and render the report.
Every stage is resumable: re-running a cell continues from the store."""),
    new_code_cell(SETUP),
    new_code_cell('''from search import Pipeline, RunSettings

if SMALL:
    # a tiny space and budgets, so the notebook runs in a couple of minutes
    space = WORK / "tiny_space.toml"
    space.write_text("""[space]
name = "tiny"
[dimensions]
num_layers = [1, 2]
hidden_size = [32, 64]
intra_size = [0]
head_size = [32]
ffn_ratio = [1.0, 2.0]
num_ffn = [1]
embedding_size = [0]
activation = ["gelu", "relu"]
normalization = ["layernorm"]
kq_shared = [false]
init = ["scratch", "derived"]
""")
    settings = RunSettings(space=str(space), workload="1,16", profile_archs=4, search_budget=3,
                           n_measure=2, n_flash=0, n_full=0, dev_pairs=32, budget_minutes=10)
else:
    settings = RunSettings()        # the embedded defaults of `hwdistill run`
pipe = Pipeline(settings, WORK / "runs")
print(pipe.run_id, settings)'''),
    new_markdown_cell("## Profile and fit (cached in the store)"),
    new_code_cell('''state = pipe.run(progress=print, bars=False, until="fit")
state["stages"]["fit"]["summary"].get("cv", state["stages"]["fit"]["summary"])'''),
    new_markdown_cell("## Search: predicted latency × accuracy proxy"),
    new_code_cell('''state = pipe.run(progress=print, bars=False, until="search")
se = state["stages"]["search"]
print(f"{len(se['evaluated'])} students scored by the proxy; the acquisition predicted "
      f"{se['predicted_only']} more architectures' latency without scoring them")
for r in sorted((r for r in se["evaluated"] if r["pareto"]), key=lambda r: r["predicted_ms"]):
    print(f"  {r['candidate']:45s} {r['predicted_ms']:8.3f} ms  proxy {r['proxy']:.4f}")'''),
    new_markdown_cell("## Measure the promising, flash-distil them, fully distil the best"),
    new_code_cell('''state = pipe.run(progress=print, bars=False)
m = state["stages"]["measure"]
for r in m["measured"]:
    print(f"  {r['candidate']:45s} predicted {r['predicted_ms']:8.3f} ms, measured {r['measured_ms']:8.3f} ms")
print(f"teacher: predicted {m['teacher']['predicted_ms']:.3f} ms, measured {m['teacher']['measured_ms']:.3f} ms")
for r in state["stages"]["flash"]["flashed"]:
    print(f"  {r['candidate']:45s} STS-B after flash: {r['flash_stsb']:.4f}")
for r in state["stages"]["full"].get("distilled", []):
    print(f"  fully distilled {r['candidate']}: STS-B dev {r['full_stsb']:.4f} after {r['steps']} steps")'''),
    new_markdown_cell("## The report\n`runs/RUN_ID/report.md` and `report.html`; the figures:"),
    new_code_cell('''from IPython.display import Image, display

for png in ("front.png", "latency.png", "accuracy.png"):
    if (pipe.dir / png).is_file():
        display(Image(filename=str(pipe.dir / png), width=520))
print((pipe.dir / "report.md").read_text()[:1500])'''),
])


nb3 = new_notebook(metadata=META, cells=[
    new_markdown_cell("""# 03 · TPU ahead of time: predict TPU latency on a host without a TPU

libtpu compiles a program for a TPU topology on any host, no TPU attached. The compiled HLO
gives each op's flops and bytes (and the TPU compiler's own cycle estimate), so a student's
latency on TPU v4, v5e and v6e is predicted here, analytically (the roofline of each chip's
spec): **uncalibrated**. A TPU user then captures real op timings on a TPU VM, imports the
capture here (`hwdistill store import`), fits the latency model on it (`hwdistill fit --target
tpu-v6e`), and the same prediction becomes **calibrated**.

The capture used below is public (XProf's test data: a TPU v6e run, 4 chips). Set
`HWDISTILL_TPU_CAPTURE` to your own `*.xplane.pb` to use yours."""),
    new_code_cell(SETUP),
    new_code_cell('''from distill import PRESETS, Workload
from search import DEFAULT_SPACE

TARGETS = ["tpu-v4", "tpu-v5e", "tpu-v6e"]
WL_TEXT = "1,32,bfloat16" if SMALL else "8,128,bfloat16"
WL = Workload.parse(WL_TEXT)
names = ["bert-tiny"] if SMALL else ["bert-tiny", "bert-mini", "bert-small", "minilm-l6-h384"]
students = {n: PRESETS[n] for n in names}
if not SMALL:      # two students of the search space, as a search would meet them
    for i, cfg in enumerate(DEFAULT_SPACE.sample_configs(2, seed=3)):
        students[f"sampled-{i}"] = cfg.replace(vocab_size=PRESETS["bert-mini"].vocab_size)
for n, c in students.items():
    print(f"{n:15s} {c.num_layers} layers, hidden {c.hidden_size}, "
          f"{c.num_heads} heads, FFN {c.ffn_size}")'''),
    new_markdown_cell("""## 1 · Compile for three TPU generations, predict analytically

Each student's 1-, 2- and 3-layer programs are compiled ahead of time per target (an L-layer
program's ops are the 2-layer ones plus L - 2 middle layers); op lists are cached on disk, so a
second run is instant."""),
    new_code_cell('''import time

from perfmodel import Predictor
from perfmodel.opcache import OpListCache

cache = OpListCache.default()      # the CLI below finds these op lists too ($HWDISTILL_CACHE)
rows = []
for target in TARGETS:
    pred = Predictor(target, None, cache=cache)
    for name, cfg in students.items():
        t0 = time.perf_counter()
        p = pred.predict(cfg, WL)
        rows.append((name, target, p.roofline_ms, p.xla_estimated_cycles, p.n_ops,
                     time.perf_counter() - t0))
print(f"at {WL_TEXT}; roofline = sum over ops of max(flops / peak, bytes / bandwidth)")
print(f"{'student':15s} {'target':8s} {'roofline ms':>12s} {'XLA cycles':>12s} {'ops':>5s} "
      f"{'compile+predict s':>18s}")
for r in rows:
    print(f"{r[0]:15s} {r[1]:8s} {r[2]:12.4f} {r[3]:12.0f} {r[4]:5.0f} {r[5]:18.1f}")'''),
    new_code_cell('''import matplotlib.pyplot as plt
import numpy as np

fig, ax = plt.subplots(figsize=(7, 3.2))
w = 0.8 / len(TARGETS)
for j, target in enumerate(TARGETS):
    ys = [r[2] for r in rows if r[1] == target]
    ax.bar(np.arange(len(students)) + j * w, ys, w, label=target)
ax.set_xticks(np.arange(len(students)) + w * (len(TARGETS) - 1) / 2, list(students),
              rotation=20, fontsize=8)
ax.set_yscale("log")
ax.set_ylabel(f"roofline latency, ms ({WL_TEXT})")
ax.set_title("predicted ahead of time, uncalibrated", fontsize=9)
ax.legend(fontsize=8)
fig.tight_layout()'''),
    new_markdown_cell("""## 2 · Calibrate with a real TPU capture

What a TPU user runs, as shell commands: predict (uncalibrated, no model yet), import the
capture, fit the model of that TPU, predict again."""),
    new_code_cell('''import re
import subprocess
import sys

import perfmodel

CAPTURE = Path(os.environ.get("HWDISTILL_TPU_CAPTURE") or Path(perfmodel.__file__).resolve()
               .parents[1] / "tests" / "fixtures" / "tpu_inference_2.xplane.pb")
STORE = str(WORK / "nb03.db")
os.environ.setdefault("HWDISTILL_MODELS", str(WORK / "models"))


def hwdistill(*args):
    """Run the CLI as a user would; show its output (without XProf's C++ log lines)."""
    print("$ hwdistill", " ".join(args))
    r = subprocess.run([sys.executable, "-m", "hwdistill", *args], capture_output=True,
                       text=True)
    err = [ln for ln in r.stderr.splitlines()
           if ln.strip() and not re.match(r"[IWEF]\\d{4} ", ln)]     # glog lines
    print(r.stdout.rstrip())
    if err:
        print("\\n".join(err[-12:]))
    if r.returncode:
        raise RuntimeError(f"hwdistill {args[0]} failed ({r.returncode})")


hwdistill("predict", "--target", "tpu-v6e", "--arch", names[-1], "--workload", WL_TEXT)'''),
    new_code_cell('''hwdistill("store", "--store", STORE, "import", str(CAPTURE))
hwdistill("fit", "--target", "tpu-v6e", "--store", STORE)'''),
    new_code_cell('''hwdistill("predict", "--target", "tpu-v6e", "--arch", names[-1], "--workload", WL_TEXT)'''),
    new_markdown_cell("""## What "calibrated" means here, honestly

The prediction now comes from a model fitted on real TPU v6e op timings, not from a spec sheet.
But this public capture is a host-offload stress test (multi-GB host copies, add fusions, an
all-reduce), not a transformer: `fit` lists the op kinds it trained on, and `predict` counts the
student's ops of kinds the model never saw (`unseen_ops`, every matmul fusion among them), whose
times are extrapolated. Calibrated is a statement about provenance, not accuracy. A capture of
transformer-like programs on your TPU (`jax.profiler.trace` around a few students, or
`hwdistill profile --target local` on the TPU VM) makes the same three commands meaningful for
students. How well the analytic op costing itself ranks real TPU op times is measured in
`benchmarks/tpu_capture.py` (results in `benchmarks/results/tpu_capture.json`)."""),
])

NOTEBOOKS = {"01": (nb1, "01_profile_predict_validate.ipynb"),
             "02": (nb2, "02_search_and_distill.ipynb"),
             "03": (nb3, "03_tpu_ahead_of_time.ipynb")}

if __name__ == "__main__":
    wanted = sys.argv[1:] or list(NOTEBOOKS)
    for key in wanted:
        nb, name = NOTEBOOKS[key]
        nbf.write(nb, Path(__file__).parent / name)
        print("wrote", name)

