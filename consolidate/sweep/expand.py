"""Expand a scenario's `sweep:` block into concrete runs.

    sweep:
      grid: {consolidation.policy: [thr-mmt-0.8, mad-mmt-2.5], hosts.0.count: [400, 600]}   # every combination
      zip: {vms.0.count: [100, 200], hosts.0.count: [10, 20]}                              # varied together
      repeats: 3                                                                            # derived seeds

Runs = grid product x zipped rows x repeats. Repeat r runs with a seed derived from the scenario's seed
(numpy SeedSequence spawn key), distinct across repeats and the same every time.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from consolidate.errors import Problem, ScenarioError
from consolidate.scenario.loader import set_path
from consolidate.scenario.model import Model

SWEEP_STREAM = 3  # spawn key for repeat seeds, apart from the run's own streams (consolidate.rng)


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
    repeats: int = Field(default=1, ge=1, description="runs per combination, each with a derived seed")
    workers: int | None = Field(default=None, ge=1, description="local processes (default: CPU count)")
    scheduler: str | None = Field(default=None, description="Dask scheduler address to run on instead")
    plots: list[SweepPlot] = Field(default_factory=list, description="line charts for the report page")


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: the values it sets and the scenario mapping they produce."""

    index: int
    key: str  # stable hash of the values: names the run's folder, so a resumed sweep finds it
    values: dict[str, Any]
    data: dict


def derived_seed(seed: int, repeat: int) -> int:
    """Seed of repeat `repeat` of a scenario whose seed is `seed`."""
    return int(np.random.SeedSequence(entropy=seed, spawn_key=(SWEEP_STREAM, repeat)).generate_state(1)[0])


def run_key(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


def expand(data: dict, spec: SweepSpec, file: str = "<dict>") -> list[RunSpec]:
    """The runs of a sweep over `data` (a scenario mapping without its sweep block)."""
    problems = []
    lengths = {len(v) for v in spec.zip.values()}
    if len(lengths) > 1:
        problems.append(Problem(file, "sweep.zip", f"zipped lists differ in length (got "
                                f"{', '.join(f'{k}: {len(v)}' for k, v in spec.zip.items())}, expected equal lengths)"))
    for part in ("grid", "zip"):
        for k, v in getattr(spec, part).items():
            if not v:
                problems.append(Problem(file, f"sweep.{part}.{k}", "no values (got an empty list, expected one or more)"))
    swept = set(spec.grid) | set(spec.zip)
    for i, p in enumerate(spec.plots):
        for name in ("x", "series"):
            v = getattr(p, name)
            if v is not None and v not in swept:
                problems.append(Problem(file, f"sweep.plots.{i}.{name}", f"not a swept field (got {v!r}, expected one "
                                        f"of: {', '.join(sorted(swept)) or 'none: the sweep varies nothing'})"))
    if problems:
        raise ScenarioError(problems)
    grid_keys = list(spec.grid)
    grid_rows = [dict(zip(grid_keys, combo)) for combo in itertools.product(*spec.grid.values())] or [{}]
    n_zip = lengths.pop() if lengths else 0
    zip_rows = [{k: v[i] for k, v in spec.zip.items()} for i in range(n_zip)] or [{}]
    base_seed = int(data.get("seed", 0))
    runs = []
    for g in grid_rows:
        for z in zip_rows:
            for r in range(spec.repeats):
                values = {**g, **z}
                if spec.repeats > 1:
                    values["repeat"] = r
                    values["seed"] = derived_seed(int(values.get("seed", base_seed)), r)
                run = copy.deepcopy(data)
                for path, value in values.items():
                    if path == "repeat":
                        continue
                    try:
                        set_path(run, path, value)
                    except KeyError as exc:
                        raise ScenarioError([Problem(file, f"sweep.{path}", exc.args[0])]) from None
                runs.append(RunSpec(index=len(runs), key=run_key(values), values=values, data=run))
    return runs
