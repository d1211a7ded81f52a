"""Run every benchmark in sequence (what `make bench` runs). Each writes its JSON (and PNG)
to benchmarks/results/. The latency benchmark needs a profiled store: it is created first with
`hwdistill profile` if missing (resumable)."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(HERE))
from common import profile_store  # noqa: E402

from measurements import detect  # noqa: E402

STORE = profile_store(detect("cpu").id)      # this machine's (created by the profile below)


def run(*cmd):
    print("$", " ".join(map(str, cmd)), flush=True)
    subprocess.run([sys.executable, *map(str, cmd)], check=True, cwd=ROOT)


run("-m", "hwdistill", "profile", "--archs", "80", "--seed", "0", "--preset", "bert-mini",
    "--preset", "bert-tiny", "--preset", "minilm-l6-h384", "--preset", "mobilebert-tiny",
    "--store", STORE)
run(HERE / "latency_predictor.py", "--store", STORE, "--archs", "50")
run(HERE / "interval_coverage.py")
run(HERE / "tpu_agreement.py", "--archs", "10")
run(HERE / "teacher_parity.py")
run(HERE / "throughput.py")
run(HERE / "distill_student.py", "--minutes", "30")
run(HERE / "search_synthetic.py")          # resumable: cached runs are reused
run(HERE / "search_proposal_time.py", "--rounds", "3")
