"""The `sweep:` block of a scenario file, as a schema (expanded into runs by consolidate/sweep/expand.py). It lives
with the scenario schema so that the JSON Schema for editors can describe sweep files too."""
from __future__ import annotations

from typing import Any

from pydantic import Field

from consolidate.scenario.model import Model

MAX_RUNS = 10_000  # a day's worth of 10 s runs on a small cluster; more is a typo or needs splitting


class SweepPlot(Model):
    """A line chart per metric on the sweep's report page: `x` a swept field, one line per value of `series`."""

    x: str = Field(description="a swept field (grid or zip) for the horizontal axis")
    xlabel: str | None = Field(default=None, description="axis label (default: the field)")
    series: str | None = Field(default=None, description="a swept field: one line per value")
    metrics: list[str] = Field(min_length=1, description="summary columns, one chart each")
    title: str | None = None


class SweepSpec(Model):
    """The `sweep:` block of a scenario file."""

    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted path -> values, all combinations")
    zip: dict[str, list[Any]] = Field(default_factory=dict, description="dotted path -> values, varied together")
    repeats: int = Field(default=1, ge=1, le=MAX_RUNS, description="runs per combination, each with a derived seed")
    workers: int | None = Field(default=None, ge=1, description="local processes (default: CPU count)")
    scheduler: str | None = Field(default=None, description="Dask scheduler address to run on instead")
    plots: list[SweepPlot] = Field(default_factory=list, description="line charts for the report page")
