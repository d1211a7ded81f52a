"""Describing candidates must not load the ML stack (the search and its workers do it often)."""

import subprocess
import sys


def test_search_and_configs_import_without_jax():
    code = ("import sys, search, distill\n"
            "from distill import StudentConfig, PRESETS\n"
            "cfg = PRESETS['bert-mini'] if isinstance(PRESETS, dict) else None\n"
            "heavy = [m for m in ('jax', 'flax', 'torch', 'transformers') if m in sys.modules]\n"
            "print(','.join(heavy))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"importing search/distill configs loaded {r.stdout.strip()}"


def test_lazy_names_still_resolve():
    import distill

    assert callable(distill.count_params) and distill.count_params.__module__ == "distill.model"
    try:
        distill.no_such_name
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("unknown attribute did not raise")


def test_every_package_exports_its_public_names():
    import importlib
    for pkg in ("distill", "measurements", "perfmodel", "search"):
        mod = importlib.import_module(pkg)
        assert mod.__all__, f"{pkg} exports nothing"
        for name in mod.__all__:
            assert getattr(mod, name) is not None, f"{pkg}.{name}"


def test_perfmodel_and_measurements_import_without_jax():
    code = ("import sys, perfmodel, measurements.errors\n"
            "print(','.join(m for m in ('jax', 'scipy') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "", (r.stdout, r.stderr)
