"""The scenario's `outputs:` block: which frames a run folder holds, vm_intervals full / sampled / off (and never
built when off), CSV by size, and the report page and run.json saying what was left out. Real runs, real files."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

import consolidate
from consolidate.results.frames import sample_vms
from consolidate.scenario.model import BIG_RUN_VM_INTERVALS, DEFAULT_VM_SAMPLE, Outputs
from tests.conftest import TINY

CLI = [sys.executable, "-m", "consolidate"]


def _scenario(outputs: dict | None = None, seed: int = 1) -> dict:
    """Four hosts, 12 VMs of varying load, overhead model on: every per-VM array has distinct columns."""
    sc = copy.deepcopy(TINY)
    sc["seed"] = seed
    sc["hosts"][0]["count"] = 4
    sc["vms"] = [{"name": "wave", "count": 12, "type": "small",
                  "trace": {"synthetic": {"mean": 0.4, "amplitude": 0.3, "noise_std": 0.05, "random_phase": True}}}]
    sc["overhead"] = {"enabled": True}
    if outputs is not None:
        sc["outputs"] = outputs
    return sc


def _files(folder) -> set[str]:
    return {p.name for p in folder.iterdir() if p.suffix in (".parquet", ".csv")}


def test_default_small_run_writes_every_frame_with_csv(tmp_path):
    res = consolidate.run(_scenario())
    out = consolidate.write(res, tmp_path / "run")
    assert res.vm_intervals_detail == "full" and len(res.vm_intervals) == 12 * 12
    stems = {"summary", "vm_intervals", "host_intervals", "vms", "hosts", "overhead_reasons"}
    assert _files(out) == {f"{s}.{ext}" for s in stems for ext in ("parquet", "csv")}
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["frames"]["vm_intervals"] == 144 and manifest["frames"]["host_intervals"] == 48
    assert manifest["left_out"] == [] and manifest["vm_intervals"] == "full"
    assert "Left out" not in (out / "index.html").read_text()


def test_vm_intervals_off_is_not_built_and_leaves_the_summary_unchanged(tmp_path):
    full = consolidate.run(_scenario())
    off = consolidate.run(_scenario({"vm_intervals": "off"}))
    assert off.vm_intervals is None and "vm_intervals" not in off.frames
    cols = [c for c in full.summary.columns if c not in ("run_id", "wall_s", "scenario_sha256")]
    pd.testing.assert_frame_equal(off.summary[cols], full.summary[cols])
    assert off.summary["cpu_unserved_mips_h"].iloc[0] == full.summary["cpu_unserved_mips_h"].iloc[0]
    out = consolidate.write(off, tmp_path / "run")
    assert "vm_intervals.parquet" not in _files(out) and "host_intervals.parquet" in _files(out)
    manifest = json.loads((out / "run.json").read_text())
    assert "vm_intervals" not in manifest["frames"]
    assert manifest["left_out"] == ["vm_intervals (outputs.vm_intervals: off)"]
    page = (out / "index.html").read_text()
    assert "Left out" in page and "vm_intervals (outputs.vm_intervals: off)" in page


def test_sample_keeps_the_full_rows_of_seed_chosen_vms():
    full = consolidate.run(_scenario()).vm_intervals
    res = consolidate.run(_scenario({"vm_intervals": {"sample": 5}}))
    vi = res.vm_intervals
    kept = sorted(vi["vm"].unique())
    assert len(kept) == 5 and len(vi) == 5 * 12
    assert kept == sorted(sample_vms(1, 12, 5).tolist())
    # the very rows of the full frame, overhead columns included (sampling picks columns, recomputes nothing)
    want = full[full["vm"].isin(kept)].sort_values(["time_s", "vm"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(vi.sort_values(["time_s", "vm"]).reset_index(drop=True), want)
    assert res.left_out == ["vm_intervals of 7 of 12 VMs (sampled 5 VMs from the seed)"]


def test_sample_is_drawn_from_the_seed():
    a, b = sample_vms(1, 1000, 10), sample_vms(1, 1000, 10)
    assert np.array_equal(a, b) and len(set(a.tolist())) == 10
    assert not np.array_equal(a, sample_vms(2, 1000, 10))
    assert np.array_equal(sample_vms(3, 4, 10), np.arange(4))  # asking for more than there are keeps them all


def test_frames_choose_what_is_written_and_csv_can_be_turned_off(tmp_path):
    res = consolidate.run(_scenario({"frames": ["summary", "hosts"], "csv": False}))
    assert res.vm_intervals is None  # not listed: not built either
    out = consolidate.write(res, tmp_path / "run")
    assert _files(out) == {"summary.parquet", "hosts.parquet"}
    manifest = json.loads((out / "run.json").read_text())
    assert set(manifest["frames"]) == {"summary", "hosts"}
    assert "host_intervals (not in outputs.frames)" in manifest["left_out"]
    assert pd.read_parquet(out / "hosts.parquet")["host"].tolist() == [0, 1, 2, 3]
    # --csv on the command line wins over the scenario
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(_scenario({"frames": ["summary"], "csv": False})))
    r = subprocess.run([*CLI, "run", f, "--out", tmp_path / "cli", "--quiet", "--csv", "--no-plots"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path / "cli") == {"summary.parquet", "summary.csv"}
    # without the flag the scenario's csv: false holds on the command line too
    r = subprocess.run([*CLI, "run", f, "--out", tmp_path / "cli2", "--quiet", "--no-plots"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path / "cli2") == {"summary.parquet"}


def test_big_runs_default_to_no_csv_and_a_sample():
    o = Outputs()
    assert o.vm_detail(BIG_RUN_VM_INTERVALS) == "full" and o.csv_for(BIG_RUN_VM_INTERVALS)
    assert o.vm_detail(BIG_RUN_VM_INTERVALS + 1) == DEFAULT_VM_SAMPLE == 1000
    assert not o.csv_for(100_000 * 288)
    told = Outputs.model_validate({"vm_intervals": "full", "csv": True})
    assert told.vm_detail(100_000 * 288) == "full" and told.csv_for(100_000 * 288)
    assert Outputs.model_validate({"frames": ["summary"], "vm_intervals": "full"}).vm_detail(10) == "off"


@pytest.mark.parametrize("outputs, path, expected", [
    ({"vm_intervals": {"sample": 0}}, "outputs.vm_intervals:", "{sample: N} with N VMs, N >= 1"),
    ({"frames": ["sumary"]}, "outputs.frames.0", "summary"),
    ({"frames": ["hosts", "hosts"]}, "outputs.frames", "each frame once"),
    ({"vm_intervals": "some"}, "outputs.vm_intervals:", "expected full, off or {sample: N}"),
])
def test_bad_outputs_are_one_line_errors(tmp_path, outputs, path, expected):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(_scenario(outputs)))
    r = subprocess.run([*CLI, "validate", f], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"bad.yaml: {path}" in r.stderr and expected in r.stderr, r.stderr
