"""`consolidate trace inspect` on the real samples (tests/data, TRACES-PROVENANCE.md), run as a user runs it, its
figures checked against the files read independently with pandas."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).parent / "data"
OPENDC = DATA / "opendc-bitbrains-small"
RAW = DATA / "bitbrains-raw"


def _inspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "consolidate", "trace", "inspect", *map(str, args)],
                          capture_output=True, text=True)


def test_bitbrains_raw_vm_row_matches_the_file():
    proc = _inspect(RAW, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(io.StringIO(proc.stdout))
    assert list(got.columns) == ["vm", "start_s", "end_s", "samples", "step_s_median", "gaps", "vcpus", "memory_mb",
                                 "cpu_util_mean"]
    raw = pd.read_csv(RAW / "1.csv", sep=";", skipinitialspace=True)
    raw.columns = [c.strip() for c in raw.columns]
    raw = raw.drop_duplicates("Timestamp [ms]", keep="last").sort_values("Timestamp [ms]")
    t = raw["Timestamp [ms]"].to_numpy(float)
    step = np.diff(t)
    gap = step > 2 * np.median(step)
    # time-weighted mean over the covered time: each sample to the next, a gap's sample for one median step
    w = np.append(np.where(gap, np.median(step), step), np.median(step))
    u = raw["CPU usage [%]"].to_numpy(float) / 100
    r = got.iloc[0]
    assert len(got) == 1 and str(got["vm"].iloc[0]) == "1"
    assert r["start_s"] == t[0] == 1376314846
    assert r["samples"] == len(t) == 8619
    assert r["step_s_median"] == 300
    assert r["gaps"] == gap.sum() == 5
    assert r["vcpus"] == 1 and r["memory_mb"] == 2097152 / 1024
    assert np.isclose(r["cpu_util_mean"], np.sum(u * w) / np.sum(w), rtol=1e-5)
    assert "1 VMs" in proc.stderr and "5 gaps in 1 VMs" in proc.stderr


def test_opendc_sample_one_row_per_task_with_its_shape_and_life():
    proc = _inspect(OPENDC, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    got = pd.read_csv(io.StringIO(proc.stdout)).set_index("vm")
    tasks = pd.read_parquet(OPENDC / "tasks.parquet").set_index("id")
    frags = pd.read_parquet(OPENDC / "fragments.parquet")
    assert len(got) == len(tasks) == 50
    got.index = got.index.astype(tasks.index.dtype)
    per = frags.groupby("id").agg(n=("duration", "size"), ms=("duration", "sum"))
    assert (got["samples"] == per.loc[got.index, "n"]).all()
    assert np.allclose(got["start_s"], tasks.loc[got.index, "submission_time"] / 1000)
    # fragments follow one another: the last ends at submission + the sum of the durations
    assert np.allclose(got["end_s"], (tasks.loc[got.index, "submission_time"] + per.loc[got.index, "ms"]) / 1000)
    assert (got["vcpus"] == tasks.loc[got.index, "cpu_count"]).all()
    assert np.allclose(got["memory_mb"], tasks.loc[got.index, "mem_capacity"] / 1024, rtol=1e-5)
    frags["util"] = frags["cpu_usage"] / frags["id"].map(tasks["cpu_capacity"])
    over = int((frags["util"] > 1 + 1e-9).sum())
    assert over > 0 and f"{over} samples above 100%" in proc.stderr
    assert "50 VMs" in proc.stderr and "30.00 days" in proc.stderr


def test_table_format_has_the_header_line_and_kind_forces_the_reader():
    proc = _inspect(RAW / "1.csv", "--kind", "bitbrains")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"{RAW / '1.csv'}: bitbrains, span 1376314846 .. ") and "1 VMs" in first
    assert "cpu_util_mean" in proc.stdout and "8619" in proc.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.txt").write_text("hello\n")
    cases = [(junk, [], "layout not recognised (expected one of: opendc, bitbrains"),
             (tmp_path / "missing", [], "no such file or folder"),
             (OPENDC, ["--kind", "bitbrains"], "folder holds no .csv files")]
    bad = tmp_path / "bad.csv"
    bad.write_text((RAW / "1.csv").read_text().replace("1376315146;", "yesterday;", 1))
    cases.append((bad, ["--kind", "bitbrains"], "row 2: Timestamp [ms]: not a time"))
    for path, extra, msg in cases:
        proc = _inspect(path, *extra)
        assert proc.returncode == 2, (path, proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1 and msg in proc.stderr and str(path) in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
