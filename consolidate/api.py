"""The public Python API; the CLI is a thin layer over it.

    import consolidate
    sc = consolidate.load_scenario("scenarios/default.yaml")   # or a dict, or None for the default
    res = consolidate.run(sc)
    res.summary, res.vm_intervals, res.host_intervals
    consolidate.write(res, "reports/mine")      # frames, scenario and the HTML report
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version as _pkg_version
from pathlib import Path
from typing import Any

from consolidate import limits
from consolidate.costmodel.model import OverheadModel
from consolidate.engine.datacenter import Datacenter, Progress
from consolidate.engine.placement import initial_placement
from consolidate.engine.state import HostTable
from consolidate.errors import Problem, ResourceError, ScenarioError
from consolidate.hardware import assignment, catalog
from consolidate.policies import registry
from consolidate.report.html import write_report
from consolidate.results.frames import (Results, build_results, host_interval_rows, migration_rows,
                                       vm_interval_rows)
from consolidate.results.partitions import merge as merge_partitions
from consolidate.results.writer import check_destination, write_run_folder
from consolidate.results.metrics import IMPACT_METRICS
from consolidate.scenario.loader import default_scenario_path
from consolidate.scenario import partitions
from consolidate.validation import load_scenario as _load
from consolidate.scenario.model import Scenario
from consolidate.scenario.sweepspec import SweepSpec
from consolidate.workload.build import Workload, build_workload
from consolidate.workload.planetlab import BUILTIN_PREFIX, load_planetlab
from consolidate.workload.remote import local_traces


def version() -> str:
    """The installed package version (or 'dev' when run from a source tree without installing)."""
    try:
        return _pkg_version("consolidate")
    except PackageNotFoundError:
        return "dev"


def load_scenario(source: str | Path | dict | Scenario | None = None, *, seed: int | None = None,
                  base_dir: str | Path | None = None, policy: str | None = None) -> Scenario:
    """A validated Scenario from a YAML path, a dict, or None (the embedded default).

    `seed` overrides the scenario's seed; `policy` its consolidation policy ('none' turns consolidation off).
    Raises ScenarioError listing every problem.
    """
    if isinstance(source, Scenario):
        if policy is not None:
            source = _load(source.model_dump(mode="json"), base_dir=source.base_dir,
                           sets={"consolidation.policy": policy})
        return source if seed is None else _with_seed(source, seed)
    overrides = {"seed": seed} if seed is not None else {}
    sets = {"consolidation.policy": policy} if policy is not None else None
    return _load(default_scenario_path() if source is None else source, base_dir=base_dir,
                 overrides=overrides or None, sets=sets)


def _with_seed(sc: Scenario, seed: int) -> Scenario:
    new = sc.model_copy(update={"seed": seed})
    new.set_origin(sc.file, sc.base_dir)
    return new


def validate(source: str | Path | dict | None = None) -> Scenario:
    """Load a scenario, check it fits in memory and read every trace it points to; raises ScenarioError (or
    ResourceError) on any problem."""
    sc = load_scenario(source)
    _read_workload(sc).close()
    return sc


def _read_workload(sc: Scenario, tmp_dir: Path | None = None) -> Workload:
    """The scenario's workload, once check_memory passes. Traces named by a URL are read from a local copy
    under tmp_dir (workload/remote.py), removed once read; its labels and errors name the URL. A big grid is
    spooled to an unnamed file in tmp_dir (workload/grid.py), freed by the workload's close()."""
    with local_traces(sc, tmp_dir) as (readable, named):
        per_group = _group_vms(readable)  # one look at the trace folders for both checks
        check_memory(readable, per_group)
        check_disk(readable, tmp_dir, per_group)
        try:
            wl = build_workload(readable, tmp_dir)
        except ScenarioError as exc:
            raise ScenarioError([Problem(p.file, p.path, named(p.message)) for p in exc.problems]) from None
        if readable is not sc:
            wl.vms["trace"] = [named(t) for t in wl.vms["trace"]]
    return wl


def _group_vms(sc: Scenario) -> list[int]:
    """VMs each group asks for, from counts and cheap looks at its trace folders (a lower bound: a native file
    with a vm column may hold many; its reader checks again once it knows)."""
    out = []
    for g in sc.vms:
        src = g.trace
        if g.count is not None:
            out.append(g.count)
        elif src.planetlab is not None and src.planetlab.startswith(BUILTIN_PREFIX):
            try:
                out.append(len(load_planetlab(src.planetlab)[0]))
            except Exception:  # an unknown day is the trace reader's to report, with its message
                out.append(0)
        else:
            path = Path(src.planetlab or src.native or ".")
            path = path if path.is_absolute() else sc.base_dir / path
            out.append(sum(1 for _ in os.scandir(path)) if path.is_dir() else 1)
    return out


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"{float(n):.3g}"


