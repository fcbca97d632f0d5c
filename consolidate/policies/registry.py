"""The policy registry: overload detectors, VM selectors and placements by name, with their parameter, its
valid range and a one-line doc. Scenario validation, `--policy`, `consolidate catalog policies`, the JSON
Schema and docs/policies.md all read it, so a policy registered here is usable and documented everywhere.

A policy registers itself where it is defined, with a decorator:

    @selector("maxmem", "maximum memory: the VM with the most RAM")
    def max_memory(candidates, ram_mb, demand_mips, history_mips, rng) -> int:
        return int(candidates[np.argmax(ram_mb[candidates])])

The built-in ones live in overload.py, selection.py and placement.py; importing the package registers them.
This module imports none of them (they import it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from consolidate.scenario.model import Scenario

# (param, util (H,), history (H, L) or None, migration_intervals (H,)) -> overloaded (H,) bool
DetectFn = Callable[[float, np.ndarray, "np.ndarray | None", np.ndarray], np.ndarray]
# (candidates, ram_mb, demand_mips, history_mips (L, V), rng) -> VM index (one of candidates)
SelectFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.random.Generator], int]
# (candidates, need_mips, cpu_used_mips, host_cpu_limit_mips, host_capacity_mips, curves_w, host_type)
#   -> position in candidates of the chosen host
ChooseFn = Callable[..., int]


class PolicyError(ValueError):
    """A policy string or name the registry does not accept; the message says got/expected."""


@dataclass(frozen=True)
class Param:
    """A policy's one numeric parameter: valid when low < value <= high (and finite)."""

    name: str
    meaning: str  # unit or meaning, one phrase
    low: float  # exclusive
    high: float = math.inf  # inclusive
    example: float = 1.0  # the literature's default, shown in help and docs

    @property
    def range_text(self) -> str:
        if math.isinf(self.high):
            return f"{self.name} > {self.low:g}"
        return f"{self.low:g} < {self.name} <= {self.high:g}"

    def valid(self, value: float) -> bool:
        """NaN and infinity never are."""
        return math.isfinite(value) and self.low < value <= self.high


@dataclass(frozen=True)
class DetectorEntry:
    name: str
    fn: DetectFn
    doc: str
    param: Param
    reads_history: bool  # False lets a round skip building per-host utilisation histories
    static_threshold: bool  # overloaded exactly when util > param: PABFD tests that inline
    cloudsim: DetectFn | None = None  # CloudSim 3.0.3's arithmetic, where it differs (run under cloudsim_compat)


@dataclass(frozen=True)
class Selector:
    name: str
    fn: SelectFn
    doc: str
    # CloudSim 3.0.3's rule, where it differs (run under cloudsim_compat); it gets demand as a fraction of each
    # VM's own MIPS instead of MIPS
    cloudsim: SelectFn | None = None
    reads_history: bool = True  # False lets a run skip keeping the VMs' demand history for it

    def pick(self, compat: bool) -> SelectFn:
        """The function a round calls: CloudSim's variant under cloudsim_compat when there is one."""
        return self.cloudsim if compat and self.cloudsim is not None else self.fn


@dataclass(frozen=True)
class Placement:
    name: str
    fn: ChooseFn
    doc: str
    aliases: tuple[str, ...]
    decreasing: bool  # VMs largest first (else in the order given)
    needs_power: bool  # needs host_capacity_mips, curves_w and host_type


DETECTORS: dict[str, DetectorEntry] = {}
SELECTORS: dict[str, Selector] = {}
PLACEMENTS: dict[str, Placement] = {}


def _check_name(name: str, taken: dict, hyphen_ok: bool = False) -> None:
    if not name or (not hyphen_ok and "-" in name) or name == "none":
        raise ValueError(f"bad policy name (got {name!r}, expected a name other than 'none'; names of detectors and "
                         "selectors may not contain '-')")
    if name in taken:
        raise ValueError(f"policy {name!r} is already registered")


