"""Trace sources behind one dispatch: every schema kind has a registered reader, a new kind is one registration,
and the built-in kinds give the same VMs, draws and dtypes as before the registry."""
from __future__ import annotations

import numpy as np
import pytest

from consolidate import rng
from consolidate.errors import ScenarioError
from consolidate.scenario.loader import load_scenario
from consolidate.scenario.model import TraceSource
from consolidate.workload import planetlab, sources
from consolidate.workload.build import build_workload
from consolidate.workload.resample import resample


class ToySource(TraceSource):
    """The schema plus one more kind: `toy`, a constant CPU fraction sampled every 600 s for one hour."""

    toy: float | None = None


def _toy_reader(i, g, sc, gen):
    level = g.trace.toy
    values = np.full((2, 6), level)  # two traces, 6 x 600 s = 3600 s
    util = sources.fit_to_grid(values, 600.0, 0.0, sc, g.trace.repeat, f"toy:{level}")
    return sources.GroupTraces(["a", "b"], [f"toy:{level}"] * 2, util, {})


@pytest.fixture
def toy_kind():
    sources.register("toy", _toy_reader)
    yield
    sources.unregister("toy")


def _with_trace(sc, trace, count):
    """The scenario with group 0 reading `trace` (built without validation: the schema does not know `toy`)."""
    g = sc.vms[0].model_copy(update={"trace": trace, "count": count})
    return sc.model_copy(update={"vms": [g]})


def test_every_schema_kind_has_a_registered_reader():
    assert sorted(sources.source_fields()) == sources.kinds()
    assert sources.source_fields() == ["planetlab", "native", "synthetic", "opendc", "bitbrains", "azure", "alibaba2018",
                                      "google2019"]
    assert sources.kinds() == ["alibaba2018", "azure", "bitbrains", "google2019", "native", "opendc", "planetlab",
                              "synthetic"]
    assert sources.reader_for("planetlab") is planetlab.read_group


def test_kind_is_the_one_field_given():
    assert sources.kind_of(TraceSource(native="x.csv", repeat=True)) == "native"
    assert sources.kind_of(TraceSource(planetlab="builtin:20110303")) == "planetlab"
    assert sources.kind_of(ToySource.model_construct(toy=0.5)) == "toy"


def test_a_registered_toy_kind_is_read_through_build_workload(tiny, toy_kind):
    sc = _with_trace(load_scenario(tiny), ToySource.model_construct(toy=0.25), count=5)
    w = build_workload(sc)
    # five VMs from two traces: replayed in order by the shared helper, each copy numbered
    assert w.vms["name"].tolist() == ["a#0", "b#1", "a#2", "b#3", "a#4"]
    assert w.vms["trace"].tolist() == ["toy:0.25"] * 5
    assert w.cpu_util.shape == (12, 5) and w.cpu_util.dtype == np.float32
    assert np.all(w.cpu_util == np.float32(0.25))


def test_a_bad_toy_trace_is_reported_under_its_kind(tiny, write_yaml, toy_kind):
    tiny["duration_s"] = 7200  # the toy trace covers one hour only
    sc = _with_trace(load_scenario(write_yaml(tiny)), ToySource.model_construct(toy=0.5), count=1)
    with pytest.raises(ScenarioError) as exc:
        build_workload(sc)
    (p,) = exc.value.problems
    assert p.path == "vms.0.trace.toy"
    assert p.message == ("toy:0.5: trace covers 3600 s (6 samples of 600 s) but duration_s is 7200 "
                         "(expected at least 12 samples, or repeat: true)")
    sc = _with_trace(sc, ToySource.model_construct(toy=0.5, repeat=True), count=1)
    assert build_workload(sc).cpu_util.shape == (24, 1)


def test_a_schema_kind_without_a_reader_is_a_clear_error(tiny):
    sc = _with_trace(load_scenario(tiny), ToySource.model_construct(toy=0.5), count=1)
    with pytest.raises(LookupError, match=r"trace source 'toy' has no registered reader "
                                          r"\(registered: alibaba2018, azure, bitbrains, google2019, native, opendc, planetlab, synthetic\)"):
        build_workload(sc)


def test_a_kind_registers_once(toy_kind):
    with pytest.raises(ValueError, match="trace source 'toy' already has a reader"):
        sources.register("toy", lambda i, g, sc, gen: None)
    sources.register("toy", _toy_reader)  # the same reader again (a module reloaded) is harmless
    assert sources.reader_for("toy") is _toy_reader


def test_unregister_forgets_the_kind(toy_kind):
    sources.unregister("toy")
    assert "toy" not in sources.kinds()
    sources.register("toy", _toy_reader)  # for the fixture's teardown


