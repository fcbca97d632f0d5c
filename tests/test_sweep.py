"""Sweeps: expansion, derived seeds, failures recorded, resume, and the local pool against a real Dask
LocalCluster giving identical tables."""
from __future__ import annotations

import copy

import pandas as pd
import pytest
import yaml

from consolidate.errors import ScenarioError
from consolidate.sweep.expand import SweepSpec, derived_seed, expand
from consolidate.sweep.run import run_sweep
from tests.conftest import TINY


def _sweep_file(tmp_path, sweep: dict, **extra) -> str:
    data = copy.deepcopy(TINY)
    data["hosts"][0]["count"] = 2
    data.update(extra)
    data["sweep"] = sweep
    f = tmp_path / "sweep.yaml"
    f.write_text(yaml.safe_dump(data))
    return str(f)


def test_grid_zip_and_repeats_expand():
    runs = expand({"seed": 5, "a": {"b": 1}, "c": [1, 2]},
                  SweepSpec(grid={"a.b": [1, 2, 3], "c.0": [7, 8]}, zip={"x": [1, 2], "y": [3, 4]}, repeats=2))
    assert len(runs) == 3 * 2 * 2 * 2
    assert {(r.values["a.b"], r.values["c.0"]) for r in runs} == {(a, c) for a in (1, 2, 3) for c in (7, 8)}
    assert all((r.values["x"], r.values["y"]) in {(1, 3), (2, 4)} for r in runs)
    assert runs[0].data["a"]["b"] == 1 and runs[0].data["c"] == [7, 2]
    assert len({r.key for r in runs}) == len(runs)  # every run has its own folder


def test_derived_seeds_are_distinct_and_reproducible():
    seeds = [derived_seed(42, r) for r in range(50)]
    assert len(set(seeds)) == 50
    assert seeds == [derived_seed(42, r) for r in range(50)]
    assert derived_seed(43, 0) != derived_seed(42, 0)


def test_bad_sweep_is_a_scenario_error(tmp_path):
    f = _sweep_file(tmp_path, {"zip": {"hosts.0.count": [1, 2], "seed": [1]}})
    with pytest.raises(ScenarioError, match=r"sweep.zip: zipped lists differ in length"):
        run_sweep(f, out=tmp_path / "o")
    # a bad sweep block and a bad scenario: both reported at once
    f = _sweep_file(tmp_path, {"repeats": 0}, interval_s=-5)
    with pytest.raises(ScenarioError) as err:
        run_sweep(f, out=tmp_path / "o")
    paths = [p.path for p in err.value.problems]
    assert "sweep.repeats" in paths and "interval_s" in paths
    f = _sweep_file(tmp_path, {"grid": {"hosts.0.count": [1, -1]}})
    with pytest.raises(ScenarioError, match=r"hosts.0.count: invalid value \(got -1, expected a number >= 0\) "
                                            r"\(in the run with hosts.0.count=-1\)"):
        run_sweep(f, out=tmp_path / "o")


def test_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    # 1 host of 4096 MB: 5 VMs of 1024 MB fit no host -> that run fails, the others finish
    f = _sweep_file(tmp_path, {"grid": {"vms.0.count": [1, 5, 2]}}, hosts=[{"type": "hp-proliant-ml110-g4", "count": 1}])
    res = run_sweep(f, out=tmp_path / "o", workers=2)
    t = res.table.set_index("vms.0.count")
    assert t.loc[1, "status"] == "ok" and t.loc[2, "status"] == "ok"
    assert t.loc[5, "status"] == "failed" and "fits no host" in t.loc[5, "error"]
    assert (tmp_path / "o" / "index.html").exists() and (tmp_path / "o" / "sweep.csv").exists()


def test_resume_reruns_only_what_did_not_finish(tmp_path):
    f = _sweep_file(tmp_path, {"grid": {"vms.0.count": [1, 2, 3]}, "repeats": 2})
    first = run_sweep(f, out=tmp_path / "o", workers=2)
    assert len(first.ran) == 6
    # inject a crash: two runs lost their results (as if killed before writing)
    lost = first.table.run_key.iloc[[1, 4]].tolist()
    for key in lost:
        (tmp_path / "o" / "runs" / key / "summary.parquet").unlink()
    again = run_sweep(f, out=tmp_path / "o", workers=2, resume=True)
    assert sorted(again.ran) == sorted(lost)
    pd.testing.assert_frame_equal(again.table, first.table)