def detector(name: str, doc: str, param: Param, *, reads_history: bool = True,
             static_threshold: bool = False, cloudsim: DetectFn | None = None) -> Callable[[DetectFn], DetectFn]:
    """Register an overload detector fn(param, util, history, migration_intervals) -> overloaded hosts (bool).
    util is CPU utilisation (fraction of capacity) per host; history (hosts, L) its past values, most recent
    last (None when reads_history is False); migration_intervals the host's longest migration in intervals.
    cloudsim: the same detector as CloudSim 3.0.3 computes it, when that differs (same signature)."""
    def register(fn: DetectFn) -> DetectFn:
        _check_name(name, DETECTORS)
        DETECTORS[name] = DetectorEntry(name, fn, doc, param, reads_history, static_threshold, cloudsim)
        return fn
    return register


def selector(name: str, doc: str, *, cloudsim: SelectFn | None = None,
             reads_history: bool = True) -> Callable[[SelectFn], SelectFn]:
    """Register a VM selector fn(candidates, ram_mb, demand_mips, history_mips, rng) -> the VM index to move.
    candidates are VM indices (non-empty); ram_mb (MB) and demand_mips (MIPS) are per VM; history_mips is
    (L, VMs) past demand, most recent last, NaN before a VM existed (no rows when neither the selector nor the
    detector reads it: reads_history=False); rng the run's seeded policy stream.
    cloudsim: CloudSim 3.0.3's rule when it differs, called with demand as a fraction of each VM's MIPS."""
    def register(fn: SelectFn) -> SelectFn:
        _check_name(name, SELECTORS)
        SELECTORS[name] = Selector(name, fn, doc, cloudsim, reads_history)
        return fn
    return register


def placement(name: str, doc: str, *, aliases: tuple[str, ...] = (), decreasing: bool = True,
              needs_power: bool = False) -> Callable[[ChooseFn], ChooseFn]:
    """Register an initial placement by its per-VM choice fn(candidates, need_mips, cpu_used_mips,
    host_cpu_limit_mips, host_capacity_mips, curves_w, host_type) -> position in candidates (the hosts the VM
    fits, ascending). need_mips is the VM's CPU size (MIPS; one per candidate when sizes depend on the host
    type); the host arrays cover all hosts."""
    def register(fn: ChooseFn) -> ChooseFn:
        for n in (name, *aliases):
            _check_name(n, {**PLACEMENTS, **_placement_aliases()}, hyphen_ok=True)
        PLACEMENTS[name] = Placement(name, fn, doc, tuple(aliases), decreasing, needs_power)
        return fn
    return register


def _placement_aliases() -> dict[str, str]:
    return {a: p.name for p in PLACEMENTS.values() for a in p.aliases}


@dataclass(frozen=True)
class Detector:
    """A registered detector with its parameter: what a consolidation round asks 'which hosts are overloaded?'."""

    entry: DetectorEntry
    param: float
    compat: bool = False  # cloudsim_compat: run the entry's CloudSim 3.0.3 arithmetic where it has one

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def reads_history(self) -> bool:
        return self.entry.reads_history

    @property
    def static_threshold(self) -> float | None:
        """The utilisation fraction above which a host is overloaded, for detectors that are a fixed threshold."""
        return self.param if self.entry.static_threshold else None

    def overloaded(self, util: np.ndarray, history: np.ndarray | None, migration_intervals: np.ndarray) -> np.ndarray:
        """Overloaded hosts: util (hosts,) CPU utilisation now, history (hosts, L) most recent last,
        migration_intervals (hosts,) the longest migration of each host's VMs in scheduling intervals."""
        if history is None and self.entry.reads_history:
            history = np.zeros((len(util), 0))
        fn = self.entry.cloudsim if self.compat and self.entry.cloudsim is not None else self.entry.fn
        return fn(self.param, util, history, migration_intervals)


@dataclass(frozen=True)
class Policy:
    """A consolidation policy: detector with its parameter, and selector."""

    text: str
    detector: Detector
    selector: Selector
    compat: bool = False  # cloudsim_compat: CloudSim 3.0.3's arithmetic for the detector and the selector


def make_detector(name: str, param: float) -> Detector:
    """The registered detector `name` with its parameter; raises PolicyError when unknown or out of range."""
    if name not in DETECTORS:
        raise PolicyError(f"unknown overload detector (got {name!r}, expected one of: {', '.join(DETECTORS)})")
    p = DETECTORS[name].param
    if not p.valid(param):
        raise PolicyError(f"policy parameter out of range (got {param:g} for {name}, expected {p.range_text}, "
                          f"{p.meaning})")
    return Detector(DETECTORS[name], param)


