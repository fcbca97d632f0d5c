"""The Google cluster-data 2019 reader on a generated population in the published layout
(tests/data/google2019-small, make_fixture.py: JSON as downloaded; the same rows as Parquet and as CSV with both
flattened spellings): lives from the events, shapes through ncu_vcpus/nmu_mib, CPU work per instance against
the files read independently with pandas, join counts, bad input, trace inspect and a whole run."""
from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import consolidate
from consolidate.errors import ConsolidateError
from consolidate.validation import load_scenario
from consolidate.workload import joined
from consolidate.workload.build import build_workload

SMALL = Path(__file__).parent / "data" / "google2019-small"
DURATION_S = 9000.0  # the fixture's window: 600 .. 9600 s on the trace clock
_spec = importlib.util.spec_from_file_location("google_fixture", SMALL / "make_fixture.py")
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)


def _scenario(trace: dict, duration_s=DURATION_S, **group) -> dict:
    return {"name": "g", "duration_s": duration_s, "interval_s": 300,
            "host_types": [{"name": "big", "cores": 64, "mips_per_core": 2500, "memory_mb": 262144,
                            "power_idle_w": 100, "power_max_w": 350}],
            "hosts": [{"type": "big", "count": 4}],
            "vm_types": [{"name": "one", "vcpus": 1, "mips_per_vcpu": 2500, "memory_mb": 2048},
                         {"name": "four", "vcpus": 4, "mips_per_vcpu": 2500, "memory_mb": 8192},
                         {"name": "eight", "vcpus": 8, "mips_per_vcpu": 2500, "memory_mb": 16384}],
            "on_unplaceable": "queue", "vms": [{"name": "g", "type": "one", "trace": trace, **group}]}


def _read(name: str) -> pd.DataFrame:
    lines = []
    for p in sorted(SMALL.glob(f"{name}-*.json.gz")):
        lines += [json.loads(x) for x in gzip.decompress(p.read_bytes()).decode().splitlines()]
    d = pd.json_normalize(lines)
    for c in ("time", "start_time", "end_time", "collection_id", "instance_index"):
        if c in d:
            d[c] = d[c].astype(np.int64)
    return d


def _expected():
    """Per instance, from the files: life (run clock), request, and CPU work (s of the VM's whole CPU)."""
    ev, us = _read("instance_events"), _read("instance_usage")
    ev["vm"] = ev.collection_id.astype(str) + "/" + ev.instance_index.astype(str)
    us["vm"] = us.collection_id.astype(str) + "/" + us.instance_index.astype(str)
    out = {}
    for vm, e in ev.groupby("vm"):
        req = e.sort_values("time").iloc[-1]
        w = us[us.vm == vm]
        if req["resource_request.cpus"] <= 0 or w.empty:
            continue
        sched = e[e.type == 3].time.min() / 1e6
        ends = e[e.type.isin([4, 5, 6, 7, 8])].time
        life1 = ends.max() / 1e6 if len(ends) else w.end_time.max() / 1e6
        a, b = w.start_time / 1e6 - 600, w.end_time / 1e6 - 600
        u = np.minimum(w["average_usage.cpus"] / req["resource_request.cpus"], 1.0)
        overlap = np.clip(np.minimum(b, DURATION_S) - np.maximum(a, 0), 0, None)
        out[vm] = {"start_s": max(sched - 600, 0), "end_s": min(life1 - 600, DURATION_S),
                   "cpus": req["resource_request.cpus"], "memory": req["resource_request.memory"],
                   "work_s": float((u * overlap).sum()), "clipped": int((w["average_usage.cpus"] /
                                                                      req["resource_request.cpus"] > 1).sum())}
    return out


