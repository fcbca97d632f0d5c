"""The report of a run whose VMs arrive and leave: live and queued VMs against active hosts, and one line with the
arrivals, departures, waits and rejections (issue 13 item 1)."""
from __future__ import annotations

import base64
import subprocess

import pandas as pd
import pytest

import consolidate
from tests.conftest import REPO
from tests.test_browser import _check_page, browser_path, page  # noqa: F401  (fixtures)

HOST = "hp-proliant-ml110-g5"


@pytest.fixture(scope="module")
def azure_run(tmp_path_factory):
    """scenarios/azure.yaml run by the CLI, as a user runs it."""
    out = tmp_path_factory.mktemp("azure") / "run"
    r = subprocess.run(["python", "-m", "consolidate", "run", str(REPO / "scenarios" / "azure.yaml"), "--out",
                        str(out), "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out


def test_azure_report_plots_live_vms_against_active_hosts(azure_run):
    png = azure_run / "plots" / "live_vms.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    page = (azure_run / "index.html").read_text()
    # the page embeds that very file (it stands alone), under the plot's name
    assert base64.b64encode(png.read_bytes()).decode() in page and 'alt="live vms"' in page
    dc = pd.read_parquet(azure_run / "datacenter.parquet")
    s = pd.read_parquet(azure_run / "summary.parquet").iloc[0]
    assert s["vms_arrived"] == 14 and s["vms_departed"] == 11 and dc["vms_live"].max() == s["vms_live_max"] == 14
    assert ("<b>VMs that arrive and leave:</b> 14 arrived and 11 departed during the run, at most 14 live at once; "
            "0 waited for a host; 0 were rejected.") in page


def test_queue_and_rejections_in_the_line_and_no_plot_without_lifecycles(tmp_path):
    # one host holds 4 small VMs; 4 live to 3000 s, 4 more arrive at 1000 s and wait for them (2000 s each)
    vm_types = [{"name": "s", "vcpus": 1, "mips_per_vcpu": 1000, "memory_mb": 1024}]
    base = {"name": "base", "count": 4, "type": "s", "end_s": 3000, "trace": {"synthetic": {"mean": 0.2}}}
    late = {"name": "late", "count": 4, "type": "s", "start_s": 1000, "end_s": 5000,
            "trace": {"synthetic": {"mean": 0.2}}}
    data = {"name": "q", "duration_s": 6000, "interval_s": 300, "hosts": [{"type": HOST, "count": 1}],
            "vm_types": vm_types, "on_unplaceable": "queue", "vms": [base, late]}
    out = consolidate.write(consolidate.run(data), tmp_path / "q")
    page = (out / "index.html").read_text()
    assert ("4 arrived and 8 departed during the run, at most 8 live at once; 4 waited for a host (median wait "
            "2,000 <span class=unit>s</span>, longest 2,000 <span class=unit>s</span>); 0 were rejected.") in page
    dc = pd.read_parquet(out / "datacenter.parquet")
    # the plot's queued line: the 4 late VMs wait in every interval from 1000 s to 3000 s
    assert dc.loc[dc.time_s.between(900, 2700), "vms_queued"].eq(4).all() and dc.vms_queued.iloc[-1] == 0
    assert (out / "plots" / "live_vms.png").is_file()
    data["vms"] = [{k: v for k, v in base.items() if k != "end_s"}]
    out = consolidate.write(consolidate.run(data), tmp_path / "classic")
    assert not (out / "plots" / "live_vms.png").exists()
    assert "id=lifecycles" not in (out / "index.html").read_text()


def test_azure_report_in_a_real_browser(page, azure_run, tmp_path):  # noqa: F811
    seen = _check_page(page, azure_run / "index.html", tmp_path / "azure.png")
    assert seen["images"] == 4  # active hosts, utilisation, power, live VMs
    assert "VMs that arrive and leave: 14 arrived and 11 departed" in seen["text"]
