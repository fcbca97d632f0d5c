"""The policy registry: every registered name parses and runs, a selector registered here drives a real run,
bad names and out-of-range parameters are scenario errors at consolidation.policy, aliases normalise, and the
CLI, the JSON Schema and docs/policies.md list what is registered."""
from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest
from typer.testing import CliRunner

import consolidate
from consolidate.cli import app
from consolidate.errors import ScenarioError
from consolidate.policies import registry
from consolidate.policies.overload import static_threshold
from consolidate.policies.registry import Param, selector
from tests.conftest import REPO, TINY

runner = CliRunner()


def _scenario(policy: str | None = "thr-mmt-0.8", hours: int = 4) -> dict:
    """20 VMs on 6 hosts for a few hours, busy enough to overload hosts and to empty some."""
    sc = copy.deepcopy(TINY)
    sc["hosts"] = [{"type": "hp-proliant-ml110-g5", "count": 6}]
    sc["vm_types"] = [{"name": "big", "vcpus": 1, "mips_per_vcpu": 2000, "memory_mb": 1024},
                      {"name": "small", "vcpus": 1, "mips_per_vcpu": 1000, "memory_mb": 512}]
    sc["vms"] = [{"name": "v", "count": 20, "type": {"rule": "cycle", "types": ["big", "small"]},
                  "trace": {"synthetic": {"mean": 0.45, "amplitude": 0.35, "period_s": 3600, "noise_std": 0.15}}}]
    sc["duration_s"], sc["interval_s"] = hours * 3600, 300
    if policy is not None:
        sc["consolidation"] = {"policy": policy}
    return sc


def _problems(data: dict) -> str:
    with pytest.raises(ScenarioError) as exc:
        consolidate.load_scenario(data)
    return str(exc.value)


# --- every registered name ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(registry.DETECTORS))
def test_every_detector_parses_and_runs(name):
    p = registry.DETECTORS[name].param
    text = f"{name}-mmt-{p.example:g}"
    assert registry.parse_policy(text).detector.param == p.example
    res = consolidate.run(_scenario(text))
    assert res.summary.iloc[0].policy == text and set(res.migrations.reason) == {"overload", "underload"}


@pytest.mark.parametrize("name", list(registry.SELECTORS))
def test_every_selector_parses_and_runs(name):
    text = f"lr-{name}-1.2"  # lr reads the history, which mc regresses on
    assert registry.parse_policy(text).selector is registry.SELECTORS[name]
    assert (consolidate.run(_scenario(text)).migrations.reason == "overload").any()  # the selector chose


@pytest.mark.parametrize("name", registry.placement_names(aliases=True))
def test_every_placement_and_alias_runs(name):
    sc = _scenario(None, hours=1)
    sc["placement"] = name
    res = consolidate.run(sc)
    assert res.scenario.placement.policy == registry.get_placement(name).name
    assert (res.vm_intervals.host >= 0).all()


# --- a selector registered here is used by a real run ------------------------------------------------------

calls: list[tuple[np.ndarray, int]] = []


def max_memory(candidates, ram_mb, demand_mips, history_mips, rng) -> int:
    # frees the most memory per move; ties go to the earliest candidate
    return int(candidates[np.argmax(ram_mb[candidates])])


@pytest.fixture
def maxmem():
    def recorded(candidates, ram_mb, demand_mips, history_mips, rng) -> int:
        v = max_memory(candidates, ram_mb, demand_mips, history_mips, rng)
        calls.append((candidates.copy(), v))
        return v

    calls.clear()
    selector("maxmem", "maximum memory: the VM with the most RAM")(recorded)
    yield
    del registry.SELECTORS["maxmem"]


def test_a_registered_selector_drives_a_consolidating_run(maxmem):
    res = consolidate.run(_scenario("thr-maxmem-0.8"))
    assert calls, "the registered selector was never asked"
    ram = res.vms.set_index("vm")["memory_mb"]
    for candidates, v in calls:
        assert v in candidates and ram[v] == ram[list(candidates)].max()
    chosen = {v for _, v in calls}
    over = res.migrations[res.migrations.reason == "overload"]
    assert len(over) > 0 and set(over.vm) <= chosen
    # the same run by MMT moves other VMs: the selector made a difference
    assert not res.migrations[["vm", "start_s"]].equals(
        consolidate.run(_scenario("thr-mmt-0.8")).migrations[["vm", "start_s"]])


def test_a_removed_selector_is_unknown_again(maxmem):
    del registry.SELECTORS["maxmem"]
    try:
        assert "no selector 'maxmem'" in _problems(_scenario("thr-maxmem-0.8"))
    finally:
        selector("maxmem", "restored for the fixture's teardown")(max_memory)


