"""The metric registry: complete against real runs, combine rules that reproduce a whole run from its time
slices, and generated docs that match the registry."""
from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest

import consolidate
from consolidate import api
from consolidate.results import metrics
from consolidate.results.frames import SUMMARY_COLUMNS
from consolidate.sweep import run as sweep_run
from tests.conftest import REPO, TINY


def _full_scenario() -> dict:
    """20 VMs on 5 hosts for 4 h with every feature the summary knows but cloudsim_compat: consolidation, a
    drain (and its baseline run), failover VMs on SR-IOV beside virtio VMs, the overhead model."""
    sc = copy.deepcopy(TINY)
    sc["name"] = "metrics"
    sc["duration_s"] = 4 * 3600
    sc["host_types"] = [{"name": "srv", "cores": 8, "mips_per_core": 2500, "memory_mb": 65536,
                         "power_idle_w": 100, "power_max_w": 250, "cpu": "intel-skylake-sp", "iommu": True,
                         "nics": [{"model": "intel-82599", "vfs_per_port": 2}]}]
    sc["hosts"] = [{"type": "srv", "count": 5}]
    sc["vm_types"] = [{"name": "v", "vcpus": 1, "mips_per_vcpu": 2000, "memory_mb": 2048}]

    def wave(mean):
        return {"synthetic": {"mean": mean, "amplitude": 0.3, "period_s": 7200, "noise_std": 0.1}}

    sc["vms"] = [{"name": "web", "count": 4, "type": "v", "profile": "network_appliance", "trace": wave(0.4),
                  "virtualization": {"io": {"net": "sriov"}}, "migration_policy": "failover"},
                 {"name": "batch", "count": 16, "type": "v", "trace": wave(0.5)}]
    sc["overhead"] = {"enabled": True}
    sc["consolidation"] = {"policy": "thr-mmt-0.8"}
    sc["migration"] = {"failover_gap_s": 1.0}
    sc["maintenance"] = [{"at_s": 3600, "hosts": [0]}]
    return sc


def _cloudsim_scenario() -> dict:
    sc = copy.deepcopy(TINY)
    sc["cloudsim_compat"] = True
    sc["consolidation"] = {"policy": "thr-mmt-0.8"}
    sc["hosts"] = [{"type": "hp-proliant-ml110-g4", "count": 4}]
    sc["vms"][0]["count"] = 4
    sc["vms"][0]["trace"]["synthetic"].update(amplitude=0.4, period_s=1800, noise_std=0.1)
    return sc


@pytest.fixture(scope="module")
def full():
    return consolidate.run(_full_scenario())


def test_registry_is_well_formed():
    names = [m.name for m in metrics.SUMMARY_METRICS]
    assert len(names) == len(set(names))
    for m in metrics.SUMMARY_METRICS:
        assert m.feature in metrics.FEATURES and m.combine in metrics.COMBINE_RULES, m
        assert m.unit and m.definition, m
        for o in m.of:
            assert metrics.lookup(o).name == o, f"{m.name} combines with unregistered {o}"
        if m.combine == "ratio":
            assert len(m.of) == 2 and all(metrics.lookup(o).combine == "sum" for o in m.of), m
        if m.combine in ("product", "mean_weighted"):
            assert m.of, m
    for flag in ("headline", "impact"):
        ranks = sorted(getattr(m, flag) for m in metrics.SUMMARY_METRICS if getattr(m, flag))
        assert ranks == list(range(1, len(ranks) + 1)), flag
    assert all(not metrics.lookup(c).param for c in (*metrics.HEADLINE_METRICS, *metrics.IMPACT_METRICS))
    # the sweep table and the drain impact read the registry's flags, in their order
    assert sweep_run.METRICS == metrics.HEADLINE_METRICS == (
        "energy_kwh", "hosts_active_mean", "sla_unserved_fraction", "migrations", "slav", "overhead_pct_mean")
    assert api.IMPACT_COLUMNS == metrics.IMPACT_METRICS == (
        "energy_kwh", "hosts_active_mean", "sla_unserved_fraction", "slatah", "pdm", "migrations", "downtime_s_total")


def _registered_of(features: set[str]) -> set[str]:
    return {m.name for m in metrics.SUMMARY_METRICS if m.feature in features and not m.param}


