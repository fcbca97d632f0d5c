"""The OpenDC and Bitbrains readers on the real samples (tests/data, MIT, TRACES-PROVENANCE.md) and on small
files in the published layouts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import consolidate
from consolidate.errors import ConsolidateError
from consolidate.scenario.model import TraceSource
from consolidate.validation import load_scenario
from consolidate.workload.build import build_workload
from consolidate.workload.opendc import read_series

DATA = Path(__file__).parent / "data"
OPENDC = DATA / "opendc-bitbrains-small"
RAW = DATA / "bitbrains-raw"


def _scenario(trace: dict, duration_s=86400.0, interval_s=300.0, **group) -> dict:
    return {"name": "r", "duration_s": duration_s, "interval_s": interval_s,
            "host_types": [{"name": "big", "cores": 16, "mips_per_core": 2600, "memory_mb": 262144,
                            "power_idle_w": 100, "power_max_w": 300}],
            "hosts": [{"type": "big", "count": 20}],
            "vm_types": [{"name": "one", "vcpus": 1, "mips_per_vcpu": 2600, "memory_mb": 2048},
                         {"name": "four", "vcpus": 4, "mips_per_vcpu": 2600, "memory_mb": 16384},
                         {"name": "huge", "vcpus": 32, "mips_per_vcpu": 2600, "memory_mb": 131072}],
            "on_unplaceable": "queue", "vms": [{"name": "g", "type": "one", "trace": trace, **group}]}


def test_opendc_current_layout_keeps_the_work_of_every_fragment():
    tasks = pd.read_parquet(OPENDC / "tasks.parquet")
    frags = pd.read_parquet(OPENDC / "fragments.parquet")
    sc = load_scenario(_scenario({"opendc": str(OPENDC), "over_100": "clip"}, duration_s=2592000 + 300,
                                 shape="as-is"))
    wl = build_workload(sc)
    assert len(wl.vms) == 50
    t0 = tasks.submission_time.min() / 1000
    # life from submission time and duration (as the fragments add up), shapes from the task table
    row = tasks.set_index("id").loc[1052]
    v = wl.vms.index[wl.vms.name == "1052"][0]
    assert wl.start_s[v] == pytest.approx(row.submission_time / 1000 - t0)
    assert wl.end_s[v] == pytest.approx(wl.start_s[v] + frags[frags.id == 1052].duration.sum() / 1000)
    assert wl.vms.vcpus[v] == row.cpu_count and wl.vms.memory_mb[v] == pytest.approx(row.mem_capacity / 1024)
    assert wl.vms.mips_per_vcpu[v] == pytest.approx(row.cpu_capacity / row.cpu_count)
    # CPU work per VM: the fragments' MHz x seconds (clipped at the capacity), all of it on the grid
    f = frags.merge(tasks[["id", "cpu_capacity"]], on="id")
    work = (np.minimum(f.cpu_usage, f.cpu_capacity) * f.duration / 1000).groupby(f.id).sum()
    grid = (wl.cpu_util.astype(np.float64) * wl.nominal_mips[None, :]).sum(axis=0) * 300
    np.testing.assert_allclose(grid, work.loc[wl.vms.name.astype(int)].to_numpy(), rtol=1e-5)
    assert wl.clipped == int((f.cpu_usage > f.cpu_capacity * (1 + 1e-9)).sum()) > 0


def test_opendc_older_layout(tmp_path):
    meta = pd.DataFrame({"id": ["a", "b"], "start_time": [1_600_000_000_000, 1_600_000_600_000],
                         "stop_time": [1_600_001_200_000, 1_600_001_200_000], "cpu_count": [2, 1],
                         "cpu_capacity": [4000.0, 2000.0], "mem_capacity": [4_194_304, 1_048_576]})
    trace = pd.DataFrame({"id": ["a", "a", "b", "a", "a"],
                          "timestamp": [1_600_000_300_000, 1_600_000_600_000, 1_600_000_900_000,
                                        1_600_000_900_000, 1_600_001_200_000],
                          "duration": [300_000] * 5, "cpu_count": [2, 2, 1, 2, 2],
                          "cpu_usage": [1000.0, 2000.0, 1500.0, 4000.0, 0.0]})
    meta.to_parquet(tmp_path / "meta.parquet")
    trace.to_parquet(tmp_path / "trace.parquet")
    (a, b) = read_series(tmp_path, TraceSource(opendc="x"), None)
    assert a.name == "a" and a.t_s.tolist() == [1.6e9, 1.6e9 + 300, 1.6e9 + 600, 1.6e9 + 900]
    assert a.util.tolist() == [0.25, 0.5, 1.0, 0.0] and a.memory_mb == 4096 and a.vcpus == 2
    assert b.t_s.tolist() == [1.6e9 + 600] and b.util.tolist() == [0.75]
    res = consolidate.run(_scenario({"opendc": str(tmp_path)}, duration_s=1200, shape="as-is"))
    s = res.summary.iloc[0]
    assert s["vms_arrived"] == 1 and s["cpu_served_mips_h"] == pytest.approx(
        (1000 + 2000 + 4000 + 1500) * 300 / 3600)


def test_opendc_errors_name_file_and_row(tmp_path):
    with pytest.raises(ConsolidateError, match="not an OpenDC workload folder .*tasks.parquet \\+ fragments.parquet"):
        build_workload(load_scenario(_scenario({"opendc": str(tmp_path)})))
    pd.DataFrame({"id": [1], "submission_time": [0], "duration": [600_000], "cpu_count": [1],
                  "cpu_capacity": [1000.0], "mem_capacity": [1024]}).to_parquet(tmp_path / "tasks.parquet")
    pd.DataFrame({"id": [1, 1], "duration": [300_000, -5], "cpu_usage": [1.0, 2.0]}).to_parquet(
        tmp_path / "fragments.parquet")
    with pytest.raises(ConsolidateError, match="fragments.parquet: row 2: duration: missing or negative"):
        build_workload(load_scenario(_scenario({"opendc": str(tmp_path)})))
    (tmp_path / "fragments.parquet").write_bytes(b"\0" * 1000)
    with pytest.raises(ConsolidateError, match="not a Parquet file"):
        build_workload(load_scenario(_scenario({"opendc": str(tmp_path)})))


def test_bitbrains_raw_vm_with_jitter_and_gaps():
    raw = pd.read_csv(RAW / "1.csv", sep=";", skipinitialspace=True)
    raw.columns = [c.strip() for c in raw.columns]
    t = raw["Timestamp [ms]"].to_numpy(float)
    step = np.diff(t)
    assert step.min() < 300 < step.max() and step.max() >= 1500  # the real sample: jitter and gaps
    sc = load_scenario(_scenario({"bitbrains": str(RAW)}, duration_s=7 * 86400, shape="as-is"))
    wl = build_workload(sc)
    assert wl.vms.vcpus[0] == 1 and wl.vms.memory_mb[0] == 2048 and wl.vms.mips_per_vcpu[0] == pytest.approx(2600, 1e-3)
    # hold: each sample lasts to the next one, so the grid's work is the trace's step-weighted work
    keep = t < t[0] + 7 * 86400
    u = raw["CPU usage [%]"].to_numpy(float) / 100
    ends = np.minimum(np.append(t[1:], t[-1] + np.median(step)), t[0] + 7 * 86400)
    expect = float((u * (ends - t))[keep].sum())
    assert float(wl.cpu_util[:, 0].astype(np.float64).sum() * 300) == pytest.approx(expect, rel=1e-5)
    assert "mem_used_bytes" in wl.extra
    # zero: a step longer than gap_s counts nothing beyond one median step
    # (the first gap longer than 600 s comes on day 13.9)
    month = 29 * 86400
    held = build_workload(load_scenario(_scenario({"bitbrains": str(RAW)}, duration_s=month)))
    wl0 = build_workload(load_scenario(_scenario({"bitbrains": str(RAW), "gap": "zero"}, duration_s=month)))
    assert wl0.cpu_util.sum() < held.cpu_util.sum()
    with pytest.raises(ConsolidateError, match=r"1.csv: row 3995: VM '1': gap in the samples"):
        build_workload(load_scenario(_scenario({"bitbrains": str(RAW), "gap": "error"}, duration_s=month)))


def test_bitbrains_materna_timestamps_and_errors(tmp_path):
    head = ("Timestamp;CPU cores;CPU capacity provisioned [MHZ];CPU usage [MHZ];CPU usage [%];"
            "Memory capacity provisioned [KB];Memory usage [KB]\n")
    rows = ["01.11.2015 00:00:00;2;5000;500;10;4194304;1048576", "01.11.2015 00:05:00;2;5000;1000;20;4194304;1048576",
            "01.11.2015 00:10:00;2;5000;2500;50;4194304;2097152"]
    (tmp_path / "vm1.csv").write_text(head.replace("Timestamp", "Timestamp [ms]") + "\n".join(rows) + "\n")
    wl = build_workload(load_scenario(_scenario({"bitbrains": str(tmp_path)}, duration_s=900, shape="nearest")))
    assert wl.vms.vm_type[0] == "four" and wl.cpu_util[:, 0].tolist() == pytest.approx([0.1, 0.2, 0.5])
    (tmp_path / "vm1.csv").write_text(head.replace("Timestamp", "Timestamp [ms]") + rows[0] + "\nyesterday;2;5000;1;1;1;1\n")
    with pytest.raises(ConsolidateError, match=r"vm1.csv: row 2: Timestamp \[ms\]: not a time"):
        build_workload(load_scenario(_scenario({"bitbrains": str(tmp_path)}, duration_s=900)))
    (tmp_path / "vm1.csv").write_text("a;b\n1;2\n")
    with pytest.raises(ConsolidateError, match=r"vm1.csv: column 'Timestamp \[ms\]' is missing"):
        build_workload(load_scenario(_scenario({"bitbrains": str(tmp_path)}, duration_s=900)))


def test_limit_and_seeded_sample():
    full = build_workload(load_scenario(_scenario({"opendc": str(OPENDC)}, duration_s=2592300)))
    a = build_workload(load_scenario(_scenario({"opendc": str(OPENDC), "sample": 0.5, "limit": 10},
                                               duration_s=2592300)))
    b = build_workload(load_scenario(_scenario({"opendc": str(OPENDC), "sample": 0.5, "limit": 10},
                                               duration_s=2592300)))
    assert len(a.vms) == 10 and a.vms.name.tolist() == b.vms.name.tolist()
    assert set(a.vms.name) < set(full.vms.name) and a.vms.name.tolist() != full.vms.name.tolist()[:10]
