"""The column registry: every column of every frame that real runs produce is registered with a unit, physical
units are in the names, and the one table of columns (docs/columns.md, the README's frame bullets) is current."""
from __future__ import annotations

import pandas as pd
import pytest

import consolidate
from consolidate.results import columns
from consolidate.results.metrics import SUMMARY_METRICS
from tests.conftest import REPO
from tests.test_metrics import _cloudsim_scenario, _full_scenario


def _failing_full() -> dict:
    """The metric test's full scenario (consolidation, a drain and its baseline, failover VMs on SR-IOV, the
    overhead model) with host failures on top: every optional frame at once."""
    sc = _full_scenario()
    sc["name"] = "columns"
    sc["failures"] = {"hosts": [{"time_to_failure": {"mean_s": 15000}, "time_to_repair": {"mean_s": 900}}]}
    return sc


@pytest.fixture(scope="module")
def runs() -> list:
    return [consolidate.run(_failing_full()), consolidate.run(_cloudsim_scenario())]


def test_the_registry_is_well_formed_and_names_carry_their_units():
    seen = set()
    for c in columns.all_columns():
        assert c.frame in columns.FRAMES, c
        assert (c.frame, c.name) not in seen, c
        seen.add((c.frame, c.name))
        assert c.meaning and c.when in columns.WHEN, c
        if c.frame == "summary":
            continue  # the metric registry's own test checks those
        assert c.unit in columns.UNIT_TOKENS or c.unit in columns.UNITLESS, c
        assert c.names_its_unit(), f"{c.frame}.{c.name}: unit {c.unit} not in the name"
    assert not columns.Column("hosts", "memory", "MiB", "x").names_its_unit()
    assert not columns.Column("hosts", "speed_mips", "W", "x").names_its_unit()
    # the summary rows are the metric registry's, in its order
    assert [c.name for c in columns.summary_columns()] == [m.name for m in SUMMARY_METRICS]


def test_families_match_their_members_only():
    fam = columns.lookup("vm_intervals", "exits_per_s_cpuid")
    assert fam is not None and fam.name == "exits_per_s_<reason>"
    assert columns.lookup("vm_intervals", "net_pps_served").name == "net_pps_<demand|served|unserved>"
    assert columns.lookup("vm_intervals", "net_pps_dropped") is None
    assert columns.lookup("overhead_reasons", "software_mips").name == "<reason>_mips"
    assert columns.lookup("overhead_reasons", "software_w") is None
    assert columns.lookup("hosts", "vm") is None  # a column of another frame


def test_every_column_real_runs_produce_is_registered(runs):
    full, cloudsim = runs
    assert set(full.frames) == {"summary", "vm_intervals", "host_intervals", "vms", "hosts", "overhead_reasons",
                                "migrations", "maintenance", "failures"}
    assert (full.failures["vm"] >= 0).any() and len(full.maintenance) and len(full.migrations)
    assert "retired" in cloudsim.vms.columns
    for res in runs:
        assert set(res.frames) <= set(columns.FRAMES)
        assert columns.unregistered(res.frames) == []


def test_every_registered_column_is_produced_by_a_run(runs):
    """No stale rows: every registered column appears in one of the runs (bar VMs that arrive or leave and trace
    warnings, which these scenarios do not use)."""
    produced = {(f, c) for res in runs for f, df in res.frames.items() for c in df.columns}
    for col in columns.all_columns():
        if col.when in ("lifecycles", "trace_warnings") or col.frame == "datacenter":
            continue
        assert any(f == col.frame and col.match(c) for f, c in produced), f"{col.frame}.{col.name} never produced"


def test_a_frame_with_an_unregistered_column_is_caught(runs):
    frames = {k: v.copy() for k, v in runs[0].frames.items()}
    frames["vms"]["cpu_peak"] = 1.0
    frames["migrations"]["bandwidth"] = 1.0
    assert columns.unregistered(frames) == ["vms.cpu_peak", "migrations.bandwidth"]


def test_the_columns_table_is_generated_and_current():
    text = (REPO / "docs" / "columns.md").read_text()
    assert text == columns.columns_markdown(), "docs/columns.md is stale: run python scripts/gen_metrics_doc.py"
    for c in columns.all_columns():
        assert f"| `{c.frame}` | `{c.name}` | {c.unit} |" in text
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- columns:begin -->\n", 1)[1].split("<!-- columns:end -->", 1)[0]
    assert block == columns.readme_frames_bullets() + "\n"


def test_the_docs_check_fails_when_a_column_is_added_without_docs(monkeypatch):
    """What a new column does to the docs: the generated table changes, so the committed one is stale."""
    before = columns.columns_markdown()
    extra = columns.Column("hosts", "rack", "id", "rack index")
    monkeypatch.setattr(columns, "FRAME_COLUMNS", columns.FRAME_COLUMNS + (extra,))
    after = columns.columns_markdown()
    assert after != before and "| `hosts` | `rack` | id | always | rack index |" in after
    df = pd.DataFrame({"host": [0], "rack": [0]})
    assert columns.unregistered({"hosts": df}) == []
    monkeypatch.setattr(columns, "FRAME_COLUMNS", tuple(c for c in columns.FRAME_COLUMNS if c.name != "rack"))
    assert columns.unregistered({"hosts": df}) == ["hosts.rack"]
