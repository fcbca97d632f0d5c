"""Streaming results (issue 15): a run keeps per-VM and per-host rows only as running totals; a big vm_intervals or
host_intervals goes to Parquet row groups while the run goes. A streamed run and a held one of the same scenario
give the same frames and summary (bit for bit), the host-based summary equals the whole-array reductions it
replaced, a run folder takes the streamed files over, partitions that spooled merge the same, a killed streamed run
leaves no folder that looks complete, and host_intervals reports the memory the VMs use."""
from __future__ import annotations

import copy
import gc
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import consolidate
from consolidate import api
from consolidate.engine.record import PairwiseSum, StreamSum
from consolidate.engine.state import HostTable
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
        m.setattr(frames, "HOLD_HOST_INTERVAL_ROWS", 0)  # host_intervals in row groups of as many intervals
        m.setattr(frames, "HOST_ROW_GROUP_ROWS", intervals_per_group * len(HostTable.from_scenario(sc)))
        m.setattr(frames, "HOLD_MIGRATION_ROWS", 0)  # migrations in row groups of 1,000
        m.setattr(frames, "MIGRATION_PIECE_ROWS", 1000)
        m.setattr(frames, "ROW_GROUP_ROWS", intervals_per_group * n_vm)
        return consolidate.run(sc, run_id="same", **kw)


@pytest.mark.parametrize("case", list(CASES))
def test_a_streamed_run_equals_the_held_run(case, tmp_path, monkeypatch):
    sc = CASES[case](tmp_path)
    held = consolidate.run(sc, run_id="same")
    streamed = _streamed(monkeypatch, sc, intervals_per_group=7, spool_dir=tmp_path / "spool")
    assert {"vm_intervals", "host_intervals"} <= set(streamed.spooled) and not held.spooled
    assert streamed.__dict__.get("host_intervals") is None  # not read until asked for
    path = streamed.spooled["vm_intervals"]
    assert path.parent.parent == tmp_path / "spool" and path.parent.name.startswith(".consolidate-spool-")
    groups = pq.ParquetFile(path).num_row_groups
    assert groups == -(-sc.n_intervals // 7) > 1  # one row group per 7 intervals, the last one shorter
    assert pq.ParquetFile(streamed.spooled["host_intervals"]).num_row_groups == groups  # and for the hosts
    assert streamed.frame_shape("vm_intervals") == held.vm_intervals.shape  # from the file's metadata
    assert streamed.__dict__.get("vm_intervals") is None  # not read until asked for
    if case == "consolidation":
        # the report reads the spooled frames a row group at a time: the same page (plots, migrations queued)
        pages = [(consolidate.write(r, tmp_path / n) / "index.html").read_text() for n, r in
                 (("held", held), ("streamed", streamed))]
        assert all(streamed.__dict__.get(k) is None for k in ("host_intervals", "migrations"))
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
        # the migrations went to the file as they ended, 1,000 a row group; the summary's sums are the frame's
        n = held.summary.migrations.iloc[0]
        assert n == len(held.migrations) > 2000 and "migrations" in streamed.spooled
        assert pq.ParquetFile(streamed.spooled["migrations"]).num_row_groups == -(-n // 1000)
        assert held.summary.migration_bytes.iloc[0] == float(held.migrations.bytes.sum()) > 0
        wall = re.compile(r"<code>wall_s</code></td><td class=num>[^<]*")  # the one figure that differs
        assert wall.sub("", pages[0].replace("held", "streamed")) == wall.sub("", pages[1])
        assert 'alt="migrations"' in pages[1] and 'alt="host utilisation"' in pages[1]  # the plots drawn from them


def test_a_held_migrations_frame_built_in_pieces_is_the_frame_of_all_records(monkeypatch):
    sc = CASES["consolidation"](None)
    whole = consolidate.run(sc, run_id="same")
    monkeypatch.setattr(frames, "MIGRATION_PIECE_ROWS", 333)  # records become rows 333 at a time, still held
    pieces = consolidate.run(sc, run_id="same")
    assert not pieces.spooled and len(pieces.migrations) > 3 * 333
    pd.testing.assert_frame_equal(pieces.migrations, whole.migrations, check_exact=True)
    pd.testing.assert_frame_equal(pieces.summary.drop(columns="wall_s"), whole.summary.drop(columns="wall_s"),
                                  check_exact=True)


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
    # host_intervals too, written while the run went and read back with pandas, categories and all
    assert streamed.__dict__.get("host_intervals") is None
    back = pd.read_parquet(b / "host_intervals.parquet")
    pd.testing.assert_frame_equal(back, held.host_intervals, check_exact=True)
    assert list(back.state.cat.categories) == ["off", "on"] and (back.state == "on").any()
    assert (a / "host_intervals.csv").read_bytes() == (b / "host_intervals.csv").read_bytes()
    ma, mb = (json.loads((d / "run.json").read_text()) for d in (a, b))
    assert mb["frames"] == ma["frames"] and mb["frames"]["vm_intervals"] == 72 * 1052
    assert mb["frames"]["host_intervals"] == 72 * 800
    # the report reads the spooled host rows a row group at a time: the same page as from the held frame
    pa_, pb = (consolidate.write(r, tmp_path / f"report-{n}") for n, r in (("held", held), ("streamed", streamed)))
    assert streamed.__dict__.get("host_intervals") is None
    page = lambda d: (d / "index.html").read_text().split("<h2 id=summary>")[0].replace(d.name, "")  # noqa: E731
    assert page(pa_) == page(pb) and "Headroom" in page(pb)
    # the spool folders go with their Results; the run folder keeps its own copies (hard links here)
    spools = [p.parent for p in streamed.spooled.values()]
    assert len(spools) == 2 and all(p.exists() for p in spools)  # no migrations in this case
    del streamed
    gc.collect()
    assert not any(p.exists() for p in spools) and (b / "vm_intervals.parquet").stat().st_size > 0
    assert (b / "host_intervals.parquet").stat().st_size > 0


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


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 129), (288, 800), (2016, 37), (5, 3000)])
def test_pairwise_sums_round_as_numpy_sums_the_whole_array(shape):
    # fed a row at a time, or in uneven pieces (the on hosts of each interval): numpy's bits for the whole array
    a = np.random.default_rng(shape[0]).random(shape) * 1e3
    rows, pieces = PairwiseSum(a.size), PairwiseSum(a.size)
    for r in a:
        rows.add(r)
    for piece in np.array_split(a.ravel(), 11):
        pieces.add(piece)
    assert rows.value == pieces.value == a.sum()
    masked = a[a > 500]
    on = PairwiseSum(masked.size)
    for r in a:
        on.add(r[r > 500])
    assert on.value == masked.sum() and on.value / masked.size == masked.mean()
    short = PairwiseSum(a.size + 1)
    short.add(a)
    with pytest.raises(ValueError, match="values fed"):
        short.value  # noqa: B018  (not all values fed: no sum yet)


