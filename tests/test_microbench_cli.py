"""`consolidate microbench`, `consolidate calibration` and `consolidate catalog KIND` from the command line."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from consolidate.cli import app

runner = CliRunner()
KUT = ["cpuid", "vmcall", "mov_from_cr8", "mov_to_cr8", "inl_from_pmtimer", "inl_from_qemu", "inl_from_kernel",
       "outl_to_kernel", "mov_dr", "ipi", "ipi_halt", "tscdeadline", "tscdeadline_immed", "wr_tsc_adjust_msr",
       "rd_tsc_adjust_msr", "wr_ibpb_msr", "toggle_cr4_pge", "ple_round_robin"]
AA = ["syscall", "in", "cr8wr", "call/ret", "pgfault", "divzero", "ptemod"]


def _csv(args) -> pd.DataFrame:
    res = runner.invoke(app, ["microbench", *args, "--format", "csv"])
    assert res.exit_code == 0, res.stderr
    return pd.read_csv(io.StringIO(res.stdout))


def test_csv_has_every_benchmark_and_the_documented_columns():
    df = _csv(["--cpu", "intel-sandybridge", "--hypervisor", "kvm-qemu-2012"])
    assert list(df.columns) == ["benchmark", "mode", "paging", "cycles", "exits"]
    assert df.benchmark.tolist() == KUT + AA
    row = df.set_index("benchmark").loc["vmcall"]
    assert (row["mode"], row["paging"], row["cycles"], row["exits"]) == ("hw", "ept", 3898.0, 1)  # kut2012_vmcall


def test_event_mode_prints_the_same_numbers():
    args = ["--cpu", "intel-penryn", "--hypervisor", "kvm-qemu"]
    rate, event = _csv(args), _csv(args + ["--event-mode"])
    assert (rate.exits == event.exits).all()
    assert ((rate.cycles - event.cycles).abs() <= 0.01 * rate.cycles + 0.1).all()


def test_modes_and_paging_choices():
    bt = _csv(["--cpu", "intel-prescott", "--hypervisor", "vmware-esx-bt", "--mode", "bt", "--suite", "adams-agesen"])
    assert set(bt["mode"]) == {"bt"} and (bt.exits == 0).all()
    assert bt.set_index("benchmark").loc["ptemod", "cycles"] == 391  # aa2006_ptemod_bt
    shadow = _csv(["--cpu", "intel-haswell", "--hypervisor", "kvm-qemu", "--paging", "shadow", "--suite", "adams-agesen"])
    ept = _csv(["--cpu", "intel-haswell", "--hypervisor", "kvm-qemu", "--paging", "ept", "--suite", "adams-agesen"])
    s, e = shadow.set_index("benchmark"), ept.set_index("benchmark")
    assert s.loc["pgfault", "exits"] == 1 and e.loc["pgfault", "exits"] == 0
    assert s.loc["pgfault", "cycles"] > e.loc["pgfault", "cycles"]
    native = _csv(["--cpu", "amd-zen3", "--mode", "native"])
    assert (native.exits == 0).all() and set(native.paging) == {"native"}


def test_disabling_apicv_adds_the_eoi_exit():
    on = _csv(["--cpu", "intel-icelake-sp", "--hypervisor", "kvm-qemu"]).set_index("benchmark")
    off = _csv(["--cpu", "intel-icelake-sp", "--hypervisor", "kvm-qemu", "--disable", "apicv"]).set_index("benchmark")
    assert off.loc["tscdeadline_immed", "exits"] == on.loc["tscdeadline_immed", "exits"] + 1


def test_json_format():
    res = runner.invoke(app, ["microbench", "--cpu", "amd-zen4", "--hypervisor", "kvm-qemu", "--format", "json",
                              "--suite", "kvm-unit-tests"])
    rows = json.loads(res.stdout)
    assert [r["benchmark"] for r in rows] == KUT and rows[0]["paging"] == "npt"


@pytest.mark.parametrize("args,message", [
    (["--cpu", "intel-i9"], "microbench: --cpu: unknown CPU (got 'intel-i9', expected one of: intel-prescott, "),
    (["--cpu", "intel-haswell"], "microbench: --hypervisor: required for mode 'hw' (expected one of: kvm-qemu, "),
    (["--cpu", "intel-merom", "--hypervisor", "kvm-qemu", "--paging", "ept"],
     "microbench: ept requested but intel-merom (Core 2 (Merom/Woodcrest)) lacks it (expected paging: shadow)"),
    (["--cpu", "intel-haswell", "--hypervisor", "kvm-qemu", "--disable", "turbo"],
     "microbench: --disable: unknown feature (got 'turbo', expected one of: vpid, apicv, "),
])
def test_bad_arguments_exit_2_with_a_clear_line(args, message):
    res = runner.invoke(app, ["microbench", *args])
    assert res.exit_code == 2
    assert res.stderr.startswith(message), res.stderr


def test_calibration_command_all_within_tolerance():
    res = runner.invoke(app, ["calibration", "--format", "csv"])
    assert res.exit_code == 0, res.stdout
    df = pd.read_csv(io.StringIO(res.stdout))
    assert df.ok.all() and len(df) >= 28
    assert set(df.columns) >= {"id", "published", "predicted", "error", "tolerance", "fitted", "setup", "source"}


@pytest.mark.parametrize("kind,expected", [("cpus", 15), ("hypervisors", 9), ("devices", 18), ("hosts", 7)])
def test_catalog_kinds_list_with_sources(kind, expected):
    res = runner.invoke(app, ["catalog", kind, "--format", "csv"])
    assert res.exit_code == 0
    df = pd.read_csv(io.StringIO(res.stdout))
    assert len(df) == expected
    assert df.source.notna().all() and (df.source.str.len() > 10).all()
