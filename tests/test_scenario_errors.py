"""Every kind of scenario error: the exact `FILE: field.path: message` line, all at once, exit code 2."""
from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from consolidate.cli import app
from consolidate.errors import ScenarioError
from consolidate.validation import load_scenario

runner = CliRunner()


def errors_of(path) -> list[str]:
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    return [str(p) for p in exc.value.problems]


def test_unknown_field_names_allowed_fields(tiny, write_yaml):
    tiny["vm_types"][0]["cpus"] = 2
    f = write_yaml(tiny)
    assert errors_of(f) == [f"{f}: vm_types.0.cpus: unknown field (got 'cpus', expected one of: "
                            "name, vcpus, mips_per_vcpu, memory_mb)"]


def test_unknown_top_level_field(tiny, write_yaml):
    tiny["sead"] = 3
    f = write_yaml(tiny)
    (line,) = errors_of(f)
    assert line.startswith(f"{f}: sead: unknown field (got 'sead', expected one of: schema_version, name, ")


def test_missing_field(tiny, write_yaml):
    del tiny["duration_s"]
    f = write_yaml(tiny)
    assert errors_of(f) == [f"{f}: duration_s: required field is missing"]


def test_negative_and_wrong_type_reported_together(tiny, write_yaml):
    tiny["vm_types"][0]["mips_per_vcpu"] = -5
    tiny["hosts"][0]["count"] = "many"
    f = write_yaml(tiny)
    assert errors_of(f) == [
        f"{f}: hosts.0.count: invalid value (got 'many', expected a valid integer, unable to parse string as an integer)",
        f"{f}: vm_types.0.mips_per_vcpu: invalid value (got -5, expected a number > 0)",
    ]


def test_unknown_references_and_grid(tiny, write_yaml):
    tiny["hosts"][0]["type"] = "hp-proliant-ml999"
    tiny["vms"][0]["type"] = "huge"
    tiny["duration_s"] = 1000
    f = write_yaml(tiny)
    lines = errors_of(f)
    assert lines[0] == (f"{f}: duration_s: not a whole number of intervals (got 1000 s with interval_s 300, "
                        "expected a multiple of interval_s)")
    assert lines[1].startswith(f"{f}: hosts.0.type: unknown host type (got 'hp-proliant-ml999', expected one of: ")
    assert "hp-proliant-ml110-g4" in lines[1]
    assert lines[2] == f"{f}: vms.0.type: unknown VM type (got 'huge', expected one of: small)"


def test_trace_source_exactly_one(tiny, write_yaml):
    tiny["vms"][0]["trace"] = {}
    f = write_yaml(tiny)
    assert errors_of(f) == [f"{f}: vms.0.trace: give exactly one trace source (got none, expected one of "
                            "planetlab, native, synthetic, opendc, bitbrains, azure, alibaba2018, google2019)"]


def test_power_curve_forms(tiny, write_yaml):
    tiny["host_types"] = [{"name": "box", "cores": 4, "mips_per_core": 1000, "memory_mb": 8192,
                           "power_w": [1, 2, 3]},
                          {"name": "box2", "cores": 4, "mips_per_core": 1000, "memory_mb": 8192,
                           "power_idle_w": 100, "power_max_w": 50}]
    f = write_yaml(tiny)
    assert errors_of(f) == [
        f"{f}: host_types.0.power_w: invalid value (got [1, 2, 3], expected at least 11 item(s))",
        f"{f}: host_types.1: power_max_w below power_idle_w (got 50.0 < 100.0)",
    ]


def test_malformed_yaml(write_yaml):
    f = write_yaml("name: x\n  bad: [\n")
    assert errors_of(f) == [f"{f}: line 2, column 6: YAML syntax error: mapping values are not allowed here"]


def test_top_level_not_a_mapping(write_yaml):
    f = write_yaml("- 1\n- 2\n")
    assert errors_of(f) == [f"{f}: expected a mapping of scenario fields at the top level (got list)"]


def test_yaml_tags_are_not_executed(write_yaml):
    # safe_load refuses arbitrary Python tags; the user gets a YAML error, not an object
    f = write_yaml("name: !!python/object/apply:os.system ['echo hi']\n")
    (line,) = errors_of(f)
    assert line.startswith(f"{f}: line 1, column 7: YAML syntax error: could not determine a constructor")


def test_cli_validate_prints_all_errors_and_exits_2(tiny, write_yaml):
    tiny["seed"] = -1
    tiny["vms"][0]["trace"]["synthetic"]["mean"] = 1.5
    f = write_yaml(tiny)
    res = runner.invoke(app, ["validate", str(f)])
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [
        f"{f}: seed: invalid value (got -1, expected a number >= 0)",
        f"{f}: vms.0.trace.synthetic.mean: invalid value (got 1.5, expected a number <= 1)",
    ]
    assert "Traceback" not in res.output


