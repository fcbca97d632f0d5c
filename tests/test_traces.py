"""Trace readers on real and hand-made files; every bad trace is rejected with its file and row."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import consolidate
from consolidate.errors import ScenarioError, TraceError
from consolidate.workload import planetlab
from consolidate.workload.native import read_native
from consolidate.workload.resample import resample
from tests.conftest import DATA

REAL_DAY = DATA / "planetlab" / "20110303"


def test_planetlab_reader_on_real_files():
    names, pct = planetlab.read_planetlab_folder(REAL_DAY)
    assert len(names) == 12 and names == sorted(names)
    assert pct.shape == (12, 288)  # 24 h at 300 s, as CloudSim ships the day
    assert pct.min() >= 0 and pct.max() <= 100
    first = (REAL_DAY / names[0]).read_text().split()
    assert pct[0, :5].tolist() == [int(x) for x in first[:5]]


def test_builtin_day_is_the_real_day_byte_for_byte():
    names, pct = planetlab.read_planetlab_folder(REAL_DAY)
    b_names, b_pct = planetlab.load_planetlab("builtin:20110303")
    assert len(b_names) == 1052  # VMs on 20110303 (shared data README: 1052)
    idx = [b_names.index(n) for n in names]
    np.testing.assert_array_equal(b_pct[idx], pct)
    # published day statistics (CloudSim data README): mean 12.31 %, population std 17.09 %, median 6 %
    assert b_pct.mean() == pytest.approx(12.31, abs=0.005)
    assert b_pct.std() == pytest.approx(17.09, abs=0.005)
    assert np.median(b_pct) == 6


def test_unknown_builtin_day():
    with pytest.raises(TraceError, match=r"no such built-in PlanetLab day \(expected one of: 20110303, 20110306, 20110309, 20110322, 20110325, 20110403, 20110409, 20110411, 20110412, 20110420\)"):
        planetlab.load_planetlab("builtin:19990101")


@pytest.mark.parametrize("content,row,message", [
    ("10\n20\nabc\n", 3, "not an integer percent (got 'abc', expected 0..100)"),
    ("10\n\n20\n", 2, "not an integer percent (got '', expected 0..100)"),
    ("10\n101\n", 2, "CPU percent out of range (got 101, expected 0..100)"),
    ("-1\n", 1, "CPU percent out of range (got -1, expected 0..100)"),
])
def test_planetlab_bad_file(tmp_path, content, row, message):
    f = tmp_path / "vm1"
    f.write_text(content)
    with pytest.raises(TraceError) as exc:
        planetlab.read_planetlab_file(f)
    assert str(exc.value) == f"{f}: row {row}: {message}"


def _csv(tmp_path, text, name="t.csv"):
    f = tmp_path / name
    f.write_text(text)
    return f


def test_native_csv_and_parquet_agree(tmp_path):
    df = pd.DataFrame({"time_s": [0, 300, 600], "cpu_util": [0.1, 0.5, 0.25], "net_rx_pps": [10.0, 0, 5]})
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_parquet(tmp_path / "a.parquet", index=False)
    (c,), (p,) = read_native(tmp_path / "a.csv"), read_native(tmp_path / "a.parquet")
    assert c.interval_s == p.interval_s == 300
    np.testing.assert_array_equal(c.cpu_util, [0.1, 0.5, 0.25])
    np.testing.assert_array_equal(c.cpu_util, p.cpu_util)
    np.testing.assert_array_equal(c.extra["net_rx_pps"], [10, 0, 5])


def test_native_long_file_with_vm_column(tmp_path):
    f = _csv(tmp_path, "vm,time_s,cpu_util\nb,0,0.2\na,0,0.3\nb,60,0.4\na,60,0.5\n")
    traces = read_native(f)
    assert [t.name for t in traces] == ["b", "a"]  # file order, not sorted
    assert traces[1].cpu_util.tolist() == [0.3, 0.5] and traces[1].interval_s == 60


@pytest.mark.parametrize("text,row,message", [
    ("time_s,cpu_util\n0,0.1\n600,0.2\n300,0.3\n", 3,
     "time_s not increasing (got 300 after 600, expected sorted strictly increasing times)"),
    ("time_s,cpu_util\n0,0.1\n300,0.2\n900,0.3\n", 3,
     "gap or uneven step in time_s (got 900 after 300, expected a fixed step of 300 s)"),
    ("time_s,cpu_util\n0,0.1\n300,\n", 2,
     "cpu_util is missing, NaN or not a number (got an empty cell or NaN, expected a number)"),
    ("time_s,cpu_util\n0,0.1\n300,high\n", 2, "cpu_util is missing, NaN or not a number (got 'high', expected a number)"),
    ("time_s,cpu_util\n0,0.1\n300,1.5\n", 2, "cpu_util out of range (got 1.5, expected 0..1)"),
    ("time_s,cpu_util,disk_iops\n0,0.1,-3\n", 1, "disk_iops out of range (got -3, expected >= 0)"),
])
def test_native_bad_rows(tmp_path, text, row, message):
    f = _csv(tmp_path, text)
    with pytest.raises(TraceError) as exc:
        read_native(f)
    assert str(exc.value) == f"{f}: row {row}: {message}"


def test_native_bad_columns(tmp_path):
    f = _csv(tmp_path, "time_s,cpu_util,cpu_pct\n0,0.1,3\n")
    with pytest.raises(TraceError, match=r"unknown column 'cpu_pct' \(expected time_s, cpu_util, optional vm"):
        read_native(f)
    f = _csv(tmp_path, "time_s,util\n0,0.1\n", "b.csv")
    with pytest.raises(TraceError, match="unknown column 'util'"):
        read_native(f)
    f = _csv(tmp_path, "time_s\n0\n", "c.csv")
    with pytest.raises(TraceError, match=r"required column 'cpu_util' is missing \(got columns: time_s\)"):
        read_native(f)


def test_bad_trace_in_a_scenario_names_group_file_and_row(tiny, write_yaml, tmp_path):
    _csv(tmp_path, "time_s,cpu_util\n0,0.1\n600,0.2\n300,0.3\n", "web.csv")
    tiny["vms"][0]["trace"] = {"native": "web.csv"}  # relative to the scenario file
    f = write_yaml(tiny)
    with pytest.raises(ScenarioError) as exc:
        consolidate.validate(f)
    assert [str(p) for p in exc.value.problems] == [
        f"{f}: vms.0.trace.native: {tmp_path / 'web.csv'}: row 3: time_s not increasing (got 300 after 600, "
        "expected sorted strictly increasing times)"]


def test_short_trace_needs_repeat(tiny, write_yaml, tmp_path):
    _csv(tmp_path, "time_s,cpu_util\n0,0.2\n600,0.4\n", "short.csv")  # covers 1200 s of 3600
    tiny["vms"][0]["trace"] = {"native": "short.csv"}
    f = write_yaml(tiny)
    with pytest.raises(ScenarioError, match=r"trace covers 1200 s \(2 samples of 600 s\) but duration_s is 3600"):
        consolidate.validate(f)
    tiny["vms"][0]["trace"]["repeat"] = True
    res = consolidate.run(write_yaml(tiny))
    # 300 s grid on a 600 s trace: each sample holds for two intervals, then the trace loops
    util = res.vm_intervals["cpu_demand_mips"].to_numpy() / 1860
    np.testing.assert_allclose(util, [0.2, 0.2, 0.4, 0.4] * 3, rtol=1e-6)


def test_resample_preserves_work_both_ways():
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 1, size=(3, 24))
    coarse = resample(v, 300, 900, 8)  # 3 samples per interval: average
    np.testing.assert_allclose(coarse, v.reshape(3, 8, 3).mean(axis=2))
    fine = resample(v, 300, 100, 72)  # each sample holds for 3 intervals
    np.testing.assert_allclose(fine, np.repeat(v, 3, axis=1))
    odd = resample(v, 300, 450, 16)  # misaligned grid: total work still equal
    np.testing.assert_allclose(odd.sum(axis=1) * 450, v.sum(axis=1) * 300)


def _ordered(tiny, order: str) -> dict:
    tiny["hosts"][0]["count"] = 4
    tiny["vms"] = [{"name": "day", "type": "small", "trace": {"planetlab": "builtin:20110303", "order": order}}]
    return tiny


def test_planetlab_order_file_gives_vms_their_traces_in_its_order(tiny, write_yaml):
    names, pct = planetlab.load_planetlab("builtin:20110303")
    picked = [names[500], names[3], names[1000]]  # as `ls -U` might list them: not sorted
    folder = write_yaml(_ordered(tiny, "order.txt")).parent
    # a listing with the folder in front, a comment and a blank line
    (folder / "order.txt").write_text(f"# ls -U\n20110303/{picked[0]}\n\n{picked[1]}\n{picked[2]}\n")
    res = consolidate.run(folder / "scenario.yaml")
    assert res.vms["name"].tolist() == picked
    # each VM's first interval is its own file's first sample (300 s grid: one sample an interval)
    first = res.vm_intervals[res.vm_intervals["time_s"] == 0].sort_values("vm")
    np.testing.assert_allclose(first["cpu_demand_mips"].to_numpy(),
                               pct[[500, 3, 1000], 0].astype(np.float32) / 100 * 1860, rtol=1e-6)


@pytest.mark.parametrize("text,message", [
    ("nope\n", "row 1: no such trace in the day (got 'nope', expected a file name such as "),
    ("{a}\n{a}\n", "row 2: trace named twice (got '{a}', also on row 1)"),
    ("# nothing\n\n", "names no trace (expected one trace file name per line)"),
])
def test_planetlab_bad_order_file_is_a_one_line_error(tiny, write_yaml, text, message):
    a = planetlab.load_planetlab("builtin:20110303")[0][0]
    path = write_yaml(_ordered(tiny, "order.txt"))
    (path.parent / "order.txt").write_text(text.format(a=a))
    with pytest.raises(ScenarioError) as exc:
        consolidate.run(path)
    assert str(path.parent / "order.txt") in str(exc.value) and message.format(a=a) in str(exc.value)


def test_order_is_for_planetlab_traces_only(tiny):
    tiny["vms"][0]["trace"]["order"] = "order.txt"
    with pytest.raises(ScenarioError, match=r"vms\.0\.trace: order applies to planetlab traces only"):
        consolidate.load_scenario(tiny)
