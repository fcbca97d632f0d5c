"""The Alibaba cluster-trace-v2018 container reader on a generated population in the published layout
(tests/data/alibaba2018-small, make_fixture.py), its figures checked against the files read with pandas."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import consolidate
from consolidate.errors import ConsolidateError
from consolidate.validation import load_scenario
from consolidate.workload.build import build_workload

SMALL = Path(__file__).parent / "data" / "alibaba2018-small"
USAGE = ["cid", "mid", "t", "cpu", "mem", "cpi", "gps", "mpki", "nin", "nout", "disk"]


def _scenario(trace: dict, duration_s=7200.0, **group) -> dict:
    return {"name": "ali", "duration_s": duration_s, "interval_s": 300,
            "host_types": [{"name": "big", "cores": 32, "mips_per_core": 2500, "memory_mb": 262144,
                            "power_idle_w": 100, "power_max_w": 350}],
            "hosts": [{"type": "big", "count": 4}],
            "vm_types": [{"name": "c", "vcpus": 1, "mips_per_vcpu": 2500, "memory_mb": 4096}],
            "on_unplaceable": "queue", "vms": [{"name": "g", "type": "c", "trace": trace, **group}]}


def test_containers_lives_cores_and_work_from_the_joined_files():
    u = pd.read_csv(SMALL / "container_usage.csv", header=None, names=USAGE)
    u = u[u.cid != "c_orphan"].sort_values(["cid", "t"])
    wl = build_workload(load_scenario(_scenario({"alibaba2018": str(SMALL)}, shape="as-is")))
    names = wl.vms.name.tolist()
    assert names == [f"c_{k}" for k in range(6)]
    assert wl.vms.vcpus.tolist() == [1, 2, 4, 4, 8, 16]  # cpu_request / 100
    first = u.groupby("cid").t.min()
    np.testing.assert_allclose(wl.start_s, first.loc[names])
    # each sample lasts to the next (the last one median step, within the run); c_5's 15-minute gap is held
    work = {}
    for cid, g in u.groupby("cid"):
        t = g.t.to_numpy(float)
        dur = np.append(np.diff(t), np.median(np.diff(t)))
        end = np.minimum(t + dur, 7200)
        work[cid] = float((g.cpu.to_numpy() / 100 * (end - t)).sum())
    grid = wl.cpu_util.astype(np.float64).sum(axis=0) * 300
    np.testing.assert_allclose(grid, [work[n] for n in names], rtol=1e-5)
    assert wl.end_s[names.index("c_4")] == pytest.approx(u[u.cid == "c_4"].t.max() + 60)
    assert any("2 of 617 usage rows name 1 VMs the VM table does not list; 1 of the 7 selected VMs of the table "
               "have no usage row" in w for w in wl.warnings)
    gap0 = build_workload(load_scenario(_scenario({"alibaba2018": str(SMALL), "gap": "zero"})))
    assert gap0.cpu_util[:, 5].sum() < wl.cpu_util[:, 5].sum()
    assert (gap0.cpu_util[:, :5] == wl.cpu_util[:, :5]).all()


def test_a_run_has_the_arrival_and_the_departure():
    s = consolidate.run(_scenario({"alibaba2018": str(SMALL)}, shape="as-is")).summary.iloc[0]
    assert s["vms_placed"] == 6 and s["vms_arrived"] == 1
    # c_4 leaves at 3,601 s; the others' last samples end within 4 s of the run's end, which they reach
    assert s["vms_departed"] >= 1 and s["trace_warnings"] >= 1


def test_bad_files_name_file_and_row(tmp_path):
    with pytest.raises(ConsolidateError, match="not an Alibaba cluster-trace-v2018 folder"):
        build_workload(load_scenario(_scenario({"alibaba2018": str(tmp_path)})))
    (tmp_path / "container_meta.csv").write_text("c_0,m_0,0,a,started,100,100,1\nc_1,m_0,0,a,started,lots,100,1\n")
    (tmp_path / "container_usage.csv").write_text("c_0,m_0,0,10,1,,,,,,\n")
    with pytest.raises(ConsolidateError, match=r"container_meta.csv: row 2: cpu_request: missing, negative or not a "
                       r"number \(got 'lots'\)"):
        build_workload(load_scenario(_scenario({"alibaba2018": str(tmp_path)})))
    (tmp_path / "container_meta.csv").write_text("c_9,m_0,0,a,started,100,100,1\n")
    with pytest.raises(ConsolidateError, match=r"share no container \(1 of 1 usage rows name 1 VMs"):
        build_workload(load_scenario(_scenario({"alibaba2018": str(tmp_path)})))
