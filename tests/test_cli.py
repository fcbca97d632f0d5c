"""The CLI end to end: the default scenario in a temporary folder, validate, catalog, schema."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import pandas as pd
import yaml
from typer.testing import CliRunner

from consolidate.cli import app
from consolidate.scenario.loader import default_scenario_path
from tests.conftest import REPO

runner = CliRunner()
REQUIRED = ["energy_kwh", "hosts_active_mean", "hosts_active_max", "vms", "cpu_demand_mips_h",
            "cpu_unserved_mips_h", "sla_unserved_fraction", "wall_s"]


def test_run_default_end_to_end(tmp_path):
    # a real process in an empty folder: no scenario argument, the embedded default, the default output root
    proc = subprocess.run([sys.executable, "-m", "consolidate", "run"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "reports" / "planetlab-20110303").iterdir()
    assert f"report: reports/planetlab-20110303/{run_dir.name}/index.html" in proc.stdout
    summary = pd.read_csv(run_dir / "summary.csv")
    assert len(summary) == 1 and set(REQUIRED) <= set(summary.columns)
    assert summary.vms[0] == 1052 and summary.energy_kwh[0] > 0
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "summary.parquet"), summary, check_dtype=False)
    for stem in ("vm_intervals", "host_intervals", "vms", "hosts"):
        assert (run_dir / f"{stem}.parquet").stat().st_size > 0 and (run_dir / f"{stem}.csv").stat().st_size > 0
    vi = pd.read_parquet(run_dir / "vm_intervals.parquet")
    assert len(vi) == 1052 * 288
    page = (run_dir / "index.html").read_text()
    for png in ("active_hosts", "host_utilisation", "power"):
        data = (run_dir / "plots" / f"{png}.png").read_bytes()
        assert data[:4] == b"\x89PNG"
        # embedded: the page stands alone
        assert f'src="data:image/png;base64,{base64.b64encode(data).decode()}"' in page
    assert "energy_kwh" in page


def test_run_with_out_seed_quiet(tmp_path, tiny):
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(tiny))
    out = tmp_path / "here"
    res = runner.invoke(app, ["run", str(f), "--out", str(out), "--seed", "9", "--quiet", "--no-csv"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out)
    s = pd.read_parquet(out / "summary.parquet")
    assert s.seed[0] == 9
    assert not (out / "summary.csv").exists()


def test_unwritable_output_is_a_clear_error(tmp_path, tiny):
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(tiny))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = runner.invoke(app, ["run", str(f), "--out", str(blocker / "sub"), "--quiet"])
    assert res.exit_code == 2
    assert res.stderr == f"{blocker / 'sub'}: cannot be written ({blocker} is a file, expected a folder)\n"


def test_validate_ok():
    res = runner.invoke(app, ["validate", str(default_scenario_path())])
    assert res.exit_code == 0
    assert "ok (planetlab-20110303: 800 hosts, 1 VM groups, 288 intervals of 300 s)" in res.stdout


def test_every_shipped_scenario_validates():
    files = sorted((REPO / "scenarios").glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        res = runner.invoke(app, ["validate", str(f)])
        assert res.exit_code == 0, (f, res.stderr)
        assert f.read_text().startswith("#"), f"{f.name} must open with the question it answers"


def test_repository_default_is_the_embedded_default():
    assert (REPO / "scenarios" / "default.yaml").read_text() == default_scenario_path().read_text()


def test_catalog_hosts_csv_has_sources():
    res = runner.invoke(app, ["catalog", "hosts", "--format", "csv"])
    assert res.exit_code == 0
    import io

    df = pd.read_csv(io.StringIO(res.stdout))
    g4 = df.set_index("name").loc["hp-proliant-ml110-g4"]
    assert g4.power_w == "86 89.4 92.6 96 99.5 102 106 108 112 114 117"
    assert (g4.cores, g4.mips_per_core, g4.memory_mb) == (2, 1860, 4096)
    assert df.source.str.contains("published").all()


def test_schema_is_json_schema_of_the_scenario():
    res = runner.invoke(app, ["schema"])
    assert res.exit_code == 0
    schema = json.loads(res.stdout)
    assert schema["title"] == "Scenario"
    # required unless the file extends another that gives them
    assert schema["anyOf"][1] == {"required": ["extends"]}
    assert {"name", "duration_s", "interval_s", "hosts", "vm_types", "vms"} <= set(schema["anyOf"][0]["required"])
    assert "seed" in schema["properties"]
    assert schema["additionalProperties"] is False


def test_progress_bar_appears_only_after_its_delay(tiny):
    import io

    from rich.console import Console

    import consolidate
    from consolidate import cli

    buf = io.StringIO()
    cli.err = Console(file=buf, force_terminal=True, width=100)
    try:
        quick = cli._DelayedProgress("quick", delay_s=3600)
        consolidate.run(tiny, progress=quick)
        quick.close()
        assert quick.bar is None and buf.getvalue() == ""
        slow = cli._DelayedProgress("slow", delay_s=0)
        consolidate.run(tiny, progress=slow)
        assert slow.bar is not None
        assert slow.bar.tasks[0].completed == slow.bar.tasks[0].total == 12  # 3600 s / 300 s
        slow.close()
        assert "slow" in buf.getvalue()
    finally:
        cli.err = Console(stderr=True)


def test_catalog_does_not_wrap_when_piped_and_no_color_is_honoured():
    import os

    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "80"}
    proc = subprocess.run([sys.executable, "-m", "consolidate", "catalog", "cpus"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0
    rows = [line for line in proc.stdout.splitlines() if "intel-haswell" in line]
    assert len(rows) == 1 and "Haswell" in rows[0]  # name, part and sources on one line, however long
    assert max(map(len, proc.stdout.splitlines())) > 200
    assert "\x1b[" not in proc.stdout
    forced = subprocess.run([sys.executable, "-m", "consolidate", "run", "--help"], capture_output=True, text=True,
                            env={**env, "FORCE_COLOR": "1", "TERM": "xterm"}, timeout=60)
    # NO_COLOR removes colour (bold may stay, as the convention allows) even where colour is forced
    import re

    assert forced.returncode == 0 and "Parquet" in forced.stdout
    assert not re.search(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7])(?:;[0-9;]*)?m", forced.stdout)
    assert "<bool>" not in forced.stdout
