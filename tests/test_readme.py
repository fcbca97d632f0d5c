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


def test_the_default_scenario_line_matches_a_fresh_run():
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "readme_figures.py"), "--check"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_the_check_fails_on_a_stale_figure(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import readme_figures
    finally:
        sys.path.pop(0)
    stale = tmp_path / "README.md"
    text = (REPO / "README.md").read_text()
    m = readme_figures.BLOCK.search(text)
    stale.write_text(text[:m.start(2)] + m.group(2).replace(" hosts active", " hosts  active") + text[m.end(2):])
    monkeypatch.setattr(readme_figures, "README", stale)
    monkeypatch.setattr(readme_figures, "default_run_text", lambda: m.group(2))  # the real run: test above
    assert readme_figures.main(["--check"]) == 1
    assert readme_figures.main([]) == 0 and stale.read_text() == text


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
