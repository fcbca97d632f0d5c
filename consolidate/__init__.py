"""consolidate: a discrete-event datacenter consolidation simulator that knows what virtualization costs."""
from consolidate.api import load_scenario, run, schema, validate, version, write
from consolidate.errors import ConsolidateError, PlacementError, ScenarioError
from consolidate.results.frames import Results

__all__ = ["load_scenario", "run", "schema", "validate", "version", "write", "Results", "ConsolidateError",
           "ScenarioError", "PlacementError"]
