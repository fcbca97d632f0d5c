"""Errors a user can act on: each names the file, the field path and what was expected.

The CLI prints them one per line and exits with code 2; nothing here is a programming error.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Exit codes of the command line (README "Exit codes"): every command uses these four.
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

# a message longer than this is cut: an error must never echo a gigabyte of someone's input back
MAX_MESSAGE_CHARS = 400


def short(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters with '...' (for the `got X` part of a message)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def cut(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def not_a_regular_file(path: str | Path) -> str | None:
    """Why `path` cannot be read as an input file (None when it is a regular file): missing, a folder, or a
    device, FIFO or socket (/dev/zero never ends, a FIFO blocks: both must be refused before reading)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder (expected a file)"
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"is {kind}, not a regular file (expected a file)"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, in the form `FILE: field.path: message`."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        message = cut(self.message)
        return f"{self.file}: {self.path}: {message}" if self.path else f"{self.file}: {message}"


class ConsolidateError(Exception):
    """Base of every error meant for the user rather than for a developer."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ScenarioError(ConsolidateError):
    """The scenario (or a file it points to) is invalid; carries every problem found."""


class TraceError(Exception):
    """A trace file is malformed; `row` is the 1-based data row (None for whole-file problems)."""

    def __init__(self, file: str, message: str, row: int | None = None):
        self.file, self.row, self.message = file, row, message
        where = f"{file}: row {row}" if row is not None else file
        super().__init__(f"{where}: {message}")


class PlacementError(ConsolidateError):
    """A VM fits no host and the scenario did not ask for rejections to be recorded."""


class ResourceError(ConsolidateError):
    """A run would need more memory (or disk, or runs) than this machine has; the message names what helps."""


class OutputError(ConsolidateError):
    """The output folder cannot be used (not writable, or holds another run and --force was not given)."""
