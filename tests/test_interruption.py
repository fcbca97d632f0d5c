"""Sweeps under interruption, failure and change: Ctrl-C cancels the queue, ends the workers and exits 130 within
seconds saying what finished; workers die with their parent even on SIGKILL; a sweep whose runs fail exits 1;
--resume reuses a result only for the same resolved scenario and package version. Real processes and signals."""
from __future__ import annotations

import copy
import signal
import subprocess
import sys
import time

import psutil
import yaml

from consolidate.sweep.run import run_sweep
from tests.conftest import REPO, TINY

CLI = [sys.executable, "-m", "consolidate"]
SLOW_SWEEP = REPO / "scenarios" / "sweeps" / "planetlab-policies.yaml"  # 8 runs of a few seconds each


def _gone(pids, within_s: float) -> bool:
    """Whether every pid has exited (a zombie waiting for its new parent to reap it counts as exited)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _start_sweep(tmp_path):
    p = subprocess.Popen([*CLI, "sweep", str(SLOW_SWEEP), "--workers", "2", "--out", str(tmp_path / "sw")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    workers = []
    while time.monotonic() < deadline and len(workers) < 2:  # wait until both workers run
        time.sleep(0.2)
        # forked pool workers share the parent's command line (multiprocessing's resource tracker does not)
        workers = [c.pid for c in psutil.Process(p.pid).children() if c.cmdline() == psutil.Process(p.pid).cmdline()]
    assert len(workers) == 2
    return p, workers


def test_ctrl_c_cancels_the_queue_ends_the_workers_and_exits_130(tmp_path):
    p, workers = _start_sweep(tmp_path)
    time.sleep(5)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert time.monotonic() - t0 < 5
    assert p.returncode == 130
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and " of 8 runs finished (0 failed), kept in " in last
    assert last.endswith("--resume runs the other " + str(8 - int(last.split()[1])))
    assert "Traceback" not in err
    assert _gone(workers, 5)
    # nothing that looks like a finished sweep is left: no table, no page
    assert not (tmp_path / "sw" / "index.html").exists() and not (tmp_path / "sw" / "sweep.csv").exists()


def test_workers_end_when_the_parent_is_killed(tmp_path):
    p, workers = _start_sweep(tmp_path)
    p.kill()
    p.wait(timeout=10)
    assert _gone(workers, 5)


def _sweep_file(tmp_path, sweep: dict, **extra):
    data = copy.deepcopy(TINY)
    data.update(extra)
    data["sweep"] = sweep
    f = tmp_path / "sweep.yaml"
    f.write_text(yaml.safe_dump(data))
    return f


def test_a_sweep_whose_runs_fail_exits_1_and_says_so(tmp_path):
    # one host of 4,096 MB cannot take 5 VMs of 1,024 MB: every run fails at placement, after validation
    f = _sweep_file(tmp_path, {"grid": {"vms.0.count": [5, 6]}})
    r = subprocess.run([*CLI, "sweep", str(f), "--workers", "1", "--out", str(tmp_path / "o")], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1
    assert r.stdout.startswith("2 runs (2 run now, 2 failed): ")
    assert r.stderr.strip().startswith("2 of 2 runs failed; the first: <dict>: vms.0: VM 'flat-4' (type small) fits no host")


def test_resume_reruns_a_run_whose_scenario_or_version_changed(tmp_path, monkeypatch):
    out = tmp_path / "o"
    f = _sweep_file(tmp_path, {"grid": {"vms.0.count": [1, 2]}})
    first = run_sweep(f, out=out, workers=1)
    assert len(first.ran) == 2
    assert run_sweep(f, out=out, workers=1, resume=True).ran == []  # same scenario: reused
    # a field the sweep does not vary changes: the old results are not this scenario's
    f = _sweep_file(tmp_path, {"grid": {"vms.0.count": [1, 2]}}, power_off_idle_hosts=False)
    again = run_sweep(f, out=out, workers=1, resume=True)
    assert len(again.ran) == 2
    assert set(again.table.run_key) == set(again.ran) and not set(again.ran) & set(first.ran)
    # another package version: nothing reused either
    monkeypatch.setattr("consolidate.api.version", lambda: "99.0")
    assert len(run_sweep(f, out=out, workers=1, resume=True).ran) == 2