def check_memory(sc: Scenario, per_group: list[int] | None = None) -> None:
    """Refuse, before allocating anything, a run whose estimated peak memory (consolidate/limits.py) exceeds what
    this process can have; `per_group`: each group's VMs (_group_vms), if already counted. Raises ResourceError
    naming the sizes and what to change."""
    per_group = _group_vms(sc) if per_group is None else per_group
    n_vms, n_hosts, n_int = sum(per_group), sum(g.count for g in sc.hosts), sc.n_intervals
    copies = 2 if sc.maintenance and sc.maintenance_baseline else 1
    read = max((n for n, g in zip(per_group, sc.vms) if g.trace.synthetic is None), default=0)
    need = limits.run_bytes(n_vms, n_hosts, n_int, sc.overhead_enabled, copies, read_vms=read)
    have = limits.available_memory_bytes()
    if need > have:
        field = "vms" if n_vms >= n_hosts else "hosts"
        raise ResourceError([Problem(sc.file, field, f"too large for this machine (got {_count(n_vms)} VMs and "
                                     f"{_count(n_hosts)} hosts over {_count(n_int)} intervals, about "
                                     f"{limits.gib(need)} of memory; expected at most {limits.gib(have)} free: "
                                     "fewer VMs or hosts, a coarser interval_s or a shorter duration_s)")])


def check_disk(sc: Scenario, spool_dir: Path | None, per_group: list[int] | None = None) -> None:
    """Refuse, before reading anything, a run whose spooled workload grid (workload/grid.py) would not fit on the
    disk it is spooled to; `per_group` as for check_memory. Raises ResourceError naming the sizes and the folder."""
    n_vms, n_int = sum(_group_vms(sc) if per_group is None else per_group), sc.n_intervals
    need = limits.spool_bytes(n_vms, n_int)
    if not need:
        return
    folder = spool_dir if spool_dir is not None else Path(tempfile.gettempdir())
    probe = next((p for p in (folder, *folder.parents) if p.exists()), folder)
    free = shutil.disk_usage(probe).free
    if need > free:
        raise ResourceError([Problem(sc.file, "vms", f"the workload grid does not fit on the disk at {folder} (got "
                                     f"{_count(n_vms)} VMs over {_count(n_int)} intervals, at least "
                                     f"{limits.gib(need)} spooled; expected at most {limits.gib(free)} free: "
                                     "another --out disk, fewer VMs, a coarser interval_s or a shorter "
                                     "duration_s)")])


def make_run_id(sc: Scenario) -> str:
    """A run id that sorts by start time, names the seed and ends in a random tag, so runs started in the same
    second (in parallel) never share a folder: e.g. 20261122-104500-seed42-3fa9c1."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-seed{sc.seed}-{secrets.token_hex(3)}"


# summary columns whose change a maintenance baseline reports (drain_impact_<column> = with - without drains)
IMPACT_COLUMNS = IMPACT_METRICS


def run(source: str | Path | dict | Scenario | None = None, *, seed: int | None = None,
        progress: Progress | None = None, run_id: str | None = None, policy: str | None = None,
        spool_dir: str | Path | None = None) -> Results:
    """Run a scenario (a Scenario, a path, a dict, or None for the default) and return its Results.

    `progress(done, total)` is called after every accounting interval. A vm_intervals, host_intervals or
    migrations frame too big to hold (results/frames.py HOLD_*_ROWS) is written to Parquet as the run goes, into
    a hidden temporary folder under `spool_dir` (default: the system's temporary folder; put it on the disk the
    results will be written to, so writing them links the file instead of copying it). Raises ScenarioError for a bad
    scenario or trace and PlacementError for a VM that fits no host (unless the scenario records rejections).
    """
    t0 = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sc = load_scenario(source, seed=seed, policy=policy)
    run_id = run_id or make_run_id(sc)  # taken at the start: the folder name says when the run began
    if partitions.names(sc):  # independent partitions: each runs alone, in turn, then they merge
        subs = partition_scenarios(sc)
        n = len(subs)
        parts = [run(sub, run_id=run_id, spool_dir=spool_dir, progress=None if progress is None else
                     (lambda done, total, i=i: progress(i * total + done, n * total)))
                 for i, (_, sub) in enumerate(subs)]
        res = merge_partitions(sc, parts, run_id, time.perf_counter() - t0)
        res.started_at = started_at
        return res
    wl = _read_workload(sc, None if spool_dir is None else Path(spool_dir))
    try:  # a spooled grid's file is freed when the run ends, however it ends
        hosts = HostTable.from_scenario(sc)
        om = OverheadModel(sc, wl, hosts.types) if sc.overhead_enabled else None
        vm_host = initial_placement(sc, wl, hosts, om)
        # a big vm_intervals goes to Parquet while the run goes, in a temporary folder under spool_dir
        spool = None if spool_dir is None else Path(spool_dir)
        vm_rows = vm_interval_rows(sc, len(wl.vms), spool)
        host_rows = host_interval_rows(sc, hosts, spool)  # and a big host_intervals, and many migrations
        mig_rows = migration_rows(sc, spool)
        dc = Datacenter(sc, wl, hosts, vm_host, progress=progress, om=om, rows=vm_rows, host_rows=host_rows,
                        migration_rows=mig_rows)
        if om is not None and dc.migrations is not None:
            om.port_load = dc.migrations.port_load  # migration streams take port capacity from the VMs' packets
        rec = dc.run()
        res = build_results(sc, wl, hosts, rec, run_id, time.perf_counter() - t0, version(), vm_rows,
                            host_rows=host_rows, mig_rows=mig_rows)
        res.started_at = started_at  # for run.json
        if sc.maintenance and sc.maintenance_baseline:
            # the drains' cost is what the same run (same seed, same streams) does without them
            base = run(sc.model_copy(update={"maintenance": []}), run_id=res.run_id).summary.iloc[0]
            s = res.summary
            for col in IMPACT_COLUMNS:
                if col in s.columns and col in base.index:
                    s[f"drain_impact_{col}"] = s[col].iloc[0] - base[col]
    finally:
        wl.close()
    return res



def partition_scenarios(sc: Scenario) -> list[tuple[str, Scenario]]:
    """(name, scenario) of each partition of `sc`, in order: the scenario each runs as alone
    (scenario/partitions.py), validated, with `sc`'s file and folder for messages and relative paths."""
    out = []
    for name in partitions.names(sc):
        sub = _load(partitions.sub_data(sc, name), base_dir=sc.base_dir)
        out.append((name, sub.set_origin(sc.file, sc.base_dir)))
    return out


