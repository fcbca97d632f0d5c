"""Partitioned runs (issue 15 item 4, test 6b): a scenario's independent partitions run in this process, on a
local pool and on a real Dask LocalCluster, and each as a scenario of its own, with the same frames and the
same summary bits; and a scenario whose partitions cannot interact gives the frames of one engine running it
whole."""
from __future__ import annotations

import copy
import io
import json
import signal
import subprocess
import sys
import tarfile
import time

import distributed
import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest
import yaml

import consolidate
from consolidate import partition
from consolidate.results import frames
from consolidate.results.metrics import SUMMARY_METRICS, combine_partitions, partition_rule
from consolidate.scenario import model, partitions
from tests.conftest import REPO

SYN = lambda mean, amp, noise: {"synthetic": {"mean": mean, "amplitude": amp, "noise_std": noise}}  # noqa: E731

# two zones, each with its own hosts and VMs; random VM types and noisy traces, so every VM draws from its
# group's stream; consolidation and the overhead model on, so migrations and per-reason overhead merge too
ZONES = {
    "name": "zones",
    "seed": 11,
    "duration_s": 14400,
    "interval_s": 300,
    "hosts": [{"type": "hp-proliant-ml110-g4", "count": 5, "partition": "east"},
              {"type": "hp-proliant-ml110-g5", "count": 4, "partition": "west"},
              {"type": "hp-proliant-ml110-g5", "count": 2, "partition": "east"}],
    "host_order": "interleaved",
    "vm_types": [{"name": "small", "vcpus": 1, "mips_per_vcpu": 1000, "memory_mb": 613},
                 {"name": "big", "vcpus": 1, "mips_per_vcpu": 2500, "memory_mb": 1740}],
    "vms": [{"name": "web", "count": 14, "partition": "east", "type": {"rule": "random", "types": ["small", "big"]},
             "trace": SYN(0.4, 0.3, 0.1)},
            {"name": "batch", "count": 10, "partition": "west", "type": {"rule": "random", "types": ["small", "big"]},
             "trace": SYN(0.6, 0.2, 0.15)},
            {"name": "db", "count": 4, "partition": "east", "type": "big", "trace": SYN(0.3, 0.0, 0.05)},
            # a trace file beside the scenario: workers read it by the scenario's path (relative to its folder)
            {"name": "logged", "partition": "west", "type": "small", "trace": {"native": "traces/logged.csv"}}],
    "consolidation": {"policy": "thr-mmt-0.8"},
    "overhead": {"enabled": True},
}


def _same(a, b, skip=("wall_s",)):
    """Every frame equal to the last bit (the summary without its wall time)."""
    assert a.frames.keys() == b.frames.keys()
    for k in a.frames:
        fa, fb = a.frames[k], b.frames[k]
        if k == "summary":
            fa, fb = fa.drop(columns=list(skip)), fb.drop(columns=list(skip))
        pd.testing.assert_frame_equal(fa, fb, check_exact=True, obj=k)


@pytest.fixture(scope="module")
def zones_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("zones") / "zones.yaml"
    path.write_text(yaml.safe_dump(ZONES, sort_keys=False))
    (path.parent / "traces").mkdir()
    t = np.arange(0, ZONES["duration_s"], 600)
    util = 0.5 + 0.4 * np.sin(np.arange(len(t)) / 3.0)
    pd.concat([pd.DataFrame({"vm": f"log-{i}", "time_s": t, "cpu_util": np.roll(util, i)}) for i in range(3)]) \
        .to_csv(path.parent / "traces" / "logged.csv", index=False)
    return path, consolidate.run(path, run_id="r1")


def test_a_partitioned_run_gives_the_same_bits_in_process_on_a_pool_and_on_dask(zones_run):
    path, inproc = zones_run
    s = inproc.summary.iloc[0]
    assert (s.hosts, s.vms, s.migrations > 0) == (11, 31, True)
    assert inproc.vms.name.iloc[-3:].tolist() == ["log-0", "log-1", "log-2"]
    one = partition.run(path, workers=1, run_id="r1")
    pool = partition.run(path, workers=2, run_id="r1")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        seen = []
        dask = partition.run(path, scheduler=cluster.scheduler_address, run_id="r1",
                             on_part=lambda name, done, total, wall: seen.append((name, total)))
        # the traces sent with the tasks instead of read from the scenario's folder
        shipped = partition.run(path, scheduler=cluster.scheduler_address, run_id="r1", ship_traces=True)
    assert sorted(seen) == [("east", 2), ("west", 2)]
    for other in (one, pool, dask, shipped):
        _same(inproc, other)


