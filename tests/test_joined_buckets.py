"""The two-table readers park the usage rows per range of VMs and, for a large input, in temporary files
(joined.gather): the grid a run gets must not depend on how many ranges there are, the files must be gone
afterwards, and a reader's Series are made one at a time."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from consolidate.scenario.model import TraceSource
from consolidate.validation import load_scenario
from consolidate.workload import alibaba, azure, joined
from consolidate.workload.build import build_workload

DATA = Path(__file__).parent / "data"


def _scenario(kind: str, path: Path, duration_s: float, gap: str = "hold") -> dict:
    return {"name": "b", "duration_s": duration_s, "interval_s": 300,
            "host_types": [{"name": "big", "cores": 32, "mips_per_core": 2500, "memory_mb": 262144,
                            "power_idle_w": 100, "power_max_w": 350}],
            "hosts": [{"type": "big", "count": 8}],
            "vm_types": [{"name": "one", "vcpus": 1, "mips_per_vcpu": 2500, "memory_mb": 2048}],
            "on_unplaceable": "queue",
            "vms": [{"name": "g", "type": "one", "trace": {kind: str(path), "gap": gap}}]}


@pytest.mark.parametrize("kind,path,duration_s,gap", [("azure", DATA / "azure-v1-small", 172800.0, "hold"),
                                                      ("alibaba2018", DATA / "alibaba2018-small", 7200.0, "zero")])
def test_spilled_ranges_give_the_grid_kept_in_memory(monkeypatch, tmp_path, kind, path, duration_s, gap):
    sc = load_scenario(_scenario(kind, path, duration_s, gap))
    in_memory = build_workload(sc)
    monkeypatch.setattr(joined, "BUCKET_BYTES", 1024)  # the fixtures' few KB now spill into several files
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []
    real = joined.gather

    def spy(*a, **k):
        got = real(*a, **k)
        seen.append((len(got._stores), [p for p in got._stores if isinstance(p, Path)]))
        return got
    monkeypatch.setattr(azure, "gather", spy)
    monkeypatch.setattr(alibaba, "gather", spy)
    spilled = build_workload(sc)
    (n_buckets, files), = seen
    assert n_buckets > 3 and len(files) == n_buckets and any(files)
    assert not any(p.exists() for p in files) and not list(tmp_path.iterdir())  # cleaned up
    assert list(spilled.vms.name) == list(in_memory.vms.name)
    np.testing.assert_array_equal(spilled.cpu_util, in_memory.cpu_util)
    for col in ("start_s", "end_s", "vcpus"):
        np.testing.assert_array_equal(spilled.vms[col], in_memory.vms[col])


def test_series_are_made_one_at_a_time_in_the_tables_order():
    sel, _ = azure.read_series(DATA / "azure-v1-small", TraceSource(azure="x"), None)
    assert len(sel) == 24  # of the table's 25 VMs, one has no reading
    it = iter(sel)
    first = next(it)
    assert first.name and len(first.t_s)
    names = [first.name] + [s.name for s in it]
    assert len(names) == 24 and len(set(names)) == 24
    assert list(iter(sel)) == []  # used once: the rows are handed out and dropped
