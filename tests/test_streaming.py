"""Streaming results (issue 15): a run keeps per-VM rows only as running totals; a big vm_intervals goes to Parquet
row groups while the run goes. A streamed run and a held one of the same scenario give the same frames and summary
(bit for bit), a run folder takes the streamed file over, a killed streamed run leaves no folder that looks complete,
and host_intervals reports the memory the VMs use."""
from __future__ import annotations

import copy
import gc
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import consolidate
from consolidate.engine.record import StreamSum
from consolidate.results import frames
from consolidate.units import BYTES_PER_MB
from consolidate.validation import load_scenario
from consolidate.workload.build import build_workload
from tests.conftest import REPO, TINY

SCENARIOS = REPO / "scenarios"
RAW = REPO / "tests" / "data" / "bitbrains-raw"


def _failures() -> dict:
    """Four VMs on three hosts, host 0 fails at 1000 s and is back at 5000 s: restarts, downtime, lost work."""
    sc = copy.deepcopy(TINY)
    sc["duration_s"] = 7200
    sc["hosts"] = [{"type": "hp-proliant-ml110-g4", "count": 3}]
    sc["vms"][0].update(count=4, restart_s=60)
    sc["vms"][0]["trace"]["synthetic"].update(amplitude=0.3, period_s=3600, noise_std=0.1)
    return sc


CASES = {
    # the PlanetLab day with the overhead model, cut to 6 hours (72 intervals x 1,052 VMs)
    "overhead": lambda tmp: load_scenario(SCENARIOS / "planetlab-overhead.yaml", sets={"duration_s": 21600}),
    "consolidation": lambda tmp: load_scenario(SCENARIOS / "planetlab-consolidation.yaml",
                                               sets={"duration_s": 21600}),
    "lifecycles": lambda tmp: load_scenario(SCENARIOS / "azure.yaml"),
    "failures": lambda tmp: (tmp.joinpath("failures.csv").write_text("target,index,start_s,end_s\nhost,0,1000,5000\n"),
                             load_scenario({**_failures(), "failures": {"trace": "failures.csv"}}, base_dir=tmp))[1],
}


def _streamed(monkeypatch, sc, intervals_per_group: int, **kw):
    """Run `sc` with vm_intervals written to Parquet as the run goes, `intervals_per_group` intervals a row group."""
    n_vm = len(build_workload(sc).vms)
    with monkeypatch.context() as m:
        m.setattr(frames, "HOLD_VM_INTERVAL_ROWS", 0)
        m.setattr(frames, "ROW_GROUP_ROWS", intervals_per_group * n_vm)
        return consolidate.run(sc, run_id="same", **kw)