def test_the_partitions_run_alone_give_the_merged_frames_and_summary(zones_run):
    path, merged = zones_run
    sc = consolidate.load_scenario(path)
    parts = []
    for name in partitions.names(sc):
        # the scenario a partition runs as, written out beside the scenario (its trace paths are relative to it)
        # and run as any scenario file
        f = path.parent / f"{name}.yaml"
        f.write_text(yaml.safe_dump(partitions.sub_data(sc, name), sort_keys=False))
        alone = consolidate.run(f, run_id="r1")
        parts.append(alone)
        hosts = partitions.host_indices(sc, name)
        vm_ids = merged.vms.vm[merged.vms.group.isin(alone.vms.group.unique())].to_numpy()
        # the same VMs (names, types, sizes) on the same hosts, with the whole scenario's indices
        mine = merged.vms[merged.vms.vm.isin(vm_ids)].reset_index(drop=True)
        back = alone.vms.assign(vm=vm_ids, host=hosts[alone.vms.host], host_at_end=hosts[alone.vms.host_at_end])
        pd.testing.assert_frame_equal(mine, back, check_exact=True)
        hi = merged.host_intervals[merged.host_intervals.host.isin(hosts)].reset_index(drop=True)
        pd.testing.assert_frame_equal(hi, alone.host_intervals.assign(host=hosts[alone.host_intervals.host]),
                                      check_exact=True)
        vmi = merged.vm_intervals[merged.vm_intervals.vm.isin(vm_ids)].reset_index(drop=True)
        pd.testing.assert_frame_equal(vmi, alone.vm_intervals.assign(vm=vm_ids[alone.vm_intervals.vm],
                                                                     host=hosts[alone.vm_intervals.host]),
                                      check_exact=True)
    rows = [p.summary.iloc[0] for p in parts]
    s = merged.summary.iloc[0]
    for col in ("energy_kwh", "cpu_demand_mips_h", "cpu_unserved_mips_h", "migrations", "hosts_active_mean",
                "overhead_mips_h", "exits_per_s_hlt", "host_on_s"):
        assert s[col] == rows[0][col] + rows[1][col], col  # exactly: summed in partition order
    assert s.sla_unserved_fraction == s.cpu_unserved_mips_h / s.cpu_effective_mips_h
    assert s.slatah == s.host_overloaded_s / s.host_on_s
    assert s.host_cpu_util_mean == combine_partitions("host_cpu_util_mean", rows)
    # a maximum over time of a datacenter total is not the sum of the partitions' maxima
    on = merged.host_intervals.assign(on=merged.host_intervals.state == "on").groupby("time_s").on.sum()
    assert s.hosts_active_max == on.max() <= rows[0].hosts_active_max + rows[1].hosts_active_max
    power = merged.host_intervals.groupby("time_s").power_w.sum()
    assert s.power_w_max == pytest.approx(power.max(), rel=1e-12)
    assert len(merged.migrations) == s.migrations
    mig = merged.migrations
    east = partitions.host_indices(sc, "east")
    assert (np.isin(mig.source, east) == np.isin(mig.destination, east)).all()  # never across partitions


# Partitions that cannot meet: east's VMs need more memory than a west host has, west's more CPU than an east
# host has, so one engine placing the whole datacenter keeps them apart too (static placement by nominal size)
APART = {
    "name": "apart",
    "seed": 3,
    "duration_s": 7200,
    "interval_s": 300,
    "host_types": [{"name": "bigmem", "cores": 2, "mips_per_core": 1860, "memory_mb": 16384,
                    "power_idle_w": 90, "power_max_w": 120},
                   {"name": "fastcpu", "cores": 8, "mips_per_core": 2500, "memory_mb": 4096,
                    "power_idle_w": 150, "power_max_w": 260}],
    "hosts": [{"type": "fastcpu", "count": 3, "partition": "b"}, {"type": "bigmem", "count": 4, "partition": "a"}],
    "vm_types": [{"name": "fat", "vcpus": 1, "mips_per_vcpu": 900, "memory_mb": 6000},
                 {"name": "wide", "vcpus": 4, "mips_per_vcpu": 2500, "memory_mb": 1024}],
    "placement": {"policy": "pabfd", "cpu_basis": "nominal"},
    "vms": [{"name": "wide", "count": 5, "partition": "b", "type": "wide", "trace": SYN(0.5, 0.3, 0.2)},
            {"name": "fat", "count": 6, "partition": "a", "type": "fat", "trace": SYN(0.7, 0.2, 0.1)},
            {"name": "late", "count": 2, "partition": "a", "type": "fat", "trace": SYN(0.3, 0.0, 0.1),
             "start_s": 1800, "end_s": 5400}],
}


