"""Streaming inputs (issue 15 item 2): a big workload grid is spooled to a temporary file while the groups are
read, and the run reads it a window of intervals at a time. A run with the spooled grid equals the run with the
grid held in memory, bit for bit (frames and summary); synthetic groups give the same values whatever the block
size they are made in; the spool file is gone after the run and after a failed run."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import consolidate
from consolidate import rng
from consolidate.errors import PlacementError
from consolidate.validation import load_scenario
from consolidate.workload import grid
from consolidate.workload.build import build_workload
from consolidate.workload.grid import SpooledGrid
from tests.conftest import REPO, TINY

SCENARIOS = REPO / "scenarios"
RAW = REPO / "tests" / "data" / "bitbrains-raw"


def _memory() -> dict:
    """30 replays of a Bitbrains VM (its trace gives mem_used_bytes) beside synthetic VMs (which give none),
    packed by used memory, consolidated with pre-copy migrations whose zero pages come from the trace's used
    memory and whose dirty pages from CPU utilisation, overhead model on."""
    return {"name": "mem", "seed": 3, "duration_s": 43200, "interval_s": 300,
            "host_types": [{"name": "big", "cores": 3, "mips_per_core": 2600, "memory_mb": 16384,
                            "power_idle_w": 100, "power_max_w": 300, "cpu": "intel-icelake-sp"}],
            "hosts": [{"type": "big", "count": 30}],
            "vm_types": [{"name": "one", "vcpus": 1, "mips_per_vcpu": 2600, "memory_mb": 2048}],
            "vms": [{"name": "bb", "count": 30, "type": "one", "trace": {"bitbrains": str(RAW)}},
                    {"name": "flat", "count": 12, "type": "one",
                     "trace": {"synthetic": {"mean": 0.4, "amplitude": 0.3, "period_s": 21600, "noise_std": 0.1}}}],
            "memory_basis": "used", "overhead": {"enabled": True},
            "consolidation": {"policy": "thr-mmt-0.8"},
            "migration": {"model": "precopy", "costs": "physical"}}


CASES = {
    # two synthetic groups (random types drawn after their values), overhead model on, THR-MMT migrations
    "synthetic": lambda: load_scenario(SCENARIOS / "synthetic-diurnal.yaml",
                                       sets={"duration_s": 86400, "overhead.enabled": True,
                                             "host_types.0.cpu": "intel-icelake-sp",
                                             "consolidation.policy": "thr-mmt-0.8"}),
    # a native CSV file replayed 25 times, whose packet-rate columns the overhead model prices
    "file trace": lambda: load_scenario(SCENARIOS / "native-trace.yaml", sets={"overhead.enabled": True}),
    # VMs that arrive and leave (Azure V1 layout), overhead model on, placed by their peak rate while alive
    "lifecycles": lambda: load_scenario(SCENARIOS / "azure.yaml", sets={
        "overhead.enabled": True, "host_types.0.cpu": "intel-skylake-sp", "placement.cpu_basis": "peak_demand"}),
    # ... and by their rate while alive in the interval they arrive in
    "lifecycles by interval": lambda: load_scenario(SCENARIOS / "azure.yaml",
                                                    sets={"placement.cpu_basis": "initial_demand"}),
    # the trace's used memory: packing, host memory, migrations' zero pages; NaN for the synthetic VMs
    "memory": lambda: load_scenario(_memory()),
    # CloudSim compatibility reads the next interval's row beside this one's
    "cloudsim": lambda: load_scenario(SCENARIOS / "planetlab-consolidation.yaml", sets={"duration_s": 21600}),
}


@pytest.fixture
def spooled(monkeypatch):
    """Every grid spooled, made in blocks of a few VMs and read in windows of 2 intervals (the reads cross
    block and window edges everywhere)."""
    monkeypatch.setattr(grid, "HOLD_VALUES", 0)
    monkeypatch.setattr(grid, "BLOCK_BYTES", 7 * 8 * 288)  # 7 VMs a block at 288 intervals
    monkeypatch.setattr(grid, "WINDOW_BYTES", 1)


def _spool_fds(folder: Path) -> list[str]:
    """Open descriptors of this process on files in `folder` (an unnamed spool shows as 'folder/#N (deleted)')."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder) + os.sep):
            out.append(target)
    return out


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc")


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_with_the_spooled_grid_equals_the_held_run(case, tmp_path, monkeypatch, spooled):
    sc = CASES[case]()
    with monkeypatch.context() as m:
        m.setattr(grid, "HOLD_VALUES", 10**12)
        held = consolidate.run(sc, run_id="same")
        wl_held = build_workload(sc)
    wl = build_workload(sc, tmp_path)
    assert wl.spooled and not wl_held.spooled and isinstance(wl_held.cpu_util, np.ndarray)
    assert sorted(wl.extra) == sorted(wl_held.extra)
    # the same grids, row by row and as ranges of rows, and the same per-VM peaks
    for name, a, b in [("cpu_util", wl.cpu_util, wl_held.cpu_util)] + [(c, wl.extra[c], wl_held.extra[c])
                                                                       for c in wl.extra]:
        assert isinstance(a, SpooledGrid) and a.shape == b.shape, name
        for k in [0, 1, len(b) - 1, len(b) // 2, 2, 3]:
            np.testing.assert_array_equal(a[k], b[k], err_msg=name)
        np.testing.assert_array_equal(a[3:len(b) - 2], b[3:len(b) - 2], err_msg=name)
        np.testing.assert_array_equal(a.peak, grid.peak(b), err_msg=name)
    pd.testing.assert_frame_equal(wl.vms, wl_held.vms, check_exact=True)
    wl.close()

    res = consolidate.run(sc, run_id="same", spool_dir=tmp_path)
    assert set(res.frames) == set(held.frames)
    for name, df in held.frames.items():
        other = res.frames[name]
        if name == "summary":
            df, other = df.drop(columns="wall_s"), other.drop(columns="wall_s")
        pd.testing.assert_frame_equal(other, df, check_exact=True, obj=name)
    s = held.summary.iloc[0]
    # the cases do what they are there for
    if case in ("synthetic", "memory", "cloudsim"):
        assert s.migrations > 0
    if case.startswith("lifecycles"):
        assert s.vms_arrived > 0
    if case == "file trace":
        assert sorted(wl_held.extra) == ["net_rx_pps", "net_tx_pps"] and sc.overhead_enabled
    if case == "memory":
        used = wl_held.extra["mem_used_bytes"]
        assert np.isnan(used[:, 30:]).all() and not np.isnan(used[:, :30]).all()


@pytest.mark.parametrize("block_vms", [1, 3, 200])
def test_synthetic_values_and_types_do_not_depend_on_the_block_size(block_vms, monkeypatch):
    # the noise is drawn a block of VMs at a time, VM-major: the same draws as the whole group's, and the type
    # assignment after them draws the same too
    sc = load_scenario(SCENARIOS / "synthetic-diurnal.yaml")
    whole = build_workload(sc)
    monkeypatch.setattr(grid, "BLOCK_BYTES", block_vms * 8 * sc.n_intervals)
    assert grid.block_vms(sc.n_intervals) == block_vms
    blocks = build_workload(sc)
    assert whole.cpu_util.dtype == np.float32 and whole.cpu_util.shape == (288, 300)
    assert whole.cpu_util.tobytes() == blocks.cpu_util.tobytes()
    pd.testing.assert_frame_equal(blocks.vms, whole.vms, check_exact=True)
    assert whole.vms.vm_type.nunique() == 2  # web's random types: the draws after the values matter
    # and the values are the sine and noise they always were: the whole group drawn at once, by hand
    g = sc.vms[0].trace.synthetic
    gen = rng.stream(sc.seed, rng.WORKLOAD, 0)
    t = (np.arange(288) + 0.5) * 600
    phase = gen.uniform(0, 2 * np.pi, size=(200, 1))
    util = g.mean + g.amplitude * np.sin(2 * np.pi * t[None, :] / g.period_s + phase)
    util = np.clip(util + gen.normal(0.0, g.noise_std, size=util.shape), 0.0, 1.0)
    assert util.T.astype(np.float32).tobytes() == np.ascontiguousarray(whole.cpu_util[:, :200]).tobytes()


def test_a_small_grid_is_held_and_a_big_one_spooled(tmp_path):
    small = build_workload(load_scenario(copy.deepcopy(TINY)), tmp_path)
    assert not small.spooled and isinstance(small.cpu_util, np.ndarray) and small.cpu_util.shape == (12, 1)
    sc = load_scenario(SCENARIOS / "synthetic-diurnal.yaml", sets={"vms.1.count": 7000})
    big = build_workload(sc, tmp_path)  # 7,200 VMs x 288 intervals: 2,073,600 values, above HOLD_VALUES
    assert 7200 * 288 > grid.HOLD_VALUES and big.spooled and big.cpu_util.shape == (288, 7200)
    assert not list(tmp_path.iterdir())  # the spool has no name in the folder
    row = big.cpu_util[5]
    assert row.dtype == np.float32 and row.shape == (7200,) and not row.flags.writeable
    assert 0.0 <= row.min() and row.max() <= 1.0 and big.cpu_util[5, 7199] == row[7199]
    with pytest.raises(TypeError, match="read by interval"):
        big.cpu_util[:, 3]
    with pytest.raises(IndexError, match="outside the grid's 288 intervals"):
        big.cpu_util[288]
    big.close()
    assert big.cpu_util.closed


@needs_proc
def test_the_spool_is_freed_after_the_run(tmp_path, spooled):
    sc = CASES["lifecycles"]()
    seen = []
    res = consolidate.run(sc, spool_dir=tmp_path, progress=lambda done, total: seen.append(_spool_fds(tmp_path)))
    # one unnamed file in the spool folder while the run goes, nothing once it is done
    assert all(len(s) == 1 and s[0].endswith("(deleted)") for s in seen) and len(seen) == sc.n_intervals
    assert _spool_fds(tmp_path) == [] and not list(tmp_path.iterdir())
    assert res.summary.vms_arrived.iloc[0] > 0


@needs_proc
def test_the_spool_is_freed_after_a_failed_run(tmp_path, spooled):
    sc = CASES["synthetic"]()

    def stop(done, total):
        assert len(_spool_fds(tmp_path)) == 1
        if done == 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        consolidate.run(sc, spool_dir=tmp_path, progress=stop)
    assert _spool_fds(tmp_path) == []  # closed by the run itself, not left to the garbage collector
    # a run that fails before its clock starts (a VM fits no host) frees it too
    data = copy.deepcopy(TINY)
    data["vm_types"][0]["memory_mb"] = 10**7
    with pytest.raises(PlacementError):
        consolidate.run(data, spool_dir=tmp_path)
    assert _spool_fds(tmp_path) == [] and not list(tmp_path.iterdir())


def test_the_memory_estimate_no_longer_grows_with_vm_intervals_but_the_spool_must_fit_on_disk(tmp_path):
    from consolidate import api, limits
    from consolidate.errors import ResourceError

    # the grid is spooled: a month of 1,000,000 VMs is estimated as a day of them, plus its per-interval series
    day, month = (limits.run_bytes(1_000_000, 100_000, n, True) for n in (288, 288 * 30))
    assert month - day == 288 * 29 * limits.BYTES_PER_INTERVAL and month < 5 * limits.GIB
    # a trace group's own array while it is read still counts, 16 bytes per VM-interval
    assert limits.run_bytes(1000, 100, 8640, True, read_vms=1000) - limits.run_bytes(1000, 100, 8640, True) == \
        1000 * 8640 * limits.BYTES_PER_READ_VM_INTERVAL
    # a grid that would not fit on the spool's disk is refused before anything is read, naming the folder
    import shutil

    free = shutil.disk_usage(tmp_path).free
    n_vms = free // (4 * 288) + 1000
    sc = api.load_scenario({"name": "huge", "duration_s": 86400, "interval_s": 300,
                            "hosts": [{"type": "hp-proliant-ml110-g5", "count": 1}],
                            "vm_types": [{"name": "s", "vcpus": 1, "mips_per_vcpu": 100, "memory_mb": 64}],
                            "vms": [{"count": n_vms, "type": "s", "trace": {"synthetic": {"mean": 0.2}}}]})
    with pytest.raises(ResourceError, match=f"the workload grid does not fit on the disk at {tmp_path} "
                                            rf"\(got {n_vms:,} VMs over 288 intervals"):
        api.check_disk(sc, tmp_path)
    sc.vms[0].count = 7000  # 2,016,000 values, just spooled: 8 MB
    api.check_disk(sc, tmp_path)
