"""The house rules that keep the layers apart: imports point one way, no function-local import dodges that, and
the scenario hash does not move when the schema grows."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import consolidate
from consolidate.results.frames import scenario_sha256
from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "consolidate"


def test_layers_point_one_way():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    done = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout or "BROKEN" not in done.stdout


def _local_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Imports of consolidate modules inside functions, outside `if TYPE_CHECKING:` blocks."""
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("consolidate"):
                out.append((node.lineno, node.module))
            elif isinstance(node, ast.Import) and any(a.name.startswith("consolidate") for a in node.names):
                out.append((node.lineno, node.names[0].name))
    return out


def test_no_function_local_imports_outside_the_cli():
    # the CLI imports its subcommands lazily to start fast; anywhere else a local import would hide a cycle
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py" and path.parent == PACKAGE:
            continue
        local = _local_imports(ast.parse(path.read_text()))
        if local:
            found[str(path.relative_to(ROOT))] = local
    assert found == {}


def test_the_scenario_hash_ignores_fields_left_at_their_defaults():
    explicit = {**TINY, "cpu_overcommit": 1.0, "host_order": "groups", "maintenance": []}
    a, b = consolidate.load_scenario(TINY), consolidate.load_scenario(explicit)
    assert scenario_sha256(a) == scenario_sha256(b)
    c = consolidate.load_scenario({**TINY, "cpu_overcommit": 1.25})
    assert scenario_sha256(c) != scenario_sha256(a)


def test_the_lint_rule_itself_sees_a_local_import():
    tree = ast.parse("def f():\n    from consolidate.engine import state\n    return state\n")
    assert _local_imports(tree) == [(2, "consolidate.engine")]