def test_every_column_of_a_full_run_is_registered_and_every_enabled_metric_is_there(full):
    cols = list(full.summary.columns)
    found = {metrics.lookup(c).feature for c in cols}  # KeyError for an unregistered column
    on = {"always", "consolidation", "maintenance", "failover", "overhead"}
    assert found == on
    assert _registered_of(on) <= set(cols)
    # every family produced at least one column; the two I/O paths laid out path by path
    assert {metrics.lookup(c).name for c in cols} == {m.name for m in metrics.SUMMARY_METRICS
                                                      if m.feature in on}
    i = cols.index("virt_cpu_mips_h_net_sriov")
    assert cols[i:i + 8] == [f"{f}_{p}" for p in ("sriov", "virtio") for f in
                             ("virt_cpu_mips_h_net", "cpu_demand_mips_h_net", "overhead_pct_net", "net_pps_served_mean")]
    # the drain impacts come last, after wall_s, in the registry's order
    n = len(metrics.IMPACT_METRICS)
    assert cols[-n - 1:] == ["wall_s", *(f"drain_impact_{c}" for c in metrics.IMPACT_METRICS)]
    assert metrics.unit("drain_impact_energy_kwh") == "kWh" and metrics.unit("exits_per_s_hlt") == "1/s"
    s = full.summary.iloc[0]
    assert s.failover_vms == 4 and s.drains == 1 and s.migrations > 0 and s.slatah > 0  # the features did run


def test_cloudsim_and_plain_runs_have_exactly_their_features_columns(tiny):
    s = consolidate.run(_cloudsim_scenario()).summary
    on = {"always", "cloudsim_compat", "consolidation"}
    assert set(s.columns) == _registered_of(on)
    assert list(s.columns) == metrics.summary_columns(dict.fromkeys(s.columns), on)
    plain = consolidate.run(tiny).summary
    assert tuple(plain.columns) == SUMMARY_COLUMNS == tuple(m.name for m in metrics.SUMMARY_METRICS
                                                            if m.feature == "always")


def test_a_summary_that_disagrees_with_the_registry_is_an_error(full):
    values = full.summary.iloc[0].to_dict()
    values = {k: v for k, v in values.items() if not k.startswith("drain_impact_")}
    on = {"always", "consolidation", "maintenance", "failover", "overhead"}
    assert metrics.summary_columns(values, on) == list(values)  # the summary is in the registry's order
    with pytest.raises(RuntimeError, match=r"not registered: \['energy_wh'\]"):
        metrics.summary_columns({**values, "energy_wh": 1.0}, on)
    with pytest.raises(RuntimeError, match=r"registered but not computed: \['slav'\]"):
        metrics.summary_columns({k: v for k, v in values.items() if k != "slav"}, on)
    with pytest.raises(RuntimeError, match=r"failover_vms \(feature failover is off\)"):
        metrics.summary_columns(values, on - {"failover"})
    with pytest.raises(KeyError):
        metrics.lookup("drain_impact_power_w_max")  # no impact is reported for it


