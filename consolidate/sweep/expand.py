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
from consolidate.errors import Problem, ScenarioError
from consolidate.scenario.loader import set_path
from consolidate.scenario.sweepspec import MAX_RUNS, SweepPlot, SweepSpec  # noqa: F401  (re-exported)

SWEEP_STREAM = 3  # spawn key for repeat seeds, apart from the run's own streams (consolidate.rng)


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
    n_runs = spec.repeats * max(len(next(iter(spec.zip.values()))), 1) if spec.zip else spec.repeats
    for v in spec.grid.values():
        n_runs *= max(len(v), 1)
    if n_runs > MAX_RUNS:  # counted before expanding: 10^8 combinations must not be built to be refused
        problems.append(Problem(file, "sweep", f"too many runs (got {n_runs:,}: grid x zip x repeats, expected at "
                                f"most {MAX_RUNS:,}; split the sweep or vary fewer values)"))
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
