"""Traces named by an fsspec URL (workload/remote.py): read from a local copy that is removed afterwards, with the
same results as the local path, on one engine and on a pool of partition workers; bad URLs are one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import consolidate

REPO = Path(__file__).resolve().parents[1]
PLANETLAB = REPO / "tests" / "data" / "planetlab" / "20110303"


def _scenario(trace: str, partitioned: bool = False) -> dict:
    def group(name: str, part: str) -> dict:
        g = {"name": name, "type": "small", "trace": {"planetlab": trace}}
        return g | ({"partition": part} if partitioned else {})

    return {
        "name": "remote", "seed": 3, "duration_s": 7200, "interval_s": 300,
        "hosts": [{"type": "hp-proliant-ml110-g5", "count": 3} | ({"partition": p} if partitioned else {})
                  for p in (("east", "west") if partitioned else ("",))],
        "vm_types": [{"name": "small", "vcpus": 1, "mips_per_vcpu": 1000, "memory_mb": 613}],
        "vms": [group("a", "east"), group("b", "west")] if partitioned else [group("a", "")],
        "consolidation": {"policy": "thr-mmt-0.8"},
        "overhead": {"enabled": True},
    }


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """The 12 PlanetLab VMs of tests/data in a zip archive, under a folder named as the day."""
    path = tmp_path_factory.mktemp("remote") / "traces.zip"
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(PLANETLAB.iterdir()):
            z.write(f, f"20110303/{f.name}")
    return path


def test_a_trace_in_a_zip_archive_by_url_runs_as_the_local_folder(archive, tmp_path, write_yaml):
    url = f"zip://20110303::file://{archive}"
    spool = tmp_path / "spool"
    spool.mkdir()
    remote = consolidate.run(write_yaml(_scenario(url), "remote.yaml"), run_id="r", spool_dir=spool)
    local = consolidate.run(write_yaml(_scenario(str(PLANETLAB)), "local.yaml"), run_id="r")
    s_remote, s_local = remote.summary.iloc[0], local.summary.iloc[0]
    assert s_remote.vms == 12 and s_remote.migrations > 0
    for col in remote.summary.columns:
        if col not in ("wall_s", "scenario_sha256"):
            assert s_remote[col] == s_local[col], col
    pd.testing.assert_frame_equal(remote.host_intervals, local.host_intervals, check_exact=True)
    # the VMs' labels name the URL, not the copy, and the copy is gone
    assert all(t.startswith(url + "/") for t in remote.vms["trace"]), remote.vms["trace"].iloc[0]
    assert list(spool.iterdir()) == []


def test_partition_workers_fetch_their_own_copy(archive, tmp_path, write_yaml):
    url = f"zip://20110303::file://{archive}"
    path = write_yaml(_scenario(url, partitioned=True), "zones.yaml")
    one = consolidate.run(path, run_id="r")
    done = subprocess.run([sys.executable, "-m", "consolidate", "run", str(path), "--workers", "2", "--format", "json",
                           "--no-plots", "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    got, want = json.loads(done.stdout), json.loads(one.summary.to_json(orient="records"))[0]
    for k in ("run_id", "wall_s"):
        got.pop(k), want.pop(k)
    assert got == want and want["vms"] == 24


@pytest.mark.parametrize("url, expect", [
    ("s3://no-such-bucket-consolidate/planetlab", "s3fs"),
    ("file:///no/such/folder/planetlab", "No such file"),
    ("nosuchprotocol://x/y", "Protocol not known"),
])
def test_a_url_that_cannot_be_fetched_is_one_line_with_exit_2(url, expect, write_yaml):
    path = write_yaml(_scenario(url))
    done = subprocess.run([sys.executable, "-m", "consolidate", "run", str(path), "--quiet"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: vms.0.trace.planetlab: cannot fetch {url}: ") and expect in lines[0], lines


def test_trace_inspect_reads_a_url_and_names_it(tmp_path):
    opendc = REPO / "tests" / "data" / "opendc-bitbrains-small"
    archive = tmp_path / "opendc.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(opendc.iterdir()):
            z.write(f, f"sample/{f.name}")
    url = f"zip://sample::file://{archive}"
    by_url = subprocess.run([sys.executable, "-m", "consolidate", "trace", "inspect", url, "--format", "csv"],
                            capture_output=True, text=True, timeout=60)
    local = subprocess.run([sys.executable, "-m", "consolidate", "trace", "inspect", str(opendc), "--format", "csv"],
                           capture_output=True, text=True, timeout=60)
    assert by_url.returncode == 0, by_url.stderr
    assert by_url.stdout == local.stdout and len(by_url.stdout.splitlines()) == 51  # header + the sample's 50 VMs
    assert by_url.stderr == local.stderr.replace(str(opendc), url)
    bad = subprocess.run([sys.executable, "-m", "consolidate", "trace", "inspect", "zip://nope::" + archive.as_uri()],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("zip://nope::") and "cannot fetch" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