def test_planetlab_rows_are_the_day_in_float32(tiny):
    tiny["vms"][0] = {"name": "pl", "count": 3, "type": "small", "trace": {"planetlab": "builtin:20110303"}}
    w = build_workload(load_scenario(tiny))
    names, pct = planetlab.load_planetlab("builtin:20110303")
    assert w.vms["name"].tolist() == names[:3]
    assert w.vms["trace"].tolist() == [f"builtin:20110303/{n}" for n in names[:3]]
    # same grid (300 s): the first hour of the day, divided in float32 exactly as before the registry
    np.testing.assert_array_equal(w.cpu_util, (pct[:3, :12].astype(np.float32) / 100.0).T)
    tiny["interval_s"] = 900  # a coarser grid averages three samples of the float32 fractions
    w = build_workload(load_scenario(tiny))
    want = resample(pct[:3, :12].astype(np.float32) / 100.0, 300.0, 900.0, 4)
    np.testing.assert_array_equal(w.cpu_util, want.T.astype(np.float32))


def test_synthetic_draws_phase_then_noise_then_types(tiny):
    """The group's generator is used by the trace first and by the type assignment second; changing that
    order would change every synthetic scenario's results."""
    tiny["vm_types"].append({"name": "big", "vcpus": 2, "mips_per_vcpu": 1860, "memory_mb": 2048})
    tiny["vms"] = [
        {"name": "flat", "count": 1, "type": "small", "trace": {"synthetic": {"mean": 0.5}}},
        {"name": "web", "count": 4, "type": {"rule": "random", "types": ["small", "big"], "weights": [3, 1]},
         "trace": {"synthetic": {"mean": 0.4, "amplitude": 0.3, "period_s": 3600, "noise_std": 0.05}}}]
    w = build_workload(load_scenario(tiny))
    gen = rng.stream(tiny["seed"], rng.WORKLOAD, 1)
    phase = gen.uniform(0, 2 * np.pi, size=(4, 1))
    t = (np.arange(12) + 0.5) * 300.0
    util = np.clip(0.4 + 0.3 * np.sin(2 * np.pi * t[None, :] / 3600 + phase)
                   + gen.normal(0.0, 0.05, size=(4, 12)), 0.0, 1.0)
    types_ = [["small", "big"][k] for k in gen.choice(2, size=4, p=np.array([0.75, 0.25]))]
    assert w.vms["name"].tolist() == ["flat-0", "web-0", "web-1", "web-2", "web-3"]
    assert w.vms["trace"].tolist() == ["synthetic"] * 5
    assert w.vms["vm_type"].tolist()[1:] == types_
    np.testing.assert_array_equal(w.cpu_util[:, 1:], util.T.astype(np.float32))
    assert np.all(w.cpu_util[:, 0] == np.float32(0.5))  # random phase, but no amplitude


def test_native_replay_and_extra_columns(tiny, write_yaml, tmp_path):
    (tmp_path / "t.csv").write_text("vm,time_s,cpu_util,net_rx_pps\nb,0,0.2,5\na,0,0.4,7\n"
                                    "b,1800,0.6,9\na,1800,0.8,11\n")
    (tmp_path / "c.csv").write_text("time_s,cpu_util\n0,0.1\n")  # one row, repeat: held for the whole run
    tiny["vms"] = [{"name": "w", "count": 3, "type": "small", "trace": {"native": "t.csv"}},
                   {"name": "c", "type": "small", "trace": {"native": "c.csv", "repeat": True}}]
    w = build_workload(load_scenario(write_yaml(tiny)))
    assert w.vms["name"].tolist() == ["b#0", "a#1", "b#2", "c"]
    assert w.vms["trace"].tolist() == [str(tmp_path / "t.csv")] * 3 + [str(tmp_path / "c.csv")]
    half = np.repeat([[0.2, 0.6], [0.4, 0.8], [0.2, 0.6]], 6, axis=1)  # 1800 s samples on a 300 s grid
    np.testing.assert_array_equal(w.cpu_util[:, :3], half.T.astype(np.float32))
    assert np.all(w.cpu_util[:, 3] == np.float32(0.1))
    rx = w.extra["net_rx_pps"]
    np.testing.assert_array_equal(rx[:, :3], np.repeat([[5, 9], [7, 11], [5, 9]], 6, axis=1).T.astype(np.float32))
    assert np.isnan(rx[:, 3]).all()  # c.csv has no such column: the VM's profile fills it


def test_native_file_with_a_vm_column_and_no_rows(tiny, write_yaml, tmp_path):
    (tmp_path / "e.csv").write_text("vm,time_s,cpu_util\n")
    tiny["vms"][0]["trace"] = {"native": "e.csv"}
    f = write_yaml(tiny)
    with pytest.raises(ScenarioError) as exc:
        build_workload(load_scenario(f))
    assert [str(p) for p in exc.value.problems] == [
        f"{f}: vms.0.trace.native: {tmp_path / 'e.csv'}: file has no rows (expected rows of vm, time_s, cpu_util)"]
