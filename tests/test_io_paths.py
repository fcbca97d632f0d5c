"""Adding an I/O path is one catalog entry (docs/adding-an-io-path.md): every path of every I/O class in
devices.yaml runs in a real scenario and shows up in its class's result columns, and the emitted JSON Schema
offers exactly the catalog's paths. Nothing here lists paths: they all come from the catalog, and whether a
path holds a device from POOL_OF_PATH."""
from __future__ import annotations

import copy
import json
import tomllib

import pytest
from typer.testing import CliRunner

import consolidate
from consolidate.cli import app
from consolidate.errors import PlacementError
from consolidate.hardware import catalog as cat
from consolidate.hardware.assignment import IO_CLASSES, POOL_NAMES, POOL_OF_PATH, paths_of
from tests.conftest import REPO, TINY

CASES = [(c, p) for c in IO_CLASSES for p in paths_of(c)]
IDS = [f"{c.name}-{p}" for c, p in CASES]
# any catalog models will do: the point is that the host has a pool of each kind
NIC_MODEL = next(n for n, nic in cat.nics().items() if nic.kind == "sriov")
NVME_MODEL = next(iter(cat.nvme_controllers()))
DURATION_S = 7200
PROBE_VMS = 2


def _scenario(io_class, path: str, devices: bool) -> dict:
    """Two hosts (with a NIC and NVMe controllers when `devices`), PROBE_VMS VMs on `path`, a couple of hours with
    the overhead model on. The database profile asks for both packets and disk I/O."""
    sc = copy.deepcopy(TINY)
    host = {"name": "srv", "cores": 16, "mips_per_core": 2500, "memory_mb": 65536, "power_idle_w": 100,
            "power_max_w": 300, "cpu": "intel-skylake-sp"}
    if devices:
        host |= {"nics": [{"model": NIC_MODEL, "count": 1}], "nvme": [{"model": NVME_MODEL, "count": 2}]}
    sc["host_types"] = [host]
    sc["hosts"] = [{"type": "srv", "count": 2}]
    sc["vm_types"] = [{"name": "v", "vcpus": 2, "mips_per_vcpu": 1000, "memory_mb": 2048}]
    sc["vms"] = [{"name": "probe", "count": PROBE_VMS, "type": "v", "profile": "database",
                  "trace": {"synthetic": {"mean": 0.4, "amplitude": 0.2, "period_s": 3600, "noise_std": 0.05}},
                  "virtualization": {"io": {io_class.name: path}}}]
    sc["overhead"] = {"enabled": True}
    sc["duration_s"] = DURATION_S
    return sc


@pytest.mark.parametrize("io_class,path", CASES, ids=IDS)
def test_every_catalog_path_runs_and_is_reported(io_class, path):
    holds = path in POOL_OF_PATH
    res = consolidate.run(_scenario(io_class, path, devices=holds))
    assert getattr(res.scenario.vms[0].virtualization.io, io_class.name) == path
    assert res.summary.vms_rejected.iloc[0] == 0
    vi = res.vm_intervals
    col = f"{io_class.name}_{io_class.rate_unit}"  # net_pps, disk_iops
    demand, served, unserved = (vi[f"{col}_{k}"].to_numpy() for k in ("demand", "served", "unserved"))
    assert demand.sum() > 0 and served.sum() > 0
    assert (served <= demand + 1e-6).all()
    assert abs((demand - served - unserved).sum()) < 1e-6 * demand.sum()
    if io_class.name == "net":  # the net path is also named in the vms frame and per path in the summary
        assert (res.vms.net_path == path).all()
        s = res.summary.iloc[0]
        assert s[f"net_pps_served_mean_{path}"] > 0 and f"overhead_pct_net_{path}" in s.index
    if holds:
        # the device comes from the host's pool: without one the VMs cannot be placed
        with pytest.raises(PlacementError, match=f"needs {POOL_NAMES[POOL_OF_PATH[path]]}"):
            consolidate.run(_scenario(io_class, path, devices=False))


def test_schema_offers_the_catalog_paths_and_models_without_jsonschema():
    out = CliRunner().invoke(app, ["schema"])
    assert out.exit_code == 0, out.output
    defs = json.loads(out.stdout)["$defs"]
    for io_class in IO_CLASSES:
        branches = defs["IoSpec"]["properties"][io_class.name]["anyOf"]
        (string,) = [b for b in branches if b.get("type") == "string"]
        assert string["enum"] == list(paths_of(io_class))
        assert {"type": "null"} in branches  # unset still inherits
    assert defs["NvmeSpec"]["properties"]["model"]["enum"] == list(cat.nvme_controllers())
    assert defs["NicSpec"]["properties"]["model"]["enum"] == [n for n, nic in cat.nics().items()
                                                               if nic.kind == "sriov"]
    # the schema is for editors; the package validates with pydantic and needs no JSON Schema validator (the
    # tests use one, from the test extras, to check the schema accepts every shipped scenario)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.lower().startswith("jsonschema")]