class _KeepHosts:
    """A host sink (engine.record.HostSink) keeping every interval's rows: the (intervals x hosts) arrays a run
    used to hold, to check the running totals against the reductions of the whole arrays."""

    def __init__(self):
        self.rows = []

    def put(self, rows):
        self.rows.append(rows)

    def whole(self, name):
        return np.array([getattr(r, name) for r in self.rows])


@pytest.mark.parametrize("case", ["overhead", "consolidation", "failures"])
def test_the_host_summary_equals_the_whole_arrays_reductions(case, tmp_path):
    # the reductions the summary made of the whole (intervals x hosts) arrays before it streamed them
    sc = CASES[case](tmp_path)
    wl = build_workload(sc)
    hosts = HostTable.from_scenario(sc)
    om = api.OverheadModel(sc, wl, hosts.types) if sc.overhead_enabled else None
    keep = _KeepHosts()
    dc = api.Datacenter(sc, wl, hosts, api.initial_placement(sc, wl, hosts, om), om=om, host_rows=keep)
    if om is not None and dc.migrations is not None:
        om.port_load = dc.migrations.port_load
    rec = dc.run()
    s = consolidate.run(sc).summary.iloc[0]
    on, power = keep.whole("on"), keep.whole("power_w")
    served = keep.whole("served_mips")
    assert on.shape == (sc.n_intervals, len(hosts)) and on.any()
    active = on.sum(axis=1)
    assert s.hosts_active_mean == float(active.mean()) and s.hosts_active_max == int(active.max())
    assert s.energy_kwh == float((power * sc.interval_s / 3.6e6).sum())
    assert s.power_w_mean == float(power.sum(axis=1).mean()) and s.power_w_max == float(power.sum(axis=1).max())
    assert s.host_cpu_util_mean == float((served / hosts.capacity_mips)[on].mean())
    assert rec.host_totals.on_host_intervals == int(on.sum())
    if case == "consolidation":
        on_time = keep.whole("on_fraction").astype(np.float64)
        overloaded = keep.whole("overloaded")
        assert s.slatah == float(overloaded.sum(dtype=np.float64) / on_time.sum()) > 0
        assert s.host_on_s == float(on_time.sum() * sc.interval_s)
        assert s.host_overloaded_s == float(overloaded.sum(dtype=np.float64) * sc.interval_s)
        holds = np.vstack([keep.whole("vms") > 0,
                           np.bincount(rec.vm_host[rec.vm_host >= 0], minlength=len(hosts))[None, :] > 0])
        assert s.host_shutdowns == int((holds[:-1] & ~holds[1:]).sum()) > 0


def test_partitions_whose_host_intervals_are_written_as_they_run_merge_the_same(monkeypatch):
    from tests.test_partitions import APART, _same

    held = consolidate.run(APART, run_id="r")
    assert not held.spooled
    monkeypatch.setattr(frames, "HOLD_HOST_INTERVAL_ROWS", 50)  # every partition spools its host rows
    monkeypatch.setattr(frames, "HOST_ROW_GROUP_ROWS", 9)  # windows of intervals that differ between partitions
    streamed = consolidate.run(APART, run_id="r")
    # merged window by window from the partitions' files into a file of its own, never whole in memory
    assert set(streamed.spooled) == {"host_intervals"}
    assert pq.ParquetFile(streamed.spooled["host_intervals"]).metadata.num_row_groups > 3
    _same(held, streamed)


def test_a_run_that_cannot_write_its_spool_is_one_line_and_leaves_nothing(tmp_path):
    # 8,000 VMs over a day: a 9 MB workload grid, spooled beside the run folder; a file size limit of 2 MB
    # (RLIMIT_FSIZE, as a full disk) makes its write fail
    import resource

    scen = tmp_path / "big.yaml"
    subprocess.run([sys.executable, "-m", "consolidate", "generate", "--vms", "8000", "--hosts", "800",
                    "--duration-s", "86400", "--out", str(scen)], check=True, capture_output=True, timeout=60)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 2**20, 2 * 2**20))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing

    out = tmp_path / "runs" / "r"
    done = subprocess.run([sys.executable, "-m", "consolidate", "run", str(scen), "--quiet", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, preexec_fn=small_files)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == (f"{out.parent}: the run could not write its temporary files (File too large; "
                                   "expected room for the spooled workload and frames, README \"Outputs\"); "
                                   "nothing was written")
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
