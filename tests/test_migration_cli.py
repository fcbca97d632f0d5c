"""`consolidate migration`: one migration alone on its link, the closed forms of policies/precopy.py as a table or
CSV (model,total_s,downtime_s,rounds,bytes_sent,converged); bad options are one-line errors with exit code 2."""
from __future__ import annotations

import io

import pandas as pd
import pytest
from typer.testing import CliRunner

from consolidate.cli import app
from consolidate.hardware import catalog as cat
from consolidate.policies.precopy import physical_costs, precopy_plan

GIB = 2**30
TEN_GBE = 10e9 / 8  # bytes/s
KVM = cat.migration_figures("kvm-qemu")


def _cli(*args: str) -> dict:
    res = CliRunner().invoke(app, ["migration", *args, "--format", "csv"])
    assert res.exit_code == 0, res.output
    return pd.read_csv(io.StringIO(res.stdout)).iloc[0].to_dict()


def test_cli_reproduces_the_closed_forms():
    row = _cli("--memory-mib", "1024", "--link-gbps", "10", "--zero-fraction", "0.95")
    plan = precopy_plan(GIB, 0.0, TEN_GBE, 0.03, 30, costs=physical_costs("kvm-qemu", zero_fraction=0.95))
    assert row["total_s"] == pytest.approx(plan.total_s, rel=1e-5)
    assert row["downtime_s"] == pytest.approx(KVM.switchover_s, rel=1e-5) and row["downtime_s"] > 0
    assert row["bytes_sent"] == pytest.approx(plan.wire_bytes, rel=1e-5) and row["model"] == "precopy"
    ideal = _cli("--memory-mib", "1024", "--link-gbps", "10", "--costs", "ideal")
    assert ideal["total_s"] == pytest.approx(GIB * 8 / 10e9, rel=1e-5) and ideal["downtime_s"] == 0
    busy = _cli("--memory-mib", "4096", "--link-gbps", "1", "--dirty-mib-per-s", "200", "--hypervisor", "kvm-qemu-2012")
    assert busy["converged"] is False or busy["converged"] in ("false", False)
    post = _cli("--memory-mib", "1024", "--link-gbps", "10", "--model", "postcopy")
    assert post["rounds"] == 1 and post["downtime_s"] == pytest.approx(KVM.switchover_s, rel=1e-5)
    bad = CliRunner().invoke(app, ["migration", "--memory-mib", "0", "--link-gbps", "10"])
    assert bad.exit_code == 2 and "--memory-mib" in bad.stderr and "Traceback" not in bad.output


