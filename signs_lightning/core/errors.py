"""Errors as the ``signs`` command reports them: the underlying cause in one line, the traceback only on request."""

from __future__ import annotations

import os
import traceback
from pathlib import Path

DEBUG_ENV = "SIGNS_DEBUG"


class SignsError(Exception):
    """An error whose message says all a user needs (what, where, what to do): ``signs`` prints it in one line."""


def debugging() -> bool:
    """Whether ``$SIGNS_DEBUG`` asks for full tracebacks instead of one-line reports."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type name when the message is empty)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def underlying(error: BaseException) -> BaseException:
    """``error`` without jsonargparse's wrappers.

    An exception raised while LightningCLI builds the model or data is re-raised by jsonargparse as "Does not
    validate against any of the Union subtypes", with the original as its ``__cause__``.
    """
    while error.__cause__ is not None and _raised_in_jsonargparse(error):
        error = error.__cause__
    return error


def one_line(error: BaseException) -> str:
    """``error``'s message with its line breaks folded into spaces."""
    return " ".join(str(error).split()) or type(error).__name__


def _raised_in_jsonargparse(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and "jsonargparse" in Path(frames[-1].filename).parts
