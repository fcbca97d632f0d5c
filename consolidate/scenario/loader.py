"""Read a scenario from YAML (safe_load only) or a dict, validate it, and report every problem at once.

Messages follow `FILE: field.path: what was wrong (got X, expected Y)`.
"""
from __future__ import annotations

import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from consolidate.errors import Problem, ScenarioError
from consolidate.scenario.model import HostType, Scenario


def default_scenario_path() -> Path:
    """Path of the embedded default scenario (one PlanetLab day on the study's two HP ProLiant types)."""
    return Path(str(resources.files("consolidate.data") / "default.yaml"))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at `loc` (for listing allowed keys)."""
    cls: Any = root
    for part in loc:
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            field = cls.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            cls = field.annotation
        elif isinstance(part, int):
            args = typing.get_args(cls)
            cls = args[0] if args else None
        else:
            return None
        # unwrap Optional[...] / Annotated[...] / list[...] until a model or a list remains
        while True:
            origin = typing.get_origin(cls)
            if origin in (typing.Union, types.UnionType):
                cls = next((a for a in typing.get_args(cls) if a is not type(None)), None)
            elif origin is typing.Annotated:
                cls = typing.get_args(cls)[0]
            else:
                break
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _problem_from_pydantic(file: str, err: dict) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(Scenario, loc[:-1])
        allowed = ", ".join(owner.model_fields) if owner else "see `consolidate schema`"
        return Problem(file, ".".join(map(str, loc)), f"unknown field (got {loc[-1]!r}, expected one of: {allowed})")
    path = ".".join(map(str, loc))
    if kind == "missing":
        return Problem(file, path, "required field is missing")
    if kind == "consolidate":  # our own validators already say got/expected
        return Problem(file, path, err["msg"])
    msg = err["msg"]
    expected = msg[len("Input should be "):] if msg.startswith("Input should be ") else msg
    return Problem(file, path, f"invalid value (got {_short(err.get('input'))}, expected {expected})")


def _cross_checks(sc: Scenario, file: str) -> list[Problem]:
    """Checks that span fields: names unique, references resolvable, the time grid consistent."""
    from consolidate.hardware.catalog import host_catalog

    problems: list[Problem] = []
    ratio = sc.duration_s / sc.interval_s
    if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        problems.append(Problem(file, "duration_s", f"not a whole number of intervals (got {sc.duration_s:g} s with "
                                f"interval_s {sc.interval_s:g}, expected a multiple of interval_s)"))
    for kind, items in (("host_types", sc.host_types), ("vm_types", sc.vm_types)):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.name in seen:
                problems.append(Problem(file, f"{kind}.{i}.name", f"duplicate name (got {item.name!r} twice)"))
            seen.add(item.name)
    known_hosts = sorted({*host_catalog(), *(h.name for h in sc.host_types)})
    for i, group in enumerate(sc.hosts):
        if group.type not in known_hosts:
            problems.append(Problem(file, f"hosts.{i}.type", f"unknown host type (got {group.type!r}, expected one "
                                    f"of: {', '.join(known_hosts)})"))
    if sum(g.count for g in sc.hosts) == 0:
        problems.append(Problem(file, "hosts", "no hosts (got a total count of 0, expected at least 1)"))
    known_vms = [v.name for v in sc.vm_types]
    for i, group in enumerate(sc.vms):
        for j, t in enumerate(group.type.types):
            if t not in known_vms:
                problems.append(Problem(file, f"vms.{i}.type.types.{j}" if group.type.rule != "fixed" else f"vms.{i}.type",
                                        f"unknown VM type (got {t!r}, expected one of: {', '.join(known_vms)})"))
    return problems


def host_types_of(sc: Scenario) -> dict[str, HostType]:
    """Host types a scenario can use: the catalog's, overridden by the scenario's own of the same name."""
    from consolidate.hardware.catalog import host_catalog

    types_ = {name: entry.host_type for name, entry in host_catalog().items()}
    types_.update({h.name: h for h in sc.host_types})
    return types_


def load_scenario(source: str | Path | dict, *, base_dir: str | Path | None = None,
                  overrides: dict[str, Any] | None = None) -> Scenario:
    """Load and validate a scenario from a YAML path or a dict.

    Relative paths inside the scenario resolve against the file's folder (or `base_dir` for a dict,
    default the current folder). `overrides` sets top-level fields (e.g. `{"seed": 7}`) before
    validation. Raises ScenarioError listing every problem found.
    """
    if isinstance(source, dict):
        file, data = "<dict>", dict(source)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(source)
        file = str(source)
        if not path.is_file():
            raise ScenarioError([Problem(file, "", "scenario file does not exist")])
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = getattr(exc, "problem", None) or str(exc)
            raise ScenarioError([Problem(file, where, f"YAML syntax error: {what}")]) from None
        except UnicodeDecodeError:
            raise ScenarioError([Problem(file, "", "not a text file (expected UTF-8 YAML)")]) from None
        base = Path(base_dir) if base_dir is not None else path.resolve().parent
    if not isinstance(data, dict):
        raise ScenarioError([Problem(file, "", f"expected a mapping of scenario fields at the top level "
                                     f"(got {type(data).__name__})")])
    if overrides:
        data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError([_problem_from_pydantic(file, e) for e in exc.errors()]) from None
    problems = _cross_checks(sc, file)
    if problems:
        raise ScenarioError(problems)
    sc._file = file
    sc._base_dir = base
    return sc