def policy_syntax() -> str:
    """What a consolidation policy string looks like, naming every registered detector and selector."""
    first = next(iter(SELECTORS), "?")
    examples = ", ".join(f"{d.name}-{first}-{d.param.example:g}" for d in DETECTORS.values())
    return (f"'<detector>-<selector>-<parameter>' with detector one of {', '.join(DETECTORS)} and selector one of "
            f"{', '.join(SELECTORS)}, e.g. {examples}, or none")


def parse_policy(text: str) -> Policy | None:
    """'thr-mmt-0.8' -> that Policy; 'none' -> None. Raises PolicyError saying what was expected."""
    if text == "none":
        return None
    parts = text.split("-", 2)
    if len(parts) != 3 or parts[0] not in DETECTORS or parts[1] not in SELECTORS:
        unknown = ""
        if len(parts) == 3:
            unknown = (f": no detector {parts[0]!r}" if parts[0] not in DETECTORS else f": no selector {parts[1]!r}")
        raise PolicyError(f"unknown consolidation policy (got {text!r}{unknown}; expected {policy_syntax()})")
    try:
        param = float(parts[2])
    except ValueError:
        raise PolicyError(f"policy parameter is not a number (got {parts[2]!r}, expected {policy_syntax()})") from None
    return Policy(text, make_detector(parts[0], param), SELECTORS[parts[1]])


def consolidation_policy(sc: Scenario) -> Policy | None:
    """The scenario's consolidation policy from the registry; None when consolidation is off (no section, or
    policy none), with CloudSim 3.0.3's arithmetic under cloudsim_compat. The scenario was validated, so the
    policy parses."""
    p = parse_policy(sc.consolidation.policy) if sc.consolidation is not None else None
    if p is None or not sc.cloudsim_compat:
        return p
    return Policy(p.text, Detector(p.detector.entry, p.detector.param, compat=True), p.selector, compat=True)


def placement_names(aliases: bool = False) -> list[str]:
    """Registered placement names (and their aliases after them)."""
    return [*PLACEMENTS, *(_placement_aliases() if aliases else ())]


def get_placement(name: str) -> Placement:
    """The placement registered as `name` or with `name` as an alias; raises PolicyError listing them."""
    if name in PLACEMENTS:
        return PLACEMENTS[name]
    alias = _placement_aliases().get(name)
    if alias is None:
        listed = ", ".join(f"{p.name} ({', '.join(p.aliases)})" if p.aliases else p.name for p in PLACEMENTS.values())
        raise PolicyError(f"unknown placement policy (got {name!r}, expected one of: {listed})")
    return PLACEMENTS[alias]


def policies_markdown() -> str:
    """docs/policies.md: every registered policy with its parameter and doc. Regenerate with
    python -c 'from consolidate.policies.registry import policies_markdown as m; print(m(), end="")' > docs/policies.md
    """
    lines = ["# Policies", "", "Generated from the policy registry (`consolidate/policies/registry.py`) by",
             "`policies_markdown()`; `consolidate catalog policies` prints the same. To add one, see",
             "[adding-a-policy.md](adding-a-policy.md).", "",
             "A consolidation policy (`consolidation.policy`, `consolidate run --policy`) is",
             "`<detector>-<selector>-<parameter>`, e.g. `thr-mmt-0.8`, or `none`; the parameter belongs to the",
             "detector. The study values are Beloglazov & Buyya 2012's.", "", "## Overload detectors", "",
             "| name | parameter | valid range | study value | reads history | description |",
             "|---|---|---|---|---|---|"]
    lines += [f"| `{d.name}` | {d.param.meaning} | {d.param.range_text} | {d.param.example:g} | "
              f"{'yes' if d.reads_history else 'no'} | {d.doc} |" for d in DETECTORS.values()]
    lines += ["", "## VM selectors", "", "| name | description |", "|---|---|"]
    lines += [f"| `{s.name}` | {s.doc} |" for s in SELECTORS.values()]
    lines += ["", "## Initial placements (`placement.policy`)", "", "| name | aliases | description |", "|---|---|---|"]
    lines += [f"| `{p.name}` | {', '.join(f'`{a}`' for a in p.aliases)} | {p.doc} |" for p in PLACEMENTS.values()]
    return "\n".join(lines) + "\n"
