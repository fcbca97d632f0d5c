"""Capacity search: the smallest value of a monotone integer field (by default the first host group's count)
for which a run meets a target such as `sla_unserved_fraction<=0.01`, by bisection over real runs."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

from consolidate import api
from consolidate.errors import PlacementError, Problem, ScenarioError
from consolidate.scenario.loader import read_mapping, set_path
from consolidate.sweep.expand import derived_seed

_OPS = {"<=": lambda a, b: a <= b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b, ">": lambda a, b: a > b}
_TARGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Trial:
    """One value tried: the metric of its worst seed (NaN: the VMs did not fit), whether every seed met the
    target, and each seed's metric (one with no repeats)."""

    value: int
    metric: float
    ok: bool
    per_seed: tuple[float, ...] = ()


def parse_target(text: str) -> tuple[str, str, float]:
    """'sla_unserved_fraction<=0.01' -> ('sla_unserved_fraction', '<=', 0.01); ValueError otherwise."""
    m = _TARGET.match(text)
    if not m:
        raise ValueError(f"cannot read the target (got {text!r}, expected METRIC<=VALUE, <, >= or >, e.g. "
                         "'sla_unserved_fraction<=0.01')")
    return m.group(1), m.group(2), float(m.group(3))


def _get(data: dict, dotted: str):
    node = data
    for part in dotted.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


GROWTH = 64  # default ceiling: the scenario's own value times this (six doublings)


def ceiling(start: int, low: int, high: int | None) -> int:
    """The largest value a search tries unless told otherwise: GROWTH times the larger of the scenario's value,
    --low and --high."""
    return max(start, low, high or 0, 1) * GROWTH


def plan(scenario: str | Path, target: str, vary: str = "hosts.0.count", low: int = 1, high: int | None = None,
         max_value: int | None = None, on_trial=None, repeats: int = 1) -> tuple[int | None, list[Trial]]:
    """Smallest value of `vary` in [low, max_value] whose run meets `target`, assuming more of it never hurts.
    Returns (value, or None when even max_value misses: the target is unreachable, the trials made in order).
    `max_value` defaults to `ceiling(...)`; every run is checked against the memory it would need first.
    With `repeats` > 1 each value runs with that many seeds derived from the scenario's (as a sweep's repeats
    are) and meets the target only if every seed does: random failures make the answer a distribution."""
    try:
        metric, op, bound = parse_target(target)
    except ValueError as exc:
        raise ScenarioError([Problem("--target", "", str(exc))]) from None
    if high is not None and high < low:
        raise ScenarioError([Problem("--high", "", f"below --low (got --low {low} and --high {high}, expected "
                                     "--low <= --high)")])
    data, base = read_mapping(scenario)
    try:
        start = int(_get(data, vary))
    except (KeyError, IndexError, ValueError, TypeError):
        raise ScenarioError([Problem(str(scenario), vary, "cannot vary this field (expected a path to an "
                                     "integer, e.g. hosts.0.count)")]) from None
    max_value = max_value if max_value is not None else ceiling(start, low, high)
    if max_value < low or (high is not None and high > max_value):
        raise ScenarioError([Problem("--max", "", f"below the range searched (got {max_value}, expected at least "
                                     f"--low {low}{f' and --high {high}' if high is not None else ''})")])
    trials: list[Trial] = []
    seen: dict[int, bool] = {}

    seed = int(data.get("seed", 0))
    seeds = [seed] if repeats <= 1 else [derived_seed(seed, r) for r in range(repeats)]
    worst = min if op in (">=", ">") else max  # the seed furthest from meeting the target

    def ok(value: int) -> bool:
        if value in seen:
            return seen[value]
        per_seed = []
        for s_ in seeds:
            d = copy.deepcopy(data)
            set_path(d, vary, value)
            d["seed"] = s_
            try:
                res = api.run(api.load_scenario(d, base_dir=base))
            except PlacementError:  # too little capacity for the VMs to even start: the target is missed
                per_seed = [float("nan")]
                break
            s = res.summary.iloc[0]
            if metric not in s.index:
                raise ScenarioError([Problem("--target", "", f"unknown metric (got {metric!r}, expected a summary "
                                             f"column: {', '.join(s.index)})")])
            per_seed.append(float(s[metric]))
        if any(m != m for m in per_seed):
            t = Trial(value, float("nan"), False, tuple(per_seed))
        else:
            t = Trial(value, worst(per_seed), all(_OPS[op](m, bound) for m in per_seed), tuple(per_seed))
        trials.append(t)
        seen[value] = t.ok
        if on_trial is not None:
            on_trial(t)
        return t.ok

    hi = min(high if high is not None else max(start, low, 1), max_value)
    while not ok(hi):
        if hi >= max_value:
            return None, trials
        hi = min(max_value, hi * 2)
    lo = low
    if ok(lo):
        return lo, trials
    while hi - lo > 1:  # invariant: lo fails, hi meets the target
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi, trials
