"""Record a latency_predictor run's held-out measurements in its machine's profile store
(latency records tagged ``validate``), for runs made before the benchmark recorded them itself.
Later fits and runs calibrate their 90% intervals on them (:mod:`perfmodel.heldout_intervals`).

    python benchmarks/record_validation.py benchmarks/results/latency_predictor.json

Each record keeps the run's date, its rounds and its uncorrected latency, and names the results
file it came from; a program the store already holds a validation of keeps that one.
"""

from __future__ import annotations

import argparse
import calendar
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import profile_store  # noqa: E402


def records_of(results: dict, source: str, run_id: str):
    """The run's per-program measurements as validation records of its machine."""
    from distill import StudentConfig, Workload
    from perfmodel.heldout_intervals import validation_record
    fp_id = results["machine"]["fingerprint"]
    when = calendar.timegm(time.strptime(results["machine"]["date"], "%Y-%m-%dT%H:%M:%SZ"))
    corrected = results["measurement"]["drift_corrected"]
    return [validation_record(
        fp_id, StudentConfig.from_dict(p["arch"]), Workload.parse(p["workload"]),
        p["measured_ms"], p["rounds_ms"], run_id, created_at=when,
        uncorrected_ms=p.get("uncorrected_ms"), drift_corrected=corrected, source=source)
        for p in results["per_program"]]


def main(argv=None):
    from measurements import Store
    from measurements.errors import InputError
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a latency_predictor results JSON")
    ap.add_argument("--store", help="profile store (default: that machine's under store/)")
    args = ap.parse_args(argv)
    path = Path(args.results)
    try:
        results = json.loads(path.read_text())
        fp_id = results["machine"]["fingerprint"]
        programs = results["per_program"]
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise SystemExit(f"{path}: not a latency_predictor results file ({e!r}); expected "
                         "benchmarks/results/latency_predictor.json or a copy of it")
    store_path = Path(args.store) if args.store else profile_store(fp_id)
    with Store(store_path) as store:
        if fp_id not in {fp.id for fp in store.fingerprints()}:
            raise InputError(f"{store_path} holds no machine {fp_id} (the run's): record it in "
                             "that machine's profile store (--store)")
        run_id = f"validate-recorded-{results['machine']['date']}"
        new = [r for r in records_of(results, str(path), run_id)
               if not store.has("latencies", r.key)]
        if new:
            store.start_run("validate", fingerprint_id=fp_id, run_id=run_id,
                            args={"recorded_from": str(path), "command": results.get("command")})
            store.put_latencies(new)
            store.finish_run(run_id)
        n = len(new)
    print(f"{n} of {len(programs)} validation measurements of {fp_id} "
          f"({results['machine']['date']}) recorded in {store_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