@pytest.mark.parametrize("case", list(CASES))
def test_a_streamed_run_equals_the_held_run(case, tmp_path, monkeypatch):
    sc = CASES[case](tmp_path)
    held = consolidate.run(sc, run_id="same")
    streamed = _streamed(monkeypatch, sc, intervals_per_group=7, spool_dir=tmp_path / "spool")
    assert "vm_intervals" in streamed.spooled and "vm_intervals" not in held.spooled
    path = streamed.spooled["vm_intervals"]
    assert path.parent.parent == tmp_path / "spool" and path.parent.name.startswith(".consolidate-spool-")
    groups = pq.ParquetFile(path).num_row_groups
    assert groups == -(-sc.n_intervals // 7) > 1  # one row group per 7 intervals, the last one shorter
    assert streamed.frame_shape("vm_intervals") == held.vm_intervals.shape  # from the file's metadata
    assert streamed.__dict__.get("vm_intervals") is None  # not read until asked for
    assert set(streamed.frames) == set(held.frames)
    for name, df in held.frames.items():
        other = streamed.frames[name]
        if name == "summary":
            df, other = df.drop(columns="wall_s"), other.drop(columns="wall_s")
        pd.testing.assert_frame_equal(other, df, check_exact=True)
    if case == "lifecycles":
        assert held.summary.vms_arrived.iloc[0] > 0 and "cpu_queued_mips" in held.vm_intervals
    if case == "failures":
        assert held.summary.vm_failures.iloc[0] > 0 and (held.failures.restart_host >= 0).all()
    if case == "consolidation":
        assert held.summary.migrations.iloc[0] > 0 and held.vm_intervals.cpu_migration_loss_mips.sum() > 0


def test_a_run_folder_takes_the_streamed_file_over(tmp_path, monkeypatch):
    sc = CASES["overhead"](tmp_path)
    held = consolidate.run(sc, run_id="same")
    streamed = _streamed(monkeypatch, sc, intervals_per_group=10, spool_dir=tmp_path)
    a = held.write(tmp_path / "held", csv=True)
    b = streamed.write(tmp_path / "streamed", csv=True)
    assert streamed.__dict__.get("vm_intervals") is None  # written without reading it into memory
    # the same rows, in row groups of 10 intervals, and the same CSV bytes (written row group by row group)
    pd.testing.assert_frame_equal(pd.read_parquet(b / "vm_intervals.parquet"), held.vm_intervals, check_exact=True)
    assert pq.ParquetFile(b / "vm_intervals.parquet").num_row_groups == 8
    assert (a / "vm_intervals.csv").read_bytes() == (b / "vm_intervals.csv").read_bytes()
    ma, mb = (json.loads((d / "run.json").read_text()) for d in (a, b))
    assert mb["frames"] == ma["frames"] and mb["frames"]["vm_intervals"] == 72 * 1052
    # the spool folder goes with its Results; the run folder keeps its own copy (a hard link here)
    spool = streamed.spooled["vm_intervals"].parent
    assert spool.exists()
    del streamed
    gc.collect()
    assert not spool.exists() and (b / "vm_intervals.parquet").stat().st_size > 0


def test_a_pickled_streamed_run_carries_its_frames(tmp_path, monkeypatch):
    # what a worker process sends back (partitioned runs): the frames themselves, not a path to its spool
    sc = CASES["lifecycles"](tmp_path)
    held = consolidate.run(sc, run_id="same")
    copy_ = pickle.loads(pickle.dumps(_streamed(monkeypatch, sc, intervals_per_group=50, spool_dir=tmp_path)))
    gc.collect()
    assert copy_.spooled == {} and not list(tmp_path.glob(".consolidate-spool-*"))
    pd.testing.assert_frame_equal(copy_.vm_intervals, held.vm_intervals, check_exact=True)
    out = copy_.write(tmp_path / "out")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "vm_intervals.parquet"), held.vm_intervals, check_exact=True)


def test_a_run_that_fails_leaves_no_spool(tmp_path, monkeypatch):
    sc = CASES["consolidation"](tmp_path)

    def stop(done, total):
        if done == 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        _streamed(monkeypatch, sc, intervals_per_group=4, spool_dir=tmp_path, progress=stop)
    del info
    gc.collect()
    assert not list(tmp_path.glob(".consolidate-spool-*"))


