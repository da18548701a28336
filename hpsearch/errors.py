"""Exceptions that the CLI turns into one-line messages and exit codes."""

from __future__ import annotations


class HPSearchError(Exception):
    """Base class of hpsearch's own errors."""

    exit_code = 1


class ConfigError(HPSearchError):
    """A study file, override or parameter is invalid (exit code 2)."""

    exit_code = 2


class StorageError(HPSearchError):
    """The storage URL is malformed or the database cannot be reached (exit code 2)."""

    exit_code = 2


class DatabaseFailure(HPSearchError):
    """The study database failed at run time for a reason that waiting does not fix (disk full,
    read-only, I/O error, the SQLite file removed), or stayed unreachable for the whole retry
    window (exit code 1)."""

    exit_code = 1


class StudyNotFoundError(HPSearchError):
    """The named study does not exist in the database (exit code 2)."""

    exit_code = 2


class NonFiniteLossError(HPSearchError):
    """Raised inside a trial when the training loss becomes NaN or infinite."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_exception(exc: BaseException) -> str:
    """One line ``Type: message`` for storing as a trial's failure reason."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