def test_independent_partitions_equal_one_engine_running_the_whole_scenario():
    whole = copy.deepcopy(APART)
    for g in whole["hosts"] + whole["vms"]:
        del g["partition"]
    one = consolidate.run(whole, run_id="r")
    parted = consolidate.run(APART, run_id="r")
    assert set(one.vms.host[one.vms.group == "wide"]) <= {0, 1, 2}  # placement kept them apart by itself
    for k in ("vms", "hosts", "host_intervals", "vm_intervals", "datacenter"):
        pd.testing.assert_frame_equal(one.frames[k], parted.frames[k], check_exact=True, obj=k)
    a, b = one.summary.iloc[0], parted.summary.iloc[0]
    assert list(a.index) == list(b.index)
    differ = []
    for col in a.index.drop(["wall_s", "scenario_sha256"]):
        if isinstance(a[col], str):
            assert a[col] == b[col], col
        elif a[col] != b[col]:  # a sum over every VM at once against two partial sums: the last bits
            assert b[col] == pytest.approx(a[col], rel=1e-12, abs=1e-12), col
            differ.append(col)
    # counts, maxima and percentiles come out identical; only float sums may round differently
    assert not {"hosts", "vms", "vms_placed", "hosts_active_max", "vms_live_max", "vms_arrived",
                "queue_wait_s_p50"} & set(differ)
    assert b.vms_arrived == 2 and b.vms_live_max == 13


def test_metric_rules_for_partitions():
    for m in SUMMARY_METRICS:
        if m.combine == "difference":  # drain impacts: maintenance is refused with partitions
            continue
        rule, of = partition_rule(m.name)
        assert rule != "last", m.name  # a state at the end of a partition is a part of the whole's
    parts = [{"hosts_active_mean": 3.0, "host_cpu_util_mean": 0.5, "hosts": 4, "duration_s": 60.0},
             {"hosts_active_mean": 1.0, "host_cpu_util_mean": 0.9, "hosts": 2, "duration_s": 60.0}]
    assert combine_partitions("host_cpu_util_mean", parts) == pytest.approx(0.6)
    assert combine_partitions("hosts", parts) == 6 and combine_partitions("duration_s", parts) == 60.0
    with pytest.raises(ValueError, match="merged frames"):
        combine_partitions("hosts_active_max", parts)
    with pytest.raises(ValueError, match="disagree"):
        combine_partitions("duration_s", [{"duration_s": 60.0}, {"duration_s": 120.0}])


