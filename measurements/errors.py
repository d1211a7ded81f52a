"""The one root of the errors hwdistill raises for bad input or bad state.

Every error a user can cause (an invalid architecture or search space, an unknown hardware
name, a missing or damaged file, a store from other hardware) is a :class:`HwdistillError`, and
also the builtin it replaces (``ValueError``, ``FileNotFoundError``, ``RuntimeError``), so
``except ValueError`` keeps working. The command line prints these in one line; anything else
is a bug and shows its traceback.

It lives here, in a module that imports nothing, because ``measurements`` and ``distill`` are
the two bottom layers and both raise user errors; importing it does not load the store or any
ML library.
"""

__all__ = ["HwdistillError", "InputError", "MissingError", "StateError"]


class HwdistillError(Exception):
    """Root of every user-facing hwdistill error: the message names the value and the fix."""


class InputError(HwdistillError, ValueError):
    """A value given to hwdistill is invalid."""


class MissingError(HwdistillError, FileNotFoundError):
    """A file, folder, run or record that was pointed to does not exist."""


class StateError(HwdistillError, RuntimeError):
    """What is on disk, in the store or on this machine does not allow the operation."""
