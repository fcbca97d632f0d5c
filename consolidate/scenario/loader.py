"""Read a scenario from YAML (safe_load only) or a dict, validate it, and report every problem at once.

Messages follow `FILE: field.path: what was wrong (got X, expected Y)`.
"""
from __future__ import annotations

import re
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from consolidate.errors import Problem, ScenarioError, not_a_regular_file, short
from consolidate.scenario.model import Scenario

# Limits on what a scenario file may ask of the reader. A real scenario is a few KB with a handful of anchors;
# these stop a 2 GB file, an alias bomb ("billion laughs") or [[[[...]]]] before they cost memory or a stack.
MAX_SCENARIO_BYTES = 16 * 2**20
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 1_000_000  # nodes after expanding every alias

RawCheck = Callable[[dict, str], list[Problem]]  # (raw mapping, file) -> problems; runs beside field validation
Check = Callable[[Scenario, str], list[Problem]]  # (validated scenario, file) -> problems


def default_scenario_path() -> Path:
    """Path of the embedded default scenario (one PlanetLab day on the study's two HP ProLiant types)."""
    return Path(str(resources.files("consolidate.data") / "default.yaml"))


_short = short


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


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)  # an int bound exactly: 9223372036854775807, not 9.2e18


def problem_from_pydantic(file: str, err: dict) -> Problem:
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
    ctx = err.get("ctx") or {}
    msg = err["msg"]
    expected = {
        "greater_than": f"a number > {_num(ctx.get('gt', 0))}",
        "greater_than_equal": f"a number >= {_num(ctx.get('ge', 0))}",
        "less_than": f"a number < {_num(ctx.get('lt', 0))}",
        "less_than_equal": f"a number <= {_num(ctx.get('le', 0))}",
        "too_short": f"at least {ctx.get('min_length')} item(s)",
        "too_long": f"at most {ctx.get('max_length')} item(s)",
        "string_pattern_mismatch": "a name of letters, digits and _ . + - (no spaces, not starting with a symbol)",
        "string_too_short": "a non-empty string",
    }.get(kind)
    if expected is None:
        expected = msg[len("Input should be "):] if msg.startswith("Input should be ") else msg
    return Problem(file, path, f"invalid value (got {_short(err.get('input'))}, expected {expected})")


def _cross_checks(data: dict, file: str) -> list[Problem]:
    """Checks that span fields: names unique, references resolvable, the time grid consistent.

    They read the raw mapping defensively, so they run (and report) even when field validation failed:
    the user sees every problem in one pass.
    """
    def items(key: str) -> list[tuple[int, dict]]:
        v = data.get(key)
        return [(i, x) for i, x in enumerate(v) if isinstance(x, dict)] if isinstance(v, list) else []

    def num(key: str) -> float | None:
        v = data.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None

    problems: list[Problem] = []
    duration, interval = num("duration_s"), num("interval_s")
    if duration and interval:
        ratio = duration / interval
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            problems.append(Problem(file, "duration_s", f"not a whole number of intervals (got {duration:g} s with "
                                    f"interval_s {interval:g}, expected a multiple of interval_s)"))
    names: dict[str, list[str]] = {}
    for kind in ("host_types", "vm_types"):
        seen: list[str] = []
        for i, item in items(kind):
            name = item.get("name")
            if isinstance(name, str):
                if name in seen:
                    problems.append(Problem(file, f"{kind}.{i}.name", f"duplicate name (got {name!r} twice)"))
                seen.append(name)
        names[kind] = seen
    counts = [g.get("count") for _, g in items("hosts")]
    if counts and all(isinstance(c, int) for c in counts) and sum(counts) == 0:
        problems.append(Problem(file, "hosts", "no hosts (got a total count of 0, expected at least 1)"))
    known_vms = names["vm_types"]
    for i, group in items("vms"):
        t = group.get("type")
        refs = [(f"vms.{i}.type", t)] if isinstance(t, str) else []
        if isinstance(t, dict) and isinstance(t.get("types"), list):
            refs = [(f"vms.{i}.type.types.{j}", x) for j, x in enumerate(t["types"])]
        for path, ref in refs:
            if isinstance(ref, str) and ref not in known_vms:
                problems.append(Problem(file, path, f"unknown VM type (got {ref!r}, expected one of: "
                                        f"{', '.join(known_vms) or '(no vm_types defined)'})"))
    return problems


