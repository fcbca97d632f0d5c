"""Run folders are whole or absent: run.json manifest, unique run ids under concurrency, no mixing with an
earlier run, the destination checked before simulating, the summary kept when writing fails, and Ctrl-C,
SIGTERM or kill -9 leaving no folder that looks complete. Real subprocesses, real signals, real files."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from tests.conftest import REPO, TINY

CLI = [sys.executable, "-m", "consolidate"]


def _cli(*args, cwd=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120, **kw)


def _tiny(tmp_path: Path, **extra) -> Path:
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump({**TINY, **extra}))
    return f


def _complete_folders(root: Path) -> list[Path]:
    """Folders under root that look like finished runs (visible, with a manifest)."""
    return sorted(p.parent for p in root.rglob("run.json") if not any(part.startswith(".") for part in
                                                                        p.relative_to(root).parts))


def test_run_folder_has_a_manifest_listing_every_file(tmp_path):
    f = _tiny(tmp_path)
    out = tmp_path / "out"
    r = _cli("run", f, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["seed"] == 1 and manifest["scenario"] == "tiny"
    assert manifest["consolidate_version"] == _cli("--version").stdout.split()[-1]
    on_disk = {p.relative_to(out).as_posix(): p.stat().st_size for p in out.rglob("*")
               if p.is_file() and p.name != "run.json"}
    assert manifest["files"] == on_disk
    assert {"summary.parquet", "summary.csv", "index.html", "scenario.resolved.yaml"} <= set(on_disk)
    assert manifest["started_at"] <= manifest["ended_at"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_out_onto_a_folder_with_another_run_is_refused_before_simulating_and_force_replaces_it(tmp_path):
    f = _tiny(tmp_path)
    out = tmp_path / "out"
    assert _cli("run", f, "--out", out, "-q").returncode == 0
    (out / "stale.csv").write_text("from another run\n")
    first = json.loads((out / "run.json").read_text())["run_id"]
    r = _cli("run", f, "--out", out, "--format", "json")
    assert r.returncode == 2
    assert r.stdout == ""  # refused before simulating: no summary
    assert r.stderr == (f"{out}: holds another run (expected a new or empty folder; --force replaces it, or leave "
                        "--out out to get a new folder per run)\n")
    assert (out / "stale.csv").exists() and json.loads((out / "run.json").read_text())["run_id"] == first
    r = _cli("run", f, "--out", out, "--force", "-q")
    assert r.returncode == 0, r.stderr
    assert not (out / "stale.csv").exists()  # nothing of the old run is mixed in
    assert json.loads((out / "run.json").read_text())["run_id"] != first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_parallel_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    f = _tiny(tmp_path)
    procs = [subprocess.Popen([*CLI, "run", str(f), "-q"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    folders = _complete_folders(tmp_path / "reports")
    assert len(folders) == 3 and len({p.name for p in folders}) == 3
    assert sorted(str(tmp_path / o.strip()) for o, _ in outs) == sorted(map(str, folders))


def _limit_file_size():
    # a real "disk full": files past 300 kB fail with EFBIG (SIGXFSZ ignored, so write() returns the error)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))


def test_a_failed_write_still_prints_the_summary_and_leaves_nothing(tmp_path):
    f = _tiny(tmp_path, duration_s=86400 * 60)  # vm/host interval CSVs over 300 kB
    out = tmp_path / "out"
    r = subprocess.run([*CLI, "run", str(f), "--out", str(out)], capture_output=True, text=True, timeout=120,
                       preexec_fn=_limit_file_size)
    assert r.returncode == 2
    assert "energy_kwh" in r.stdout  # what was computed is not lost
    err = r.stderr.strip()
    assert err.startswith(f"{out}: cannot write results (") and "File too large" in err
    assert err.endswith("); nothing was left there")
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _start(args, cwd) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_until_simulating(p: subprocess.Popen, cpu_s: float = 3.0, within_s: float = 60.0) -> None:
    """Until the process has used `cpu_s` of CPU (imports take about one second): on a loaded machine a fixed
    sleep can signal it while it is still importing, which is not what the test is about."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and p.poll() is None:
        if psutil.Process(p.pid).cpu_times().user >= cpu_s:
            return
        time.sleep(0.1)


def test_ctrl_c_and_sigterm_stop_a_run_at_once_and_write_nothing(tmp_path):
    scenario = REPO / "scenarios" / "planetlab-consolidation-precopy.yaml"  # about 30 s of simulating
    for sig in (signal.SIGINT, signal.SIGTERM):
        p = _start(["run", scenario], tmp_path)
        _wait_until_simulating(p)
        t0 = time.monotonic()
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
        assert time.monotonic() - t0 < 5
        assert p.returncode == 130, err
        assert err.strip().endswith("interrupted: the run was stopped; nothing was written")
        assert "Traceback" not in err
        assert not (tmp_path / "reports").exists() or _complete_folders(tmp_path / "reports") == []


def test_kill_9_while_writing_leaves_no_folder_that_looks_complete(tmp_path):
    many = {"vms": [{**TINY["vms"][0], "count": 3000}], "hosts": [{"type": "hp-proliant-ml110-g4", "count": 800}]}
    f = _tiny(tmp_path, **many)  # 3,000 VMs x 12 intervals: writing takes about a second
    out = tmp_path / "out"
    p = _start(["run", f, "--out", out], tmp_path)
    for line in p.stdout:  # the summary is printed before writing starts
        if "energy_kwh" in line:
            break
    time.sleep(0.3)
    p.kill()
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL
    assert not out.exists()  # never a visible folder, let alone one that looks complete
    (partial,) = [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]
    assert not (partial / "run.json").exists()  # what was half written is hidden and has no manifest


def test_exit_codes_are_documented_in_the_readme_and_the_help():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Exit codes"):]
    rows = [line.split("|")[1].strip() for line in section.splitlines()[1:12] if line.startswith("| `")]
    assert rows == ["`0`", "`1`", "`2`", "`130`"]
    help_text = _cli("--help", env={**os.environ, "COLUMNS": "200"}).stdout
    assert "Exit codes: 0 ok; 1 some runs failed" in help_text and "130 interrupted" in help_text
