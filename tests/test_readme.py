"""The README tells the truth: its cheap figures are rerun and compared with the text, and the JSON Schema
that `consolidate schema` gives editors accepts every shipped scenario (checked with the jsonschema library)."""
from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml

from consolidate import api
from consolidate.scenario.loader import parse_yaml
from tests.conftest import REPO

SCENARIOS = sorted((REPO / "scenarios").rglob("*.yaml"))


def _figures():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import readme_figures
    finally:
        sys.path.pop(0)
    return readme_figures


def test_the_cheap_figures_match_fresh_runs():
    """Every cheap block of README.md and docs/ (default run, what-if tables, BT vs HW, CloudSim reproduction,
    calibration) against the real commands, in a fresh process."""
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "readme_figures.py"), "--check"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-6000:]


@pytest.mark.slow
def test_the_slow_figures_match_fresh_runs():
    """The policy, direct-assignment and pre-copy blocks too (minutes); benchmark timings are only regenerated."""
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "readme_figures.py"), "--check", "--slow"],
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-6000:]


def test_every_block_is_marked_once_and_names_its_command():
    rf = _figures()
    for b in rf.BLOCKS:
        text = (REPO / b.file).read_text()
        found = rf.marker_re(b.name).findall(text)
        assert len(found) == 1, f"{b.file}: {b.name}"
        assert f"<!-- {b.name}:begin ({b.command}) -->" in text, f"{b.file}: {b.name} does not name its command"
    assert {b.cost for b in rf.BLOCKS} == {"cheap", "slow", "timing"}
    assert [b.name for b in rf.selected(slow=False, check=True)] == [b.name for b in rf.BLOCKS if b.cost == "cheap"]
    assert all(b.cost != "timing" for b in rf.selected(slow=True, check=True))


def test_the_check_fails_on_a_stale_figure_and_regenerating_repairs_it(tmp_path, monkeypatch):
    """A copy of the README with one figure changed: --check exits 1 naming the block, a rewrite restores the text
    byte for byte, and a deleted marker is an error (exit 2). The real run is the test above; here the block's
    renderer returns the README's own text."""
    rf = _figures()
    text = (REPO / "README.md").read_text()
    block = next(b for b in rf.BLOCKS if b.name == "whatif-table")
    good = rf.marker_re(block.name).search(text).group(1)
    (tmp_path / "README.md").write_text(text.replace(good, good.replace("| 246.6 |", "| 246.7 |")))
    monkeypatch.setattr(rf, "REPO", tmp_path)
    monkeypatch.setattr(rf, "BLOCKS", (rf.Block(block.name, "README.md", block.command, lambda: good),))
    assert rf.main(["--check"]) == 1
    assert rf.main([]) == 0 and (tmp_path / "README.md").read_text() == text
    assert rf.main(["--check"]) == 0
    (tmp_path / "README.md").write_text(text.replace(f"<!-- {block.name}:end -->", ""))
    assert rf.main(["--check"]) == 2


@pytest.fixture(scope="module")
def validator():
    out = subprocess.run([sys.executable, "-m", "consolidate", "schema"], capture_output=True, text=True, timeout=60)
    schema = json.loads(out.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.relative_to(REPO / "scenarios").as_posix())
def test_the_schema_accepts_every_shipped_scenario(validator, path):
    data = parse_yaml(path.read_text())  # the loader's YAML (1.2 floats: 25.0e9 is a number, as in editors)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(data)]
    assert errors == []


def test_the_schema_still_rejects_what_the_loader_rejects(validator):
    good = {"name": "x", "duration_s": 3600, "interval_s": 300, "hosts": [{"type": "h", "count": 1}],
            "vm_types": [{"name": "s", "mips_per_vcpu": 1, "memory_mb": 1}],
            "vms": [{"type": "s", "trace": {"synthetic": {"mean": 0.5}}, "count": 1}]}
    assert list(validator.iter_errors(good)) == []
    for bad in ({**good, "typo": 1}, {**good, "duration_s": -1}, {**good, "seed": 2**63},
                {k: v for k, v in good.items() if k != "name"}):
        assert list(validator.iter_errors(bad)), bad


def test_the_embedded_default_is_accepted_too(validator):
    assert list(validator.iter_errors(yaml.safe_load(api.default_scenario_path().read_text()))) == []


def test_an_edit_made_while_rendering_is_kept(tmp_path, monkeypatch):
    """Blocks take minutes with --slow while others edit the same README: the file is read again before writing."""
    rf = _figures()
    text = (REPO / "README.md").read_text()
    block = next(b for b in rf.BLOCKS if b.name == "whatif-table")
    good = rf.marker_re(block.name).search(text).group(1)
    readme = tmp_path / "README.md"
    readme.write_text(text.replace(good, good.replace("| 246.6 |", "| 246.7 |")))

    def render():
        readme.write_text(readme.read_text() + "\nA section someone added meanwhile.\n")
        return good

    monkeypatch.setattr(rf, "REPO", tmp_path)
    monkeypatch.setattr(rf, "BLOCKS", (rf.Block(block.name, "README.md", block.command, render),))
    assert rf.main([]) == 0
    assert readme.read_text() == text + "\nA section someone added meanwhile.\n"
