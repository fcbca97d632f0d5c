"""Errors a user can act on: each names the file, the field path and what was expected.

The CLI prints them one per line and exits with code 2; nothing here is a programming error.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, in the form `FILE: field.path: message`."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}" if self.path else f"{self.file}: {self.message}"


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