def test_lives_shapes_and_cpu_work_come_from_the_joined_files():
    exp = _expected()
    assert sorted(exp) == ["1001/0", "1001/1", "2002/0", "2002/1"]
    wl = build_workload(load_scenario(_scenario({"google2019": str(SMALL), "ncu_vcpus": 96, "nmu_mib": 393216},
                                                shape="as-is")))
    names = wl.vms.name.tolist()
    assert names == sorted(exp)  # (collection_id, instance_index) order
    np.testing.assert_allclose(wl.start_s, [exp[v]["start_s"] for v in names])
    np.testing.assert_allclose(wl.end_s, [exp[v]["end_s"] for v in names])
    # what the fixture says in words: scheduled before the trace; 900 .. 3000 s; 1200 .. 4800 s; LOST at 6000 s
    assert wl.start_s.tolist() == [0, 300, 600, 0] and wl.end_s.tolist() == [9000, 2400, 4200, 5400]
    assert wl.vms.vcpus.tolist() == [int(np.ceil(exp[v]["cpus"] * 96 - 1e-9)) for v in names] == [5, 2, 10, 3]
    np.testing.assert_allclose(wl.vms.memory_mb, [exp[v]["memory"] * 393216 for v in names])
    grid = wl.cpu_util.astype(np.float64).sum(axis=0) * 300
    np.testing.assert_allclose(grid, [exp[v]["work_s"] for v in names], rtol=1e-5)
    assert wl.clipped == sum(e["clipped"] for e in exp.values()) > 0
    assert any("3 of 74 usage rows name 1 VMs the VM table does not list; 1 of the 5 selected VMs of the table "
               "have no usage row" in w for w in wl.warnings)
    assert any("1 instances without a positive resource_request.cpus left out" in w for w in wl.warnings)


def test_default_gap_is_zero_and_hold_fills_the_eviction():
    exp = _expected()
    zero = build_workload(load_scenario(_scenario({"google2019": str(SMALL)})))
    hold = build_workload(load_scenario(_scenario({"google2019": str(SMALL), "gap": "hold"})))
    k = zero.vms.name.tolist().index("2002/0")
    z, h = zero.cpu_util[:, k].astype(np.float64), hold.cpu_util[:, k].astype(np.float64)
    assert z.sum() * 300 == pytest.approx(exp["2002/0"]["work_s"], rel=1e-5)
    # evicted 2400 .. 3000 s (run clock 1800 .. 2400): zero counts nothing, hold repeats the window before it
    assert np.all(z[6:8] == 0) and np.all(h[6:8] == pytest.approx(h[5], rel=1e-6)) and h[5] > 0
    np.testing.assert_allclose(np.delete(h, [6, 7]), np.delete(z, [6, 7]), rtol=1e-6)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "csv_"])
def test_parquet_and_csv_exports_read_as_the_json(tmp_path, fmt):
    fixture.write(tmp_path, fmt)
    assert {p.suffix for p in tmp_path.iterdir()} == {".parquet" if fmt == "parquet" else ".csv"}
    trace = {"ncu_vcpus": 48}
    a = build_workload(load_scenario(_scenario({"google2019": str(SMALL), **trace}, shape="nearest")))
    b = build_workload(load_scenario(_scenario({"google2019": str(tmp_path), **trace}, shape="nearest")))
    assert a.vms.name.tolist() == b.vms.name.tolist() and a.vms.vm_type.tolist() == b.vms.vm_type.tolist()
    np.testing.assert_allclose(b.cpu_util, a.cpu_util, rtol=1e-6)
    np.testing.assert_array_equal(b.start_s, a.start_s)


def test_buckets_spilled_to_files_give_the_same_grid(monkeypatch):
    sc = load_scenario(_scenario({"google2019": str(SMALL)}))
    kept = build_workload(sc)
    monkeypatch.setattr(joined, "BUCKET_BYTES", 512)
    spilled = build_workload(sc)
    np.testing.assert_array_equal(spilled.cpu_util, kept.cpu_util)


def test_shape_needs_ncu_vcpus_and_options_need_google(tmp_path):
    with pytest.raises(ConsolidateError, match="shape as-is needs the VMs' vCPUs.*set the trace's ncu_vcpus"):
        build_workload(load_scenario(_scenario({"google2019": str(SMALL)}, shape="as-is")))
    with pytest.raises(ConsolidateError, match="ncu_vcpus applies to google2019 traces only"):
        load_scenario(_scenario({"azure": str(SMALL), "ncu_vcpus": 8}))


