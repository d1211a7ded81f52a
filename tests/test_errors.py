"""One exception root: user errors are HwdistillErrors (and the builtin they replace), printed
by the CLI in one line; anything else is a bug and keeps its traceback."""

import importlib

import pytest

from measurements.errors import HwdistillError, InputError, MissingError, StateError

NAMED = [("distill.checkpoint", "CheckpointError"), ("measurements.fingerprint",
         "FingerprintMismatchError"), ("measurements.executor", "ExecutorError"),
         ("measurements.store", "StoreError"), ("measurements.store", "StoreSchemaError"),
         ("measurements.store", "TrialStatusError"), ("perfmodel.latency_model", "ModelError"),
         ("perfmodel.trace", "TraceError"), ("perfmodel.aot", "AotUnavailableError"),
         ("perfmodel.hlo", "HloParseError"), ("search.gp", "GPError"),
         ("search.loop", "SearchError"), ("search.domain", "DomainError"),
         ("search.space", "SpaceError")]


@pytest.mark.parametrize("module,name", NAMED)
def test_every_named_error_has_the_one_root(module, name):
    assert issubclass(getattr(importlib.import_module(module), name), HwdistillError)


def test_the_root_errors_are_also_the_builtins():
    assert issubclass(InputError, ValueError) and issubclass(MissingError, FileNotFoundError)
    assert issubclass(StateError, RuntimeError)


def test_invalid_input_raises_the_root():
    from distill import StudentConfig, Workload
    with pytest.raises(HwdistillError, match="num_heads"):
        StudentConfig(num_layers=2, hidden_size=100, num_heads=3, ffn_size=64)
    with pytest.raises(InputError):
        Workload.parse("eight,128")


def test_cli_prints_user_errors_in_one_line_and_lets_bugs_through(monkeypatch, capsys):
    from hwdistill import cli
    from hwdistill.commands import report

    assert cli.main(["report", "run-nothere", "--root", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run-nothere" in err

    def buggy(args):
        return {}["a bug"]
    monkeypatch.setattr(report, "run", buggy)
    with pytest.raises(KeyError):
        cli.main(["report", "x"])
