"""Native traces with lifecycles and shapes: per-VM start_s/end_s (or timestamps) and vcpus/memory_mb columns, read
from real files and run; shapes as-is, nearest and a table; count omitted with limit and a seeded sample; every bad
value named by file, row and column (exit 2 from the CLI). Fixed-step native files are read as before."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import consolidate
from consolidate.errors import ScenarioError
from consolidate.workload import bitbrains
from consolidate.workload.build import build_workload
from consolidate.workload.native import is_timed, read_native
from tests.conftest import DATA, REPO

# a: 0..3600 s, 2 vCPUs, 4 GiB at 50%; b: arrives at 1800, leaves at 5400, 4 vCPUs, 8 GiB at 25%;
# c: no life columns (its samples: 0..7200), 1 vCPU, 1 GiB at 80%
LIVES = {"a": (0, 3600, 2, 4096, 0.5), "b": (1800, 5400, 4, 8192, 0.25), "c": (None, None, 1, 1024, 0.8)}


def _life_csv(folder: Path, name: str = "life.csv") -> Path:
    rows = []
    for vm, (a, e, c, m, u) in LIVES.items():
        for t in range(a or 0, e or 7200, 300):
            rows.append({"vm": vm, "time_s": t, "cpu_util": u, "start_s": a, "end_s": e, "vcpus": c, "memory_mb": m})
    f = folder / name
    pd.DataFrame(rows).to_csv(f, index=False)
    return f


def _scenario(folder: Path, trace: dict, shape="as-is", duration_s=7200, **extra) -> Path:
    sc = {"name": "native-life", "seed": 3, "duration_s": duration_s, "interval_s": 300,
          "host_types": [{"name": "h8", "cores": 8, "mips_per_core": 1000, "memory_mb": 16384,
                          "power_idle_w": 100, "power_max_w": 200}],
          "hosts": [{"type": "h8", "count": 2}],
          "vm_types": [{"name": "small", "vcpus": 1, "mips_per_vcpu": 1000, "memory_mb": 1024},
                       {"name": "mid", "vcpus": 2, "mips_per_vcpu": 1000, "memory_mb": 4096},
                       {"name": "big", "vcpus": 4, "mips_per_vcpu": 1000, "memory_mb": 8192}],
          "on_unplaceable": "queue",
          "vms": [{"name": "g", "type": "small", "shape": shape, "trace": trace}], **extra}
    f = folder / "scenario.yaml"
    f.write_text(yaml.safe_dump(sc, sort_keys=False))
    return f


def test_lives_and_shapes_from_the_file_in_a_run(tmp_path):
    _life_csv(tmp_path)
    res = consolidate.run(_scenario(tmp_path, {"native": "life.csv"}))
    vms = res.vms.set_index("name")
    assert vms.index.tolist() == ["a", "b", "c"]  # count omitted: every VM of the file, in its order
    assert vms.vcpus.tolist() == [2, 4, 1] and vms.memory_mb.tolist() == [4096, 8192, 1024]
    assert vms.start_s.tolist() == [0, 1800, 0] and vms.end_s.tolist() == [3600, 5400, 7200]
    s = res.summary.iloc[0]
    assert (s.vms_arrived, s.vms_departed, s.vms_live_max, s.vms_queued) == (1, 2, 3, 0)
    # demand = util x vCPUs x 1000 MIPS x hours alive: a 0.5*2*1, b 0.25*4*1, c 0.8*1*2 (thousand MIPS-h)
    assert s.cpu_demand_mips_h == pytest.approx(3600, rel=1e-5)
    assert s.cpu_served_mips_h + s.cpu_unserved_mips_h + s.cpu_queued_mips_h == pytest.approx(3600, rel=1e-5)
    assert s.cpu_unserved_mips_h == 0
    # no VM is on a host before its start or after its end
    vi = res.vm_intervals.merge(res.vms[["vm", "start_s", "end_s"]], on="vm")
    on = vi.host >= 0
    assert on.sum() == 12 + 12 + 24  # b's 12 intervals from 1800 s, a's first 12, c's 24
    assert ((vi.time_s[on] + 300 > vi.start_s[on]) & (vi.time_s[on] < vi.end_s[on])).all()


def test_nearest_and_table_shapes(tmp_path):
    _life_csv(tmp_path)
    near = build_workload(consolidate.validate(_scenario(tmp_path, {"native": "life.csv"}, shape="nearest")))
    assert near.vms.vm_type.tolist() == ["mid", "big", "small"]
    table = {"2x4096": "big", "4x8192": "big", "1x1024": "mid"}
    tab = build_workload(consolidate.validate(_scenario(tmp_path, {"native": "life.csv"}, shape=table)))
    assert tab.vms.vm_type.tolist() == ["big", "big", "mid"] and tab.vms.vcpus.tolist() == [4, 4, 2]
    # the work of each VM is its samples' work, whatever its shape
    np.testing.assert_allclose(tab.cpu_util.astype(np.float64).sum(axis=0) * 300, [1800, 900, 5760], rtol=1e-6)


def test_count_omitted_limit_and_seeded_sample(tmp_path):
    rows = [{"vm": f"v{k}", "time_s": t, "cpu_util": 0.1 * (k + 1), "vcpus": 1, "memory_mb": 1024}
            for k in range(8) for t in range(0, 3600, 300)]
    pd.DataFrame(rows).to_csv(tmp_path / "eight.csv", index=False)
    every = build_workload(consolidate.validate(_scenario(tmp_path, {"native": "eight.csv"}, duration_s=3600)))
    assert every.vms.name.tolist() == [f"v{k}" for k in range(8)]
    half = [build_workload(consolidate.validate(_scenario(tmp_path, {"native": "eight.csv", "sample": 0.5},
                                                          duration_s=3600))).vms.name.tolist()
            for _ in range(2)]
    assert half[0] == half[1] and len(half[0]) == 4 and set(half[0]) < set(every.vms.name)
    assert half[0] != every.vms.name.tolist()[:4]  # drawn from the seed, not the first four
    cut = build_workload(consolidate.validate(_scenario(tmp_path, {"native": "eight.csv", "sample": 0.5, "limit": 2},
                                                        duration_s=3600)))
    assert cut.vms.name.tolist() == half[0][:2]
    # sample and limit also cut a fixed-step file's VMs (no per-VM column, so the classic reading)
    pd.DataFrame(rows).drop(columns=["vcpus", "memory_mb"]).to_csv(tmp_path / "fixed.csv", index=False)
    fixed = build_workload(consolidate.validate(_scenario(tmp_path, {"native": "fixed.csv", "limit": 3},
                                                          shape="group", duration_s=3600)))
    assert fixed.vms.name.tolist() == ["v0", "v1", "v2"] and fixed.start_s.tolist() == [0, 0, 0]


def test_iso_and_epoch_timestamps_and_parquet_datetimes(tmp_path):
    base = pd.Timestamp("2024-03-01 08:00:00", tz="UTC")
    rows = []
    for vm, off_s, n in (("early", 0, 12), ("late", 1800, 6)):
        life_ms = (base.value // 10**6 + off_s * 1000, base.value // 10**6 + (off_s + n * 300) * 1000)
        for k in range(n):
            when = base + pd.Timedelta(seconds=off_s + k * 300)
            rows.append({"vm": vm, "time_s": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "cpu_util": 0.5,
                         "start_s": life_ms[0], "end_s": life_ms[1]})
    pd.DataFrame(rows).to_csv(tmp_path / "iso.csv", index=False)
    wl = build_workload(consolidate.validate(_scenario(tmp_path, {"native": "iso.csv"}, shape="group",
                                                       duration_s=3600)))
    # the earliest sample is t = 0; epoch milliseconds in start_s/end_s are read as such
    assert wl.start_s.tolist() == [0, 1800] and wl.end_s.tolist() == [3600, 3600]
    late = build_workload(consolidate.validate(_scenario(tmp_path, {"native": "iso.csv", "start": "2024-03-01T08:10:00Z"},
                                                         shape="group", duration_s=3600)))
    assert late.start_s.tolist() == [0, 1200]
    # Parquet with a datetime column, irregular steps and no life columns: life from the samples
    t = base + pd.to_timedelta([0, 290, 610, 900], unit="s")
    pd.DataFrame({"time_s": t, "cpu_util": [0.2, 0.4, 0.6, 0.8]}).to_parquet(tmp_path / "one.parquet")
    one = build_workload(consolidate.validate(_scenario(tmp_path, {"native": "one.parquet"}, shape="group",
                                                        duration_s=1800)))
    assert one.start_s.tolist() == [0] and one.end_s.tolist() == [900 + 290]  # the last lasts the median step
    work = 0.2 * 290 + 0.4 * 320 + 0.6 * 290 + 0.8 * 290
    assert float(one.cpu_util[:, 0].astype(np.float64).sum() * 300) == pytest.approx(work, rel=1e-6)


def test_fixed_step_files_are_read_as_before(tmp_path):
    web = REPO / "scenarios" / "traces" / "web-tier.csv"
    assert not is_timed(pd.read_csv(web))
    f = tmp_path / "later.csv"
    f.write_text("time_s,cpu_util\n600,0.1\n900,0.2\n")
    with pytest.raises(ScenarioError, match=r"trace starts at time_s 600 \(expected the first sample at 0 or earlier\)"):
        consolidate.validate(_scenario(tmp_path, {"native": "later.csv"}, shape="group", duration_s=600))
    assert read_native(f)[0].interval_s == 300


@pytest.mark.parametrize("body,row,message", [
    ("vm,time_s,cpu_util,start_s,end_s\na,0,0.1,0,600\na,300,0.1,300,600\n", 2,
     "start_s changes within VM 'a' (got 300 s, expected 0 s as in its first row: one value per VM)"),
    ("vm,time_s,cpu_util,start_s,end_s\na,0,0.1,0,600\nb,0,0.1,600,600\n", 2,
     "end_s not after start_s for VM 'b' (got 600 <= 600 s, expected a life of positive length)"),
    ("vm,time_s,cpu_util,vcpus\na,0,0.1,2\nb,0,0.1,two\n", 2,
     "vcpus is missing, NaN or not a number (got 'two', expected a number)"),
    ("vm,time_s,cpu_util,memory_mb\na,0,0.1,0\n", 1, "memory_mb out of range (got 0, expected > 0)"),
    ("vm,time_s,cpu_util,start_s,end_s\na,0,0.1,0,\n", 1,
     "VM 'a' has only one of start_s, end_s (got start_s; expected both, or neither for a life from its samples)"),
    ("time_s,cpu_util\n2024-03-01T08:00:00Z,0.1\n2024-03-01T08:05:00Z,0.1\nlater,0.1\n", 3,
     "time_s: not a time (got 'later', expected epoch seconds, milliseconds or an ISO 8601 timestamp)"),
    ("vm,time_s,cpu_util,vcpus\na,0,0.1,1\na,300,-0.5,1\n", 2, "cpu_util out of range (got -0.5, expected >= 0)"),
    ("vm,time_s,cpu_util,vcpus\na,0,0.1,1\na,0,0.2,1\n", 2,
     "VM 'a': time not increasing (got 0 after 0 s, expected sorted strictly increasing times)"),
])
def test_bad_values_name_file_row_and_column(tmp_path, body, row, message):
    (tmp_path / "bad.csv").write_text(body)
    f = _scenario(tmp_path, {"native": "bad.csv"}, shape="group", duration_s=600)
    with pytest.raises(ScenarioError) as exc:
        consolidate.validate(f)
    assert [str(p) for p in exc.value.problems] == [f"{f}: vms.0.trace.native: {tmp_path / 'bad.csv'}: row {row}: "
                                                    f"{message}"]


def test_cli_refuses_bad_input_with_one_line_and_exit_2(tmp_path):
    (tmp_path / "bad.csv").write_text("vm,time_s,cpu_util,vcpus\na,0,0.1,2\na,300,0.1,4\n")
    f = _scenario(tmp_path, {"native": "bad.csv"}, duration_s=600)
    proc = subprocess.run([sys.executable, "-m", "consolidate", "run", str(f), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"{f}: vms.0.trace.native: {tmp_path / 'bad.csv'}: row 2: vcpus changes within VM 'a' (got 4, expected 2 "
        "as in its first row: one value per VM)"]
    (tmp_path / "ok.csv").write_text("vm,time_s,cpu_util,vcpus\na,0,0.1,2\na,300,0.1,2\n")
    f = _scenario(tmp_path, {"native": "ok.csv", "repeat": True}, duration_s=600)
    proc = subprocess.run([sys.executable, "-m", "consolidate", "validate", str(f)], capture_output=True, text=True)
    assert proc.returncode == 2 and "repeat applies to fixed-step traces" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bitbrains_fast_reading_equals_the_string_reading(tmp_path):
    """The pyarrow path gives the same series as the pandas string path; a bad cell falls back and is named."""
    real = DATA / "bitbrains-raw" / "1.csv"
    fast, slow = bitbrains._read_fast(real, real.read_bytes()), bitbrains._read_strings(real)
    assert fast is not None
    for k in ("t_s", "util", "rows"):
        np.testing.assert_array_equal(getattr(fast, k), getattr(slow, k))
    np.testing.assert_array_equal(fast.extra["mem_used_bytes"], slow.extra["mem_used_bytes"])
    assert (fast.vcpus, fast.memory_mb, fast.mhz) == (slow.vcpus, slow.memory_mb, slow.mhz)
    lines = real.read_text().splitlines(keepends=True)
    cells = lines[5].split(";")
    cells[4] = "high"  # CPU usage [%] of data row 5
    (tmp_path / "vm7.csv").write_text("".join(lines[:5] + [";".join(cells)] + lines[6:50]))
    with pytest.raises(Exception, match=r"vm7.csv: row 5: CPU usage \[%\]: missing, negative or not a number "
                                        r"\(got 'high'\)"):
        bitbrains.read_file(tmp_path / "vm7.csv")


def test_trace_inspect_detects_a_native_file_and_shows_lives_and_shapes(tmp_path):
    f = _life_csv(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "consolidate", "trace", "inspect", str(f), "--format", "csv"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith(f"{f}: native, span 0 .. 7200 s (0.08 days), 3 VMs, warnings: none")
    got = pd.read_csv(io.StringIO(proc.stdout)).set_index("vm")
    assert got.start_s.tolist() == [0, 1800, 0] and got.end_s.tolist() == [3600, 5400, 7200]
    assert got.vcpus.tolist() == [2, 4, 1] and got.memory_mb.tolist() == [4096, 8192, 1024]
    assert got.samples.tolist() == [12, 12, 24] and got.cpu_util_mean.tolist() == pytest.approx([0.5, 0.25, 0.8])
    (tmp_path / "bad.csv").write_text("vm,time_s,cpu_util,vcpus\na,0,0.1,2\na,300,0.1,x\n")
    proc = subprocess.run([sys.executable, "-m", "consolidate", "trace", "inspect", str(tmp_path / "bad.csv")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"{tmp_path / 'bad.csv'}: row 2: vcpus is missing, NaN or not a number (got 'x', expected a number)")


def test_surf_week_is_what_its_generator_writes(tmp_path):
    """The committed SURF-style week (scenarios/surf-tasks.yaml) is its generator's output, with the stated shape."""
    import importlib.util
    import pyarrow.parquet as pq

    week = DATA / "surf-week"
    spec = importlib.util.spec_from_file_location("surf_week_fixture", week / "make_fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.write(tmp_path, 6295) == (6295, 194703)
    for name in ("tasks.parquet", "fragments.parquet"):
        assert pq.read_table(tmp_path / name).equals(pq.read_table(week / name)), name
    tasks = pq.read_table(week / "tasks.parquet").to_pandas()
    sub_s = (tasks.submission_time - mod.T0_MS) / 1000
    assert sub_s.min() >= 0 and (sub_s + tasks.duration / 1000).max() <= 7 * 86400  # cut at the week's end
    assert tasks.duration.median() / 1000 == pytest.approx(3600, rel=0.1)  # log-normal, median 1 h
    assert (tasks.cpu_count == 16).mean() == pytest.approx(0.40, abs=0.03)
    weekend = sub_s >= 5 * 86400
    assert weekend.sum() / (~weekend).sum() == pytest.approx(0.5 * 2 / 5, rel=0.2)  # half the weekday rate


def test_timed_native_runs_with_failures_and_refuses_cloudsim_compat(tmp_path):
    _life_csv(tmp_path)
    (tmp_path / "failures.csv").write_text("target,index,start_s,end_s\nhost,0,600,1200\nhost,1,600,1200\n")
    f = _scenario(tmp_path, {"native": "life.csv"}, failures={"trace": "failures.csv"})
    s = consolidate.run(f).summary.iloc[0]
    # both hosts down 600-1200 s: a and c (there from 0) are down 600 s; b arrives at 1800, after the repair
    assert s.vm_failure_downtime_s_total == pytest.approx(1200.0) and s.vms_arrived == 1
    f = _scenario(tmp_path, {"native": "life.csv"}, cloudsim_compat=True)
    with pytest.raises(ScenarioError, match=r"life.csv: a timed trace's VMs arrive and leave, which does not combine "
                                            r"with cloudsim_compat"):
        consolidate.validate(f)