def _part_summary(res, t0: float, t1: float) -> dict:
    """The summary metrics of [t0, t1) of a run recomputed from its frames, as if that slice were a run."""
    sc = res.scenario
    dt_h = sc.interval_s / 3600
    hi = res.host_intervals[(res.host_intervals.time_s >= t0) & (res.host_intervals.time_s < t1)]
    vi = res.vm_intervals[(res.vm_intervals.time_s >= t0) & (res.vm_intervals.time_s < t1)]
    n = hi.time_s.nunique()
    on = hi.state == "on"
    hosts_on = on.groupby(hi.time_s).sum()
    power = hi.power_w.groupby(hi.time_s).sum()

    def mips_h(col, rows=vi):
        return float(np.sum(rows[col].to_numpy(), dtype=np.float64) * dt_h)

    def per_s(col, rows=vi):
        return float(np.sum(rows[col].to_numpy(), dtype=np.float64) / n)

    out = {
        "duration_s": n * sc.interval_s,
        "energy_kwh": float(hi.energy_kwh.sum()),
        "hosts_active_mean": float(hosts_on.mean()),
        "hosts_active_max": int(hosts_on.max()),
        "power_w_mean": float(power.mean()),
        "power_w_max": float(power.max()),
        "host_cpu_util_mean": float(hi.cpu_util[on].mean()),
        "cpu_demand_mips_h": mips_h("cpu_demand_mips"),
        "cpu_effective_mips_h": mips_h("cpu_effective_mips"),
        "cpu_served_mips_h": mips_h("cpu_served_mips"),
        "cpu_unserved_mips_h": mips_h("cpu_unserved_mips"),
        "overhead_mips_h": mips_h("cpu_overhead_mips"),
        "backend_mips_h": mips_h("cpu_backend_mips"),
        "tlb_flushes_per_s": per_s("tlb_flushes_per_s"),
    }
    out["sla_unserved_fraction"] = out["cpu_unserved_mips_h"] / out["cpu_effective_mips_h"]
    out["pdm"] = mips_h("cpu_migration_loss_mips") / out["cpu_effective_mips_h"]
    out["overhead_pct_mean"] = out["overhead_mips_h"] / out["cpu_demand_mips_h"] * 100
    for c in [c for c in vi.columns if c.startswith("exits_per_s_")]:
        out[c] = per_s(c)
    path = vi.vm.map(res.vms.set_index("vm").net_path)
    for p in ("sriov", "virtio"):
        out[f"net_pps_served_mean_{p}"] = per_s("net_pps_served", vi[path == p])
        on_path = vi[path == p]
        out[f"cpu_demand_mips_h_net_{p}"] = mips_h("cpu_demand_mips", on_path)
        virt = (on_path.cpu_overhead_mips + on_path.cpu_backend_mips).to_numpy()  # float32, as the run adds them
        out[f"virt_cpu_mips_h_net_{p}"] = float(np.sum(virt, dtype=np.float64) * dt_h)
        out[f"overhead_pct_net_{p}"] = out[f"virt_cpu_mips_h_net_{p}"] / out[f"cpu_demand_mips_h_net_{p}"] * 100
    # SLATAH from the hosts' time on and time overloaded; packets from rates x interval
    out["host_on_s"] = float(hi.time_on_s.sum())
    out["host_overloaded_s"] = float(hi.time_overloaded_s.sum())
    out["slatah"] = out["host_overloaded_s"] / out["host_on_s"]
    out["net_packets_demand"] = per_s("net_pps_demand") * n * sc.interval_s
    out["net_packets_unserved"] = per_s("net_pps_unserved") * n * sc.interval_s
    out["net_pps_unserved_fraction"] = out["net_packets_unserved"] / out["net_packets_demand"]
    m = res.migrations[(res.migrations.start_s >= t0) & (res.migrations.start_s < t1)]
    out["migrations"] = len(m)
    out["migration_bytes"] = float(m.bytes.sum())
    return out


def test_combining_two_time_slices_by_the_rules_gives_the_whole_run(full):
    s = full.summary.iloc[0]
    whole = _part_summary(full, 0, s.duration_s)
    for k, v in whole.items():  # the recomputation is faithful to the summary...
        assert v == pytest.approx(s[k], rel=1e-9, abs=1e-12), k
    # 13 of 48 intervals: unequal slices (a plain mean would be wrong) with migrations on both sides
    cut = 13 * s.interval_s
    parts = [_part_summary(full, 0, cut), _part_summary(full, cut, s.duration_s)]
    for k in whole:  # ...and the slices combined per each metric's rule give it again
        assert metrics.combine(k, parts) == pytest.approx(s[k], rel=1e-9, abs=1e-12), k
    assert metrics.combine("hosts_active_max", parts) == s.hosts_active_max
    assert np.mean([p["hosts_active_mean"] for p in parts]) != pytest.approx(s.hosts_active_mean, rel=1e-6)
    assert parts[0]["migrations"] > 0 and parts[1]["migrations"] > 0
    # the ratios need their numerators and denominators: slices' slatah do not average to the run's
    assert s.slatah > 0 and s.net_pps_unserved_fraction > 0
    for k in ("slatah", "overhead_pct_net_virtio", "net_pps_unserved_fraction"):
        assert np.mean([p[k] for p in parts]) != pytest.approx(s[k], rel=1e-6), k
    with pytest.raises(ValueError, match="not combinable"):
        metrics.combine("availability_p50", parts)


def _gen_script():
    spec = importlib.util.spec_from_file_location("gen_metrics_doc", REPO / "scripts" / "gen_metrics_doc.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_docs_are_up_to_date():
    gen = _gen_script()
    for path, text in gen.expected().items():
        assert path.read_text() == text, f"{path.name} is stale: run python scripts/gen_metrics_doc.py"
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index(gen.BEGIN):readme.index(gen.END)]
    assert all(f"`{m.name}`" in block for m in metrics.SUMMARY_METRICS)
    assert "- `vm_intervals` (one row per VM per interval" in readme  # the other frames': the column registry
    doc = (REPO / "docs" / "metrics.md").read_text()
    assert "| `energy_kwh` | kWh | always | `sum` |" in doc
