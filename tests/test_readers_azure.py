"""The Azure Public Dataset reader: the real V1 excerpt (whose readings and VM table share no VM: refused, with
counts) and a generated population in the published layout (tests/data/azure-v1-small, make_fixture.py), its
figures checked against the files read independently with pandas."""
from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import consolidate
from consolidate.errors import ConsolidateError
from consolidate.validation import load_scenario
from consolidate.workload.build import build_workload

DATA = Path(__file__).parent / "data"
EXCERPT = DATA / "azure-v1-excerpt"
SMALL = DATA / "azure-v1-small"
ROOT = Path(__file__).parent.parent
TABLE = ["vmid", "sub", "dep", "created", "deleted", "max", "avg", "p95", "cat", "cores", "mem_gb"]


def _scenario(trace: dict, duration_s=172800.0, **group) -> dict:
    return {"name": "az", "duration_s": duration_s, "interval_s": 300,
            "host_types": [{"name": "big", "cores": 24, "mips_per_core": 2500, "memory_mb": 131072,
                            "power_idle_w": 100, "power_max_w": 350}],
            "hosts": [{"type": "big", "count": 8}],
            "vm_types": [{"name": "one", "vcpus": 1, "mips_per_vcpu": 2500, "memory_mb": 2048}],
            "on_unplaceable": "queue", "vms": [{"name": "g", "type": "one", "trace": trace, **group}]}


def _small():
    table = pd.read_csv(SMALL / "vmtable" / "vmtable.csv.gz", header=None, names=TABLE)
    reads = pd.concat(pd.read_csv(p, header=None, names=["t", "vmid", "min", "max", "avg"])
                      for p in sorted((SMALL / "vm_cpu_readings").glob("*.csv.gz")))
    return table, reads


def test_the_real_excerpt_shares_no_vm_and_is_refused_with_counts():
    table = pd.read_csv(EXCERPT / "vmtable" / "vmtable.csv.gz", header=None, names=TABLE)
    reads = pd.read_csv(next((EXCERPT / "vm_cpu_readings").glob("*.gz")), header=None,
                        names=["t", "vmid", "min", "max", "avg"])
    assert not set(table.vmid) & set(reads.vmid)  # what the excerpt is
    msg = (f"the readings and the VM table share no VM ({len(reads)} of {len(reads)} usage rows name "
           f"{reads.vmid.nunique()} VMs the VM table does not list; {len(table)} of the {len(table)} selected VMs "
           "of the table have no usage row); nothing to run on")
    with pytest.raises(ConsolidateError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        build_workload(load_scenario(_scenario({"azure": str(EXCERPT)})))
    proc = subprocess.run([sys.executable, "-m", "consolidate", "trace", "inspect", str(EXCERPT)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and msg in proc.stderr


def test_lives_shapes_and_work_come_from_the_joined_files():
    table, reads = _small()
    wl = build_workload(load_scenario(_scenario({"azure": str(SMALL)}, shape="as-is")))
    matched = table[table.vmid.isin(reads.vmid)].set_index("vmid")
    assert sorted(wl.vms.name) == sorted(matched.index) and len(wl.vms) == 24
    names = wl.vms.name.tolist()
    # life: created .. deleted + one 5-minute slot; shape: the buckets (GB x 1024 = MiB)
    np.testing.assert_allclose(wl.start_s, matched.loc[names, "created"])
    np.testing.assert_allclose(wl.end_s, np.minimum(matched.loc[names, "deleted"] + 300, 172800))
    assert (wl.vms.vcpus.to_numpy() == matched.loc[names, "cores"].to_numpy()).all()
    np.testing.assert_allclose(wl.vms.memory_mb, matched.loc[names, "mem_gb"] * 1024)
    # CPU work per VM: avgcpu% of its cores for 300 s per reading, all of it on the grid
    work = (reads.avg / 100 * 300).groupby(reads.vmid).sum()
    grid = wl.cpu_util.astype(np.float64).sum(axis=0) * 300
    np.testing.assert_allclose(grid, work.loc[names].to_numpy(), rtol=1e-5)
    assert any("3 of 6,628 usage rows name 1 VMs the VM table does not list; 1 of the 25 selected VMs of the table "
               "have no usage row" in w for w in wl.warnings)


def test_shipped_scenario_arrivals_and_departures():
    table, reads = _small()
    live = table[table.vmid.isin(reads.vmid)]
    res = consolidate.run(ROOT / "scenarios" / "azure.yaml")
    s = res.summary.iloc[0]
    assert s["vms"] == s["vms_placed"] == len(live) == 24
    assert s["vms_arrived"] == int((live.created > 0).sum()) == 14
    assert s["vms_departed"] == int((live.deleted + 300 < 172800).sum())
    assert s["vms_live_max"] <= len(live) and s["trace_warnings"] == 1
    dc = res.frames["datacenter"]
    assert dc["vms_live"].max() == s["vms_live_max"] and dc["hosts_active"].max() == s["hosts_active_max"]


def test_limit_sample_and_bad_files(tmp_path):
    a = build_workload(load_scenario(_scenario({"azure": str(SMALL), "sample": 0.5, "limit": 5})))
    b = build_workload(load_scenario(_scenario({"azure": str(SMALL), "sample": 0.5, "limit": 5})))
    assert len(a.vms) <= 5 and a.vms.name.tolist() == b.vms.name.tolist()
    for sub in ("vmtable", "vm_cpu_readings"):
        (tmp_path / sub).mkdir()
        for p in (SMALL / sub).iterdir():
            (tmp_path / sub / p.name).write_bytes(p.read_bytes())
    t = tmp_path / "vmtable" / "vmtable.csv.gz"
    lines = gzip.decompress(t.read_bytes()).decode().splitlines()
    lines[3] = ",".join(lines[3].split(",")[:9] + ["four", "7"])
    t.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    with pytest.raises(ConsolidateError, match=r"vmtable.csv.gz: row 4: vmcorecount: missing, negative or not a "
                       r"number \(got 'four'\)"):
        build_workload(load_scenario(_scenario({"azure": str(tmp_path)})))
    t.write_bytes(b"\x1f\x8b" + b"garbage" * 100)
    with pytest.raises(ConsolidateError, match="vmtable.csv.gz: cannot be read as the published CSV"):
        build_workload(load_scenario(_scenario({"azure": str(tmp_path)})))
    with pytest.raises(ConsolidateError, match="not an Azure Public Dataset folder"):
        build_workload(load_scenario(_scenario({"azure": str(tmp_path / "vm_cpu_readings")})))