def _cli(path: Path, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "consolidate", "trace", "inspect", str(path), *extra],
                          capture_output=True, text=True)


def test_bad_input_names_file_row_and_field(tmp_path):
    fixture.write(tmp_path, "csv")
    usage = tmp_path / "instance_usage-000000000001.csv"
    lines = usage.read_text().splitlines()
    head = lines[0].split(",")
    cells = lines[5].split(",")
    cells[head.index("average_usage.cpus")] = "lots"
    lines[5] = ",".join(cells)
    usage.write_text("\n".join(lines) + "\n")
    proc = _cli(tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "instance_usage-000000000001.csv: row 5: average_usage.cpus: not a number (got 'lots')" in proc.stderr
    drop = head.index("start_time")
    usage.write_text("".join(",".join(c for k, c in enumerate(x.split(",")) if k != drop) + "\n" for x in lines[:3]))
    proc = _cli(tmp_path)
    assert proc.returncode == 2 and "start_time: no such field" in proc.stderr
    for p in tmp_path.glob("instance_usage*"):
        p.unlink()
    proc = _cli(tmp_path, "--kind", "google2019")
    assert proc.returncode == 2 and "not a Google cluster-data 2019 folder" in proc.stderr


def test_no_instance_in_common_is_refused_with_counts(tmp_path):
    fixture.write(tmp_path, "json")
    ev = tmp_path / "instance_events-000000000000.json.gz"
    rows = [json.loads(x) for x in gzip.decompress(ev.read_bytes()).decode().splitlines()]
    ev.write_bytes(gzip.compress("".join(json.dumps({**r, "collection_id": "77"}) + "\n" for r in rows).encode()))
    with pytest.raises(ConsolidateError, match=r"instance_usage and instance_events share no instance \(74 of 74 "
                       r"usage rows name 6 VMs the VM table does not list; 2 of the 2 selected VMs"):
        build_workload(load_scenario(_scenario({"google2019": str(tmp_path)})))


def test_trace_inspect_sees_each_instance():
    exp = _expected()
    proc = _cli(SMALL, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(__import__("io").StringIO(proc.stdout)).set_index("vm")
    assert sorted(got.index) == sorted(exp)
    assert got.loc["2002/0", "gaps"] == 1 and got.loc["2002/1", "samples"] == 18
    assert got.loc["1001/1", "start_s"] == 900 and got.loc["1001/1", "end_s"] == 3000
    assert "google2019, span 0 .. 9600 s" in proc.stderr and "4 VMs" in proc.stderr


def test_a_run_on_the_trace():
    res = consolidate.run(load_scenario(_scenario({"google2019": str(SMALL), "ncu_vcpus": 48}, shape="nearest")))
    s = res.summary.iloc[0]
    assert s["vms"] == s["vms_placed"] == 4
    assert s["vms_arrived"] == 2 and s["vms_departed"] == 3  # 1001/1 and 2002/0 arrive; all but 1001/0 leave
    assert s["trace_samples_clipped"] > 0 and s["energy_kwh"] > 0


def test_json_with_numbers_and_fields_null_in_early_blocks(tmp_path, monkeypatch):
    """Integers as JSON numbers instead of strings, and a field null in the first blocks and a number later
    (Arrow infers types per block: the reader reads its own fields with a schema)."""
    from consolidate.workload import google
    events, usage = fixture.rows()
    for r in usage[:40]:
        r["sample_rate"] = None  # null in the first blocks, a number after: plain Arrow inference stops here
    for name, part in {"instance_events-000000000000.json": events, "instance_usage-000000000000.json": usage}.items():
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    monkeypatch.setattr(google, "BLOCK_BYTES", 4096)  # many blocks
    a = build_workload(load_scenario(_scenario({"google2019": str(SMALL)})))
    b = build_workload(load_scenario(_scenario({"google2019": str(tmp_path)})))
    assert a.vms.name.tolist() == b.vms.name.tolist()
    np.testing.assert_allclose(b.cpu_util, a.cpu_util, rtol=1e-6)