def write(res: Results, out_dir: str | Path, *, csv: bool | None = None, report: bool = True,
          force: bool = False) -> Path:
    """Write a run folder: the frames the scenario's `outputs:` chooses as Parquet (and CSV: `csv`, default by
    outputs.csv or the run's size, see README "Outputs"), the resolved scenario, the HTML report (if `report`)
    and run.json, into a temporary folder renamed to `out_dir` when complete. `out_dir` must be new or empty;
    `force` replaces a folder that holds files. Returns the folder; raises OutputError or OSError."""
    out = write_run_folder(res, Path(out_dir), csv=csv, force=force,
                           extra=(lambda folder: write_report(res, folder)) if report else None)
    res.out_dir = out
    return out


check_output = check_destination  # the CLI checks its --out before simulating


def schema() -> dict[str, Any]:
    """The JSON Schema of the scenario format (for editors and validators), with the registered policy names
    (the scenario package cannot know them: the registry sits above it)."""
    out = Scenario.model_json_schema()
    place = out["$defs"]["Placement"]["properties"]["policy"]
    place["enum"] = registry.placement_names(aliases=True)
    place["description"] = "one of " + ", ".join(
        f"{p.name} ({', '.join(p.aliases)})" if p.aliases else p.name for p in registry.PLACEMENTS.values())
    cons = out["$defs"]["Consolidation"]["properties"]["policy"]
    cons["description"] = registry.policy_syntax()
    det, sel = ("|".join(map(re.escape, names)) for names in (registry.DETECTORS, registry.SELECTORS))
    cons["pattern"] = rf"^(none|({det})-({sel})-[0-9.eE+-]+)$"
    # I/O paths and device models come from the hardware catalog, so a new catalog entry reaches editors too
    defs = out["$defs"]
    for io_class in assignment.IO_CLASSES:
        prop = defs["IoSpec"]["properties"][io_class.name]
        paths = list(assignment.paths_of(io_class))
        # nullable: {anyOf: [{type: string, ...}, {type: null}]}; the enum goes on the string branch, where
        # editors offer completions, and null stays allowed (unset: inherited)
        for branch in prop.get("anyOf", [prop]):
            if branch.get("type") == "string":
                branch["enum"] = paths
        prop["description"] = (f"a catalog {io_class.name} path (consolidate catalog devices): {', '.join(paths)}; "
                               f"unset: the host type's, else {io_class.default_path}")
    # what the loader reads beyond the model: shorthands, extends/set, and a sweep block
    props = out["properties"]
    props["placement"] = {"anyOf": [{"type": "string", "enum": place["enum"]}, {"$ref": "#/$defs/Placement"}],
                          "description": "a placement name or alias, or {policy, cpu_basis}"}
    vm_type = defs["VmGroup"]["properties"]["type"]
    defs["VmGroup"]["properties"]["type"] = {"anyOf": [{"type": "string", "description": "a vm_types name"},
                                                       vm_type], "description": "a vm_types name or a rule"}
    sweep = SweepSpec.model_json_schema()
    defs.update(sweep.pop("$defs", {}))
    defs["SweepSpec"] = sweep
    props["sweep"] = {"$ref": "#/$defs/SweepSpec", "description": "run every combination (consolidate sweep)"}
    props["extends"] = {"type": "string", "description": "a scenario file this one deep-merges over (relative to "
                        "this file)"}
    props["set"] = {"type": "object", "description": "dotted.path: value, applied after extends"}
    # a file that extends another may leave the required fields to it
    out["anyOf"] = [{"required": out.pop("required", [])}, {"required": ["extends"]}]
    defs["NvmeSpec"]["properties"]["model"]["enum"] = list(catalog.nvme_controllers())
    defs["NicSpec"]["properties"]["model"]["enum"] = [n for n, nic in catalog.nics().items() if nic.kind == "sriov"]
    return out