def _drain_checks(sc: Scenario, file: str) -> list[Problem]:
    """Drains must name hosts that exist and start within the run."""
    problems = []
    n_hosts = sum(g.count for g in sc.hosts)
    used = [g.type for g in sc.hosts]
    for i, d in enumerate(sc.maintenance):
        if d.at_s >= sc.duration_s:
            problems.append(Problem(file, f"maintenance.{i}.at_s", f"after the run ends (got {d.at_s:g}, expected "
                                    f"< duration_s {sc.duration_s:g})"))
        if d.hosts is not None and any(h >= n_hosts for h in d.hosts):
            problems.append(Problem(file, f"maintenance.{i}.hosts", f"no such host (got {max(d.hosts)}, expected "
                                    f"0..{n_hosts - 1})"))
        if d.host_type is not None and d.host_type not in used:
            problems.append(Problem(file, f"maintenance.{i}.host_type", f"no hosts of this type (got "
                                    f"{d.host_type!r}, expected one of: {', '.join(dict.fromkeys(used))})"))
        racks = -(-n_hosts // sc.network.hosts_per_rack)
        if d.rack is not None and d.rack >= racks:
            problems.append(Problem(file, f"maintenance.{i}.rack", f"no such rack (got {d.rack}, expected 0..{racks - 1} "
                                    f"with network.hosts_per_rack {sc.network.hosts_per_rack})"))
    return problems


def set_path(data: dict, dotted: str, value: Any) -> None:
    """Set `value` at a dotted path (`vms.0.virtualization.io.net`) in nested dicts and lists, creating
    mappings on the way. Raises KeyError with a message naming the first part that cannot be followed."""
    parts = dotted.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise KeyError(f"{'.'.join(parts[:i + 1])}: no such list item (got {part!r}, expected 0..{len(node) - 1})")
            node = node[int(part)]
        elif isinstance(node, dict):
            if node.get(part) is None:
                node[part] = [] if nxt.isdigit() else {}
            node = node[part]
        else:
            raise KeyError(f"{'.'.join(parts[:i])}: not a mapping or list (got {type(node).__name__})")
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise KeyError(f"{dotted}: no such list item (got {last!r}, expected 0..{len(node) - 1})")
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise KeyError(f"{'.'.join(parts[:-1])}: not a mapping or list (got {type(node).__name__})")


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading floats as YAML 1.2 does: `25.0e9` and `1e9` are numbers (YAML 1.1 reads them as
    strings, which editors following the 1.2 JSON Schema then reject)."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


class _YamlLimit(Exception):
    """A YAML document over one of the limits above; the message says which."""


def _check_events(text: str) -> None:
    """Nesting depth from the event stream (PyYAML's parser is iterative; its composer recurses, so depth is
    checked before composing)."""
    depth = 0
    for ev in yaml.parse(text, Loader=YamlLoader):
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                mark = ev.start_mark
                raise _YamlLimit(f"line {mark.line + 1}, column {mark.column + 1}",
                                 f"nested too deeply (got more than {MAX_YAML_DEPTH} levels, expected at most "
                                 f"{MAX_YAML_DEPTH})")
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _check_nodes(root: yaml.Node) -> None:
    """Duplicate keys, and the size of the document once every alias is expanded (counted, not expanded)."""
    size: dict[int, int] = {}

    def expanded(node: yaml.Node) -> int:
        if id(node) in size:
            return size[id(node)]
        n = 1
        if isinstance(node, yaml.SequenceNode):
            n += sum(expanded(c) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        mark = k.start_mark
                        raise _YamlLimit(f"line {mark.line + 1}, column {mark.column + 1}",
                                         f"duplicate key (got {short(k.value)} again, first on line "
                                         f"{seen[k.value].start_mark.line + 1}; expected each key once)")
                    seen[k.value] = k
                n += expanded(k) + expanded(v)
        size[id(node)] = n
        if n > MAX_YAML_NODES:
            raise _YamlLimit("", f"too large once its aliases are expanded (got more than {MAX_YAML_NODES:,} "
                             "values, expected a scenario; an alias bomb?)")
        return n

    expanded(root)


def parse_yaml(text: str) -> Any:
    """`text` parsed with PyYAML's safe loader, within the limits above. Raises _YamlLimit or yaml.YAMLError."""
    _check_events(text)
    root = yaml.compose(text, Loader=YamlLoader)
    if root is None:
        return None
    _check_nodes(root)
    return YamlLoader("").construct_document(root)


def _read_yaml(path: Path, file: str) -> Any:
    why = not_a_regular_file(path)
    if why is not None:
        raise ScenarioError([Problem(file, "", f"scenario file {why}")])
    n_bytes = path.stat().st_size
    if n_bytes > MAX_SCENARIO_BYTES:
        raise ScenarioError([Problem(file, "", f"scenario file too large (got {n_bytes:,} bytes, expected at most "
                                     f"{MAX_SCENARIO_BYTES:,}; traces go in their own files)")])
    try:
        raw = path.read_bytes()
        if b"\0" in raw:
            raise UnicodeDecodeError("utf-8", raw[:1], 0, 1, "NUL byte")
        return parse_yaml(raw.decode("utf-8"))
    except _YamlLimit as exc:
        where, what = exc.args
        raise ScenarioError([Problem(file, where, f"YAML {what}")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([Problem(file, where, f"YAML syntax error: {short(what, 200)[1:-1]}")]) from None
    except UnicodeDecodeError:
        raise ScenarioError([Problem(file, "", "not a text file (expected UTF-8 YAML)")]) from None
    except OSError as exc:
        raise ScenarioError([Problem(file, "", f"cannot be read ({exc.strerror or exc})")]) from None


def _expand(data: dict, file: str, base: Path, seen: tuple[Path, ...] = ()) -> dict:
    """Apply `extends: other.yaml` (deep-merged under this file's keys) and `set: {dotted.path: value}`."""
    data = dict(data)
    parent = data.pop("extends", None)
    sets = data.pop("set", None)
    if parent is not None:
        if not isinstance(parent, str):
            raise ScenarioError([Problem(file, "extends", f"expected a file path (got {type(parent).__name__})")])
        ppath = (base / parent).resolve()
        if ppath in seen:
            raise ScenarioError([Problem(file, "extends", f"circular extends (got {parent!r} again)")])
        pdata = _read_yaml(ppath, str(ppath))
        if not isinstance(pdata, dict):
            raise ScenarioError([Problem(str(ppath), "", f"expected a mapping of scenario fields at the top level "
                                         f"(got {type(pdata).__name__})")])
        data = _deep_merge(_expand(pdata, str(ppath), ppath.parent, seen + (ppath,)), data)
    if sets is not None:
        if not isinstance(sets, dict):
            raise ScenarioError([Problem(file, "set", f"expected a mapping of dotted paths to values "
                                         f"(got {type(sets).__name__})")])
        problems = []
        for key, value in sets.items():
            try:
                set_path(data, str(key), value)
            except KeyError as exc:
                problems.append(Problem(file, f"set.{key}", exc.args[0]))
        if problems:
            raise ScenarioError(problems)
    return data


def read_mapping(path: str | Path) -> tuple[dict, Path]:
    """A scenario file as a mapping with `extends` and `set` applied (not validated), and its folder."""
    path = Path(path)
    file = str(path)
    data = _read_yaml(path, file)
    if not isinstance(data, dict):
        raise ScenarioError([Problem(file, "", f"expected a mapping of scenario fields at the top level "
                                     f"(got {type(data).__name__})")])
    base = path.resolve().parent
    return _expand(data, file, base), base


def _in_schema_order(problems: list[Problem]) -> list[Problem]:
    """Problems sorted (stably) by the schema position of the top-level field they concern, so that the
    checks' problems read in the same order as the file, whichever layer found them."""
    order = {name: i for i, name in enumerate(Scenario.model_fields)}
    return sorted(problems, key=lambda p: order.get(p.path.split(".")[0], len(order)))


def load_scenario(source: str | Path | dict, *, base_dir: str | Path | None = None,
                  overrides: dict[str, Any] | None = None, sets: dict[str, Any] | None = None,
                  raw_checks: Sequence[RawCheck] = (), checks: Sequence[Check] = ()) -> Scenario:
    """Load and validate a scenario from a YAML path or a dict.

    Relative paths inside the scenario resolve against the file's folder (or `base_dir` for a dict,
    default the current folder). `extends: base.yaml` deep-merges the file over a base scenario and
    `set: {dotted.path: value}` then changes single fields (`vms.0.virtualization.io.net: sriov`). `overrides` sets top-level fields (e.g. `{"seed": 7}`) before
    validation. Raises ScenarioError listing every problem found.

    This layer knows the schema only. Checks that need the hardware catalog, the cost model or the policies
    come from above (consolidate.validation) as `raw_checks`, run beside field validation so that one pass
    reports everything, and `checks`, run on the validated scenario.
    """
    if isinstance(source, dict):
        file, data = "<dict>", dict(source)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(source)
        file = str(source)
        data = _read_yaml(path, file)
        base = Path(base_dir) if base_dir is not None else path.resolve().parent
    if not isinstance(data, dict):
        raise ScenarioError([Problem(file, "", f"expected a mapping of scenario fields at the top level "
                                     f"(got {type(data).__name__})")])
    # relative paths inside a base file resolve against the file that extends it (documented in the README)
    data = _expand(data, file, base)
    if "sweep" in data:
        raise ScenarioError([Problem(file, "sweep", "this file is a sweep (expected `consolidate sweep` to run it, "
                                     "or remove the sweep block)")])
    if overrides:
        data.update({k: v for k, v in overrides.items() if v is not None})
    if sets:
        if sets.get("consolidation.policy") == "none":
            data.pop("consolidation", None)  # no consolidation at all, not a policy named none
        else:
            for key, value in sets.items():
                set_path(data, key, value)
    problems = []
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [problem_from_pydantic(file, e) for e in exc.errors()]
    problems += _cross_checks(data, file)
    for raw_check in raw_checks:
        problems += raw_check(data, file)
    if problems:
        raise ScenarioError(_in_schema_order(problems))
    sc.set_origin(file, base)  # checks that read files the scenario names resolve them against its folder
    problems = [p for check in checks for p in check(sc, file)] + _drain_checks(sc, file)
    if problems:
        raise ScenarioError(problems)
    return sc
