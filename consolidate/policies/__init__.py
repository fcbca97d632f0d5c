"""Placement and consolidation policies: pure functions of state snapshots, no SimPy."""
# the built-in detectors, selectors and placements register themselves (registry.py) when their modules load
from consolidate.policies import overload, placement, selection  # noqa: F401