def test_cli_real_process_exit_code_and_no_traceback(tiny, write_yaml):
    tiny["hosts"][0]["count"] = -1
    f = write_yaml(tiny)
    proc = subprocess.run([sys.executable, "-m", "consolidate", "run", str(f)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{f}: hosts.0.count: invalid value (got -1, expected a number >= 0)"
    assert "Traceback" not in proc.stderr


def test_cli_missing_file(tmp_path):
    f = tmp_path / "nope.yaml"
    res = runner.invoke(app, ["validate", str(f)])
    assert res.exit_code == 2
    assert res.stderr.strip() == f"{f}: scenario file does not exist"


def test_vm_that_fits_no_host_is_an_error_or_a_recorded_rejection(tiny, write_yaml):
    tiny["vm_types"].append({"name": "fat", "vcpus": 1, "mips_per_vcpu": 1000, "memory_mb": 8192})
    tiny["vms"].append({"name": "fatties", "count": 2, "type": "fat",
                        "trace": {"synthetic": {"mean": 0.1}}})
    f = write_yaml(tiny)
    res = runner.invoke(app, ["run", str(f), "--out", str(f.parent / "out")])
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [
        f"{f}: vms.1: VM 'fatties-0' (type fat) fits no host: needs 8192 MB but the largest host has 4096 MB "
        "(expected more or larger hosts, or on_unplaceable: reject)",
        f"{f}: vms.1: VM 'fatties-1' (type fat) fits no host: needs 8192 MB but the largest host has 4096 MB "
        "(expected more or larger hosts, or on_unplaceable: reject)",
    ]
    import consolidate

    tiny["on_unplaceable"] = "reject"
    res = consolidate.run(tiny)
    s = res.summary.iloc[0]
    assert (s.vms, s.vms_placed, s.vms_rejected) == (3, 1, 2)
    assert list(res.vms.loc[~res.vms.placed, "name"]) == ["fatties-0", "fatties-1"]
    # the rejected VMs' demand is counted as unserved, not dropped: 2 x 0.1 x 1000 MIPS for 1 h
    assert s.cpu_rejected_mips_h == pytest.approx(200.0, rel=1e-6)
    assert s.cpu_unserved_mips_h == pytest.approx(200.0, rel=1e-6)


def test_extends_and_set(tiny, write_yaml):
    write_yaml(tiny, "base.yaml")
    f = write_yaml({"extends": "base.yaml", "name": "child", "set": {"vms.0.count": 4, "hosts.0.count": 3}}, "child.yaml")
    sc = load_scenario(f)
    assert (sc.name, sc.vms[0].count, sc.hosts[0].count, sc.duration_s) == ("child", 4, 3, 3600)
    bad = write_yaml({"extends": "base.yaml", "set": {"vms.5.count": 1}}, "bad.yaml")
    assert errors_of(bad) == [f"{bad}: set.vms.5.count: vms.5: no such list item (got '5', expected 0..0)"]
    loop = write_yaml({"extends": "loop.yaml", "name": "x"}, "loop.yaml")
    (line,) = errors_of(loop)
    assert line.endswith("extends: circular extends (got 'loop.yaml' again)")


def test_cli_policy_option_runs_the_study_policy_choice(tiny, write_yaml, tmp_path):
    tiny["hosts"][0]["count"] = 3
    tiny["vms"][0]["count"] = 4
    tiny["consolidation"] = {"policy": "thr-mmt-0.8"}
    f = write_yaml(tiny)
    out = tmp_path / "o"
    res = runner.invoke(app, ["run", str(f), "--out", str(out), "--quiet", "--policy", "mad-mu-2.5"])
    assert res.exit_code == 0, res.stderr
    import pandas as pd

    s = pd.read_parquet(out / "summary.parquet").iloc[0]
    assert s.policy == "mad-mu-2.5" and (out / "migrations.parquet").exists() and (out / "plots" / "migrations.png").exists()
    res = runner.invoke(app, ["run", str(f), "--out", str(out), "--quiet", "--policy", "best-one"])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"{f}: consolidation.policy: unknown consolidation policy (got 'best-one'")


def test_what_consolidation_would_ignore_is_refused(tiny):
    load = load_scenario
    consolidating = {**tiny, "consolidation": {"policy": "thr-mmt-0.8"}}
    load(consolidating)  # the defaults are fine
    with pytest.raises(ScenarioError) as exc:
        load({**consolidating, "cpu_overcommit": 1.5})
    assert [p.path for p in exc.value.problems] == ["cpu_overcommit"]
    assert "overcommit with dynamic consolidation (got 1.5" in str(exc.value)
    with pytest.raises(ScenarioError) as exc:
        load({**consolidating, "placement": "ff"})
    assert [p.path for p in exc.value.problems] == ["placement.policy"]
    load({**tiny, "cpu_overcommit": 1.5, "placement": "ff"})  # without consolidation both apply