def test_bad_partitions_are_one_line_errors_with_exit_2(write_yaml):
    bad = copy.deepcopy(ZONES)
    bad["vms"] = bad["vms"][:3]  # west keeps no VM group once batch moves to north
    del bad["vms"][2]["partition"]
    bad["vms"][1]["partition"] = "north"
    bad["network"] = {"topology": "leaf-spine", "hosts_per_rack": 4}
    bad["maintenance"] = [{"at_s": 600, "hosts": [0]}]
    path = write_yaml(bad)
    done = subprocess.run([sys.executable, "-m", "consolidate", "validate", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    expect = [f"{path}: vms.2.partition: missing (got none", f"{path}: vms.1.partition: no hosts in this partition "
              "(got 'north'", f"{path}: hosts.1.partition: no VM group in this partition (got 'west'",
              f"{path}: network.topology: a topology that spans partitions (got leaf-spine",
              f"{path}: maintenance: not supported with partitions yet"]
    for e in expect:
        assert any(line.startswith(e) for line in lines), (e, lines)


def test_the_cli_runs_partitions_on_workers_and_says_when_each_finishes(zones_run, tmp_path):
    path, inproc = zones_run
    done = subprocess.run([sys.executable, "-m", "consolidate", "run", str(path), "--workers", "2", "--ship-traces",
                           "--format", "json", "--no-plots", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    want = json.loads(inproc.summary.to_json(orient="records"))[0]
    for k in ("run_id", "wall_s"):
        got.pop(k), want.pop(k)
    assert got == want
    assert "partition east finished" in done.stderr and "partition west finished" in done.stderr
    written = pd.read_parquet(tmp_path / "out" / "vm_intervals.parquet")
    pd.testing.assert_frame_equal(written, inproc.vm_intervals, check_exact=True)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_ctrl_c_ends_the_partitions_workers_exits_130_and_writes_nothing(tmp_path):
    # the shipped example: two PlanetLab days with consolidation, long enough to be interrupted
    p = subprocess.Popen([sys.executable, "-m", "consolidate", "run", str(REPO / "scenarios" / "partitioned.yaml"),
                          "--workers", "2", "--out", str(tmp_path / "out")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline, workers = time.monotonic() + 60, []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        me = psutil.Process(p.pid)
        workers = [c.pid for c in me.children() if c.cmdline() == me.cmdline()]  # forked pool workers
    assert len(workers) == 2
    time.sleep(1)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "interrupted: the run was stopped; nothing was written"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(map(_alive, workers)):
        time.sleep(0.1)
    assert not any(map(_alive, workers))
    assert not (tmp_path / "out").exists()


def test_shipped_traces_name_the_scenarios_own_files_and_have_a_limit(zones_run, tmp_path, monkeypatch):
    path, inproc = zones_run
    subs = dict(consolidate.api.partition_scenarios(consolidate.load_scenario(path)))
    members = {n: tarfile.open(fileobj=io.BytesIO(partition.pack_traces(sub, n))).getnames()
               for n, sub in subs.items()}
    assert members == {"east": [], "west": ["traces/logged.csv"]}  # only west reads a file
    shipped = partition.run(path, workers=2, run_id="r1", ship_traces=True)
    _same(inproc, shipped)
    assert shipped.vms.trace.iloc[-1] == str(path.parent / "traces" / "logged.csv")
    # a bad row in the file: the worker's error names the scenario's file, not the worker's copy
    bad = tmp_path / "zones"
    bad.mkdir()
    (bad / "zones.yaml").write_text(path.read_text())
    (bad / "traces").mkdir()
    (bad / "traces" / "logged.csv").write_text("vm,time_s,cpu_util\nlog-0,0,0.5\nlog-0,600,oops\n")
    with pytest.raises(consolidate.ScenarioError) as err:
        partition.run(bad / "zones.yaml", workers=2, ship_traces=True)
    assert str(bad / "traces" / "logged.csv") in str(err.value) and "consolidate-traces-" not in str(err.value)
    monkeypatch.setattr(partition, "SHIP_LIMIT_BYTES", 100)
    with pytest.raises(consolidate.ConsolidateError, match="partition 'west': traces too large to ship"):
        partition.run(path, workers=2, ship_traces=True)


def test_a_big_run_keeps_the_whole_runs_default_sample_of_vm_intervals(monkeypatch):
    # each partition under the size above which vm_intervals is sampled by default, the whole run above it: the
    # merged frame keeps the VMs one engine running the whole scenario keeps
    monkeypatch.setattr(model, "BIG_RUN_VM_INTERVALS", 200)  # APART: 13 VMs x 24 intervals = 312 rows
    monkeypatch.setattr(model, "DEFAULT_VM_SAMPLE", 4)
    whole = copy.deepcopy(APART)
    for g in whole["hosts"] + whole["vms"]:
        del g["partition"]
    one, parted = consolidate.run(whole, run_id="r"), consolidate.run(APART, run_id="r")
    assert parted.vm_intervals_detail == one.vm_intervals_detail == 4
    assert parted.vm_intervals.vm.nunique() == 4
    pd.testing.assert_frame_equal(one.vm_intervals, parted.vm_intervals, check_exact=True)


def test_partitions_whose_vm_intervals_are_written_as_they_run_merge_the_same(monkeypatch):
    held = consolidate.run(APART, run_id="r")
    monkeypatch.setattr(frames, "HOLD_VM_INTERVAL_ROWS", 100)  # every partition spools (120 and 192 rows)
    monkeypatch.setattr(frames, "ROW_GROUP_ROWS", 20)  # in windows of 4 and of 2 intervals: they do not line up
    sub = consolidate.api.partition_scenarios(consolidate.load_scenario(APART))[0][1]
    assert "vm_intervals" in consolidate.run(sub).spooled
    streamed = consolidate.run(APART, run_id="r")
    # merged window by window from the partitions' files into a file of its own, never whole in memory
    merged = streamed.spooled["vm_intervals"]
    assert pq.ParquetFile(merged).metadata.num_row_groups >= 6
    _same(held, streamed)
    _same(held, partition.run(APART, workers=2, run_id="r"))  # forked workers spool too