def test_local_pool_and_dask_cluster_give_identical_tables(tmp_path):
    distributed = pytest.importorskip("distributed")
    f = _sweep_file(tmp_path, {"grid": {"vms.0.count": [1, 2], "vms.0.trace.synthetic.mean": [0.2, 0.6]},
                               "repeats": 2})
    local = run_sweep(f, out=tmp_path / "local", workers=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = run_sweep(f, out=tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert (local.table.status == "ok").all() and len(local.table) == 8
    pd.testing.assert_frame_equal(local.table, remote.table)


def test_run_refuses_a_sweep_file(tmp_path):
    import consolidate

    f = _sweep_file(tmp_path, {"grid": {"vms.0.count": [1]}})
    with pytest.raises(ScenarioError, match="this file is a sweep"):
        consolidate.run(f)


def test_shipped_sweeps_validate():
    from typer.testing import CliRunner

    from consolidate.cli import app
    from tests.conftest import REPO

    files = sorted((REPO / "scenarios" / "sweeps").glob("*.yaml"))
    assert files
    for f in files:
        res = CliRunner().invoke(app, ["validate", str(f)])
        assert res.exit_code == 0, res.stderr
        assert "a sweep of" in res.stdout


def test_plan_finds_the_smallest_host_count(tmp_path):
    from typer.testing import CliRunner

    from consolidate.cli import app
    from consolidate.sweep.plan import plan

    data = copy.deepcopy(TINY)
    data["vms"][0]["count"] = 10  # 10 VMs of 1024 MB; a G4 holds 4 (4096 MB): 3 hosts, not 2
    data["hosts"][0]["count"] = 40
    data["on_unplaceable"] = "reject"
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(data))
    value, trials = plan(f, "vms_rejected<=0")
    assert value == 3
    assert [t.value for t in trials][:2] == [40, 1]  # the scenario's own value, then the low end
    assert all(t.ok == (t.value >= 3) for t in trials)
    res = CliRunner().invoke(app, ["plan", str(f), "--target", "vms_rejected<=0"])
    assert res.exit_code == 0 and "smallest hosts.0.count meeting vms_rejected<=0: 3" in res.stdout
    res = CliRunner().invoke(app, ["plan", str(f), "--target", "vms_rejected==0"])
    assert res.exit_code == 2 and "cannot read the target" in res.stderr
    res = CliRunner().invoke(app, ["plan", str(f), "--target", "nonsense<=1"])
    assert res.exit_code == 2 and "unknown metric (got 'nonsense'" in res.stderr


def test_resume_after_killing_the_sweep_process(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    f = _sweep_file(tmp_path, {"grid": {"vms.0.count": [1, 2, 3, 4, 5, 6]}}, duration_s=86400)
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "consolidate", "sweep", f, "--out", str(out), "--workers", "1",
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob("runs/*/summary.parquet")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its pool die mid-run
    proc.wait()
    finished = {p.parent.name for p in out.glob("runs/*/summary.parquet")}
    assert 1 <= len(finished) < 6
    res = run_sweep(f, out=out, workers=2, resume=True)
    assert set(res.ran) == set(res.table.run_key) - finished  # only what had not finished
    assert (res.table.status == "ok").all() and len(res.table) == 6


def test_sweep_plots_draw_a_line_per_series_and_name_what_they_cannot_draw(tmp_path):
    plots = [{"x": "hosts.0.count", "series": "placement.policy", "metrics": ["energy_kwh", "no_such_metric"]}]
    f = _sweep_file(tmp_path, {"grid": {"hosts.0.count": [2, 3], "placement.policy": ["first-fit", "pabfd"]},
                               "plots": plots})
    res = run_sweep(f, out=tmp_path / "o", workers=1)
    assert (res.table.status == "ok").all()
    out = tmp_path / "o"
    assert (out / "plots" / "line0__energy_kwh.png").stat().st_size > 1000
    assert not list((out / "plots").glob("energy_kwh__*.png"))  # the sweep's own charts replace the generic ones
    page = (out / "index.html").read_text()
    assert "sweep.plots.0: no run has a &#x27;no_such_metric&#x27; column (not drawn)" in page
    bad = _sweep_file(tmp_path, {"grid": {"hosts.0.count": [2, 3]}, "plots": [{"x": "seed", "metrics": ["energy_kwh"]}]})
    with pytest.raises(ScenarioError, match=r"sweep.plots.0.x: not a swept field \(got 'seed', expected one of: "
                                            r"hosts.0.count\)"):
        run_sweep(bad, out=tmp_path / "o2")
