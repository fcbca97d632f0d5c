"""Scenario files: pydantic models (schema v1) and the loader that reports every error at once."""
from consolidate.scenario.model import Scenario
from consolidate.scenario.loader import load_scenario, default_scenario_path

__all__ = ["Scenario", "load_scenario", "default_scenario_path"]
