"""Fuzzing the front door: generated scenarios and trace files, valid and broken, through `consolidate validate`
and `consolidate run` in a real subprocess with a memory cap and a time limit. Whatever comes in, the answer is
exit 0 or exit 2 with short one-line errors: never a traceback, a hang or unbounded memory.

The default run tries a fixed handful of cases (derandomized, a few seconds each); `pytest -m slow` runs the long
variant with fresh random cases.
"""
from __future__ import annotations

import copy
import math
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.conftest import TINY

CLI = [sys.executable, "-m", "consolidate"]
MEMORY_CAP_BYTES = 6 * 2**30  # address space: the interpreter with numpy, pandas, pyarrow maps about 2 GiB
TIME_LIMIT_S = 60

# values that have broken parsers before: types, signs, infinities, huge and tiny, long strings, nesting
ODD = st.one_of(
    st.booleans(), st.none(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0, -1, 1e300, 1e-300, 10**12, 2**63, 2**64]),
    st.text(max_size=20), st.just("x" * 5000), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
PATHS = ["name", "seed", "duration_s", "interval_s", "hosts.0.count", "hosts.0.type", "vm_types.0.vcpus",
         "vm_types.0.mips_per_vcpu", "vm_types.0.memory_mb", "vms.0.count", "vms.0.type", "vms.0.trace",
         "vms.0.trace.synthetic.mean", "vms.0.trace.synthetic.period_s", "placement", "cpu_overcommit",
         "consolidation", "consolidation.policy", "migration.bandwidth_share", "network.topology", "overhead",
         "maintenance", "host_types", "typo_field"]


def _set(data: dict, dotted: str, value) -> None:
    node = data
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if not isinstance(nxt, (dict, list)):
            return
        node = nxt
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value


@st.composite
def scenarios(draw) -> tuple[str, dict[str, bytes]]:
    """(scenario text, {file name: bytes}) for a folder: a valid tiny scenario with some fields broken, or a
    native trace (good, or garbage), or no YAML at all."""
    data = copy.deepcopy(TINY)
    files: dict[str, bytes] = {}
    kind = draw(st.sampled_from(["fields", "fields", "trace", "bytes", "yaml"]))
    if kind == "fields":
        for path in draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3, unique=True)):
            _set(data, path, draw(ODD))
    elif kind == "trace":
        rows = draw(st.lists(st.tuples(st.floats(-10, 1e5), st.floats(-1, 2)), max_size=30))
        text = "time_s,cpu_util\n" + "".join(f"{t},{u}\n" for t, u in rows)
        body = draw(st.sampled_from([text.encode(), b"\0" * 4096, bytes(range(256)) * 8, b"", b"time_s\n1\n"]))
        files["t.csv"] = body
        data["vms"][0]["trace"] = {"native": "t.csv", "repeat": draw(st.booleans())}
        data["vms"][0].pop("count")
    elif kind == "bytes":
        return draw(st.binary(max_size=200)).decode("latin-1"), files
    else:  # YAML structure: anchors, deep nesting, duplicate keys
        depth = draw(st.integers(1, 200))
        return draw(st.sampled_from([
            "name: a\nname: b\n", "[" * depth + "]" * depth, "a: &a [1,2]\nb: [*a, *a]\n",
            "name: x\nduration_s: .inf\ninterval_s: .nan\n", ": : :\n", "- - -\n"])), files
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True), files


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))


def _check(cmd: list[str], cwd: Path) -> None:
    r = subprocess.run([*CLI, *cmd], cwd=cwd, capture_output=True, text=True, timeout=TIME_LIMIT_S,
                       preexec_fn=_bounded, errors="replace")
    assert r.returncode in (0, 2), (cmd, r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    if r.returncode == 2:
        lines = r.stderr.strip().splitlines()
        assert lines and len(lines) <= 50, r.stderr[-2000:]
        assert all(len(line) <= 1000 for line in lines), max(lines, key=len)[:300]


def _fuzz_once(tmp_path_factory, case) -> None:
    text, files = case
    d = tmp_path_factory.mktemp("fuzz")
    (d / "s.yaml").write_text(text, errors="replace")
    for name, body in files.items():
        (d / name).write_bytes(body)
    _check(["validate", "s.yaml"], d)
    _check(["run", "s.yaml", "--out", "out", "--no-csv", "-q"], d)


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=scenarios())
def test_generated_inputs_exit_0_or_2_without_a_traceback(tmp_path_factory, case):
    _fuzz_once(tmp_path_factory, case)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=scenarios())
def test_generated_inputs_long(tmp_path_factory, case):
    _fuzz_once(tmp_path_factory, case)


@pytest.mark.parametrize("text,message", [
    ("name: a\nname: b\n", "s.yaml: line 2, column 1: YAML duplicate key (got 'name' again, first on line 1; "
                           "expected each key once)"),
    ("[" * 100 + "]" * 100, "s.yaml: line 1, column 65: YAML nested too deeply (got more than 64 levels, "
                            "expected at most 64)"),
    ("a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n"
                                              for p, c in zip("abcdefgh", "bcdefghi")),
     "s.yaml: YAML too large once its aliases are expanded (got more than 1,000,000 values, expected a "
     "scenario; an alias bomb?)"),
])
def test_yaml_bombs_are_refused_in_milliseconds_with_one_line(tmp_path, text, message):
    (tmp_path / "s.yaml").write_text(text)
    r = subprocess.run([*CLI, "validate", "s.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                       preexec_fn=_bounded)
    assert (r.returncode, r.stderr) == (2, message + "\n")


def test_the_memory_cap_leaves_room_for_a_real_run(tmp_path):
    # the bound above must not be what makes cases fail: a valid scenario runs under it
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(TINY))
    _check(["run", "s.yaml", "--out", "out", "-q"], tmp_path)
    assert (tmp_path / "out" / "run.json").exists()
    assert math.isfinite(MEMORY_CAP_BYTES)
