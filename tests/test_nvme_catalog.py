"""NVMe controllers in the hardware catalog: loaded, plausible, every figure sourced, listed by the CLI."""
import io
import os
import subprocess
import sys

import pandas as pd
import pytest

from consolidate.hardware import catalog as cat

CONTROLLERS = cat.nvme_controllers()
NAND = [n for n in CONTROLLERS if "optane" not in n]  # Optane is 3D XPoint, not NAND flash


def test_catalog_has_nvme_controllers():
    assert len(CONTROLLERS) >= 3
    assert any(c.virtual_functions == 0 for c in CONTROLLERS.values())


@pytest.mark.parametrize("name", sorted(CONTROLLERS))
def test_controller_loads_with_positive_figures(name):
    c = CONTROLLERS[name]
    assert c.name == name and c.kind == "nvme"
    assert c.interface.startswith("PCIe ")
    assert c.max_read_iops > 0 and c.max_write_iops > 0
    assert isinstance(c.virtual_functions, int) and c.virtual_functions >= 0
    assert c.sources


@pytest.mark.parametrize("name", NAND)
def test_nand_reads_at_least_as_fast_as_writes(name):
    c = CONTROLLERS[name]
    assert c.max_read_iops >= c.max_write_iops


def test_every_nvme_figure_is_sourced():
    assert cat.missing_sources() == []
    for c in CONTROLLERS.values():
        covered = {k.strip() for key in c.sources for k in key.split(",")}
        assert {"max_read_iops", "max_write_iops"} <= covered, c.name
        if c.virtual_functions:
            assert "virtual_functions" in covered, c.name


def _cli(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "400"}  # wide enough that rich does not fold names
    res = subprocess.run([sys.executable, "-m", "consolidate", "catalog", "devices", *args],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_cli_devices_lists_every_controller():
    out = _cli()
    for name in CONTROLLERS:
        assert name in out


def test_cli_devices_csv_has_nvme_figures():
    df = pd.read_csv(io.StringIO(_cli("--format", "csv"))).set_index("name")
    for name, c in CONTROLLERS.items():
        row = df.loc[name]
        assert row.kind == "nvme"
        assert (row.max_read_iops, row.max_write_iops, row.virtual_functions) == (
            c.max_read_iops, c.max_write_iops, c.virtual_functions)
        assert "published" in row.source
    assert "intel-82599" in df.index  # NICs are still listed
