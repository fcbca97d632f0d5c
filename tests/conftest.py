"""Shared helpers: tiny hand-checkable scenarios and a CLI runner that keeps stdout and stderr apart."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]

# One ML110 G4 (2 x 1860 MIPS, 4096 MB; SPECpower curve from CloudSim) and one small VM type.
TINY = {
    "name": "tiny",
    "seed": 1,
    "duration_s": 3600,
    "interval_s": 300,
    "hosts": [{"type": "hp-proliant-ml110-g4", "count": 1}],
    "vm_types": [{"name": "small", "vcpus": 1, "mips_per_vcpu": 1860, "memory_mb": 1024}],
    "vms": [{"name": "flat", "count": 1, "type": "small",
             "trace": {"synthetic": {"mean": 0.5, "amplitude": 0.0, "noise_std": 0.0}}}],
}


@pytest.fixture
def tiny() -> dict:
    """A fresh deep copy of the tiny scenario, free to modify."""
    return copy.deepcopy(TINY)


@pytest.fixture
def write_yaml(tmp_path):
    """Write a mapping (or raw text) as a scenario file in tmp_path and return its path."""
    def _write(data, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path
    return _write