def test_the_static_threshold_fast_path_matches_the_general_path():
    # the same detector registered without the inline fast path must decide the same moves
    registry.detector("thrslow", "thr through the general path", Param("p", "utilisation", 0.0, 1.0),
                      reads_history=False)(static_threshold)
    try:
        fast = consolidate.run(_scenario("thr-mmt-0.8")).migrations
        slow = consolidate.run(_scenario("thrslow-mmt-0.8")).migrations
    finally:
        del registry.DETECTORS["thrslow"]
    assert len(fast) > 0 and fast.drop(columns="path").equals(slow.drop(columns="path"))


def test_registration_rejects_duplicates_and_hyphens():
    with pytest.raises(ValueError, match="already registered"):
        selector("mmt", "again")(max_memory)
    with pytest.raises(ValueError, match="may not contain '-'"):
        selector("max-mem", "a hyphen would break '<detector>-<selector>-<parameter>'")(max_memory)
    assert "max-mem" not in registry.SELECTORS


# --- scenario errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,message", [
    ("thr-mmt-5", "policy parameter out of range (got 5 for thr, expected 0 < p <= 1, the CPU utilisation"),
    ("thr-mmt-0", "policy parameter out of range (got 0 for thr, expected 0 < p <= 1"),
    ("lr-mmt-nan", "policy parameter out of range (got nan for lr, expected s > 0, the safety parameter"),
    ("mad-mmt--1", "policy parameter out of range (got -1 for mad, expected s > 0"),
    ("thr-mmt-x", "policy parameter is not a number (got 'x'"),
])
def test_bad_parameters_are_scenario_errors_at_consolidation_policy(text, message):
    assert f"<dict>: consolidation.policy: {message}" in _problems(_scenario(text))


def test_unknown_names_list_the_registered_ones():
    msg = _problems(_scenario("thr-xyz-0.8"))
    assert "consolidation.policy: unknown consolidation policy (got 'thr-xyz-0.8': no selector 'xyz'" in msg
    assert f"detector one of {', '.join(registry.DETECTORS)} and selector one of {', '.join(registry.SELECTORS)}" in msg
    assert "no detector 'abc'" in _problems(_scenario("abc-mmt-0.8"))
    sc = _scenario()
    sc["placement"] = {"policy": "worst-fit"}
    msg = _problems(sc)
    assert ("placement.policy: unknown placement policy (got 'worst-fit', expected one of: first-fit (ff), "
            "best-fit-decreasing (bfd), power-aware-best-fit-decreasing (pabfd))") in msg


def test_policy_problems_come_with_field_problems_in_one_pass():
    sc = _scenario("thr-mmt-5")
    sc["placement"] = "worst-fit"
    sc["interval_s"] = -1
    msg = _problems(sc)
    assert "interval_s:" in msg and "placement.policy:" in msg and "consolidation.policy:" in msg


def test_cli_rejects_an_out_of_range_policy(write_yaml):
    f = write_yaml(_scenario(hours=1))
    res = runner.invoke(app, ["run", str(f), "--quiet", "--policy", "thr-mmt-5"])
    assert res.exit_code == 2
    assert res.stderr.startswith(f"{f}: consolidation.policy: policy parameter out of range (got 5 for thr")


def test_aliases_normalise_to_the_registered_name():
    for alias, name in (("ff", "first-fit"), ("bfd", "best-fit-decreasing"),
                        ("pabfd", "power-aware-best-fit-decreasing")):
        a, b = _scenario(policy=None), _scenario(policy=None)
        a["placement"], b["placement"] = {"policy": alias}, name
        sa, sb = consolidate.load_scenario(a), consolidate.load_scenario(b)
        assert sa.placement.policy == name
        assert sa.model_dump() == sb.model_dump()  # so scenario.resolved.yaml and scenario_sha256 agree


# --- what reads the registry -------------------------------------------------------------------------------

def test_schema_lists_the_registered_names():
    s = consolidate.schema()["$defs"]
    assert s["Placement"]["properties"]["policy"]["enum"] == registry.placement_names(aliases=True)
    cons = s["Consolidation"]["properties"]["policy"]
    assert all(n in cons["description"] for n in (*registry.DETECTORS, *registry.SELECTORS))
    assert "pattern" in cons


def test_catalog_policies_lists_every_registered_policy():
    res = runner.invoke(app, ["catalog", "policies", "--format", "csv"])
    assert res.exit_code == 0
    names = [line.split(",")[1] for line in res.output.splitlines()[1:]]
    assert names == [*registry.DETECTORS, *registry.SELECTORS, *registry.PLACEMENTS]
    assert "detector,thr,,the CPU utilisation (fraction of capacity) above which a host is overloaded,0 < p <= 1" \
        in res.output


def test_docs_table_is_generated_from_the_registry():
    assert (REPO / "docs" / "policies.md").read_text() == registry.policies_markdown(), \
        "regenerate docs/policies.md (see registry.policies_markdown)"


def test_the_adding_a_policy_page_shows_this_tested_selector():
    page = (REPO / "docs" / "adding-a-policy.md").read_text()
    assert inspect.getsource(max_memory) in page
    assert inspect.getsource(test_a_registered_selector_drives_a_consolidating_run) in page