def test_a_killed_streamed_run_leaves_no_folder_that_looks_complete(tmp_path):
    # the CLI in a real process, vm_intervals streamed (beside the run folder: `consolidate run` spools there, not
    # in TMPDIR); kill -9 once row groups are on disk
    spool_parent = tmp_path / "reports"
    elsewhere = tmp_path / "tmp"
    elsewhere.mkdir()
    code = ("import sys; from consolidate.results import frames; frames.HOLD_VM_INTERVAL_ROWS = 0; "
            "frames.ROW_GROUP_ROWS = 2 * 1052; from consolidate.cli import app; "
            "sys.argv = ['consolidate'] + sys.argv[1:]; app()")
    out = tmp_path / "reports" / "run"
    proc = subprocess.Popen([sys.executable, "-c", code, "run", str(SCENARIOS / "planetlab-overhead.yaml"),
                             "--out", str(out), "--quiet"], env={**os.environ, "TMPDIR": str(elsewhere)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    parts = []
    while time.monotonic() < deadline and proc.poll() is None:
        parts = [p for p in spool_parent.glob(".consolidate-spool-*/vm_intervals.parquet") if p.stat().st_size > 0]
        if parts:
            break
        time.sleep(0.05)
    assert parts, proc.communicate()[1].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert not [p for p in tmp_path.rglob("run.json")]
    # what is left is a hidden spool folder with part of a Parquet file and nothing else
    left = [p for p in spool_parent.iterdir()]
    assert len(left) == 1 and left[0].name.startswith(".") and [q.name for q in left[0].iterdir()] == \
        ["vm_intervals.parquet"]
    assert not list(elsewhere.iterdir())  # nothing spooled to the temporary folder


def test_host_memory_used_is_the_traces_used_memory_of_the_vms_there():
    data = {"name": "mem", "duration_s": 86400, "interval_s": 300,
            "host_types": [{"name": "big", "cores": 16, "mips_per_core": 2600, "memory_mb": 262144,
                            "power_idle_w": 100, "power_max_w": 300}],
            "hosts": [{"type": "big", "count": 2}],
            "vm_types": [{"name": "one", "vcpus": 1, "mips_per_vcpu": 2600, "memory_mb": 2048}],
            "vms": [{"name": "bb", "type": "one", "trace": {"bitbrains": str(RAW)}},
                    {"name": "flat", "count": 2, "type": "one", "trace": {"synthetic": {"mean": 0.2}}}]}
    sc = load_scenario(data)
    wl = build_workload(sc)
    used = wl.extra["mem_used_bytes"]
    bb = np.flatnonzero(~np.isnan(used).all(axis=0))
    assert len(bb) == 1 and np.isnan(used[:, np.setdiff1d(np.arange(3), bb)]).all()
    res = consolidate.run(sc)
    vi, hi = res.vm_intervals, res.host_intervals
    # each VM's MiB: the bitbrains VM's Memory usage [KB] (150-560 MiB), the synthetic ones their 2,048 MiB
    per_vm = np.where(np.isnan(used), 2048.0, np.minimum(2048.0, used.astype(np.float64) / BYTES_PER_MB)).ravel()
    on = vi.host.to_numpy() >= 0
    expect = np.bincount(vi.host[on] + 2 * (vi.time_s[on] // 300).astype(int), weights=per_vm[on],
                         minlength=2 * sc.n_intervals)
    np.testing.assert_allclose(hi.memory_used_mb.to_numpy(), expect, rtol=1e-12)
    # the bitbrains VM counts the memory its trace uses (150-560 MiB), not its 2,048 MiB provisioned
    total = hi.groupby("time_s").memory_used_mb.sum()
    bb_mib = used[:, bb[0]].astype(np.float64) / BYTES_PER_MB
    np.testing.assert_allclose(total.to_numpy(), 2 * 2048 + bb_mib, rtol=1e-12)
    assert total.max() < 2 * 2048 + 1024 and total.max() - total.min() > 100
    # without a used-memory trace it is the provisioned memory of the VMs on the host
    flat = consolidate.run({**data, "vms": data["vms"][1:]})
    assert (flat.host_intervals.groupby("time_s").memory_used_mb.sum() == 2 * 2048).all()


@pytest.mark.parametrize("shape", [(1, 1), (3000, 5), (3, 8191), (20, 8192), (7, 8193), (288, 1052), (40, 30000)])
def test_streamed_sums_round_as_numpy_sums_the_whole_array(shape):
    a = (np.random.default_rng(shape[1]).random(shape) * 1e4).astype(np.float32)
    s = StreamSum()
    for row in a:
        s.add(row)
    assert s.value == a.sum(dtype=np.float64)  # the same bits, so summaries did not change
