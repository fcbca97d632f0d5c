"""Placement and consolidation policies: pure functions of state snapshots, no SimPy."""
