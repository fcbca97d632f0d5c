"""The `consolidate` command: a thin typer layer over consolidate.api.

User errors (bad scenario, bad trace, a VM that fits no host, an unwritable folder) print
`FILE: field.path: message` lines on stderr and exit with code 2, never a traceback.

Exit codes (README "Exit codes"): 0 everything ran; 1 some runs of a sweep failed, a plan target is
unreachable, or calibration is out of tolerance; 2 bad input (nothing, or nothing misleading, was written);
130 interrupted (Ctrl-C or SIGTERM; no folder that looks complete is left).
"""
from __future__ import annotations

import dataclasses
import errno
import json
import logging
import signal
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
import typer.core
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from consolidate import api
from consolidate.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, ConsolidateError
from consolidate.policies import registry

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Datacenter consolidation simulator that knows what hardware-assisted virtualization costs.\n\n"
                       "Exit codes: 0 ok; 1 some runs failed (sweep), a target is unreachable (plan) or out of "
                       "tolerance (calibration); 2 bad input; 130 interrupted.")
out = Console()  # rich honours NO_COLOR and plain output when piped
err = Console(stderr=True)
log = logging.getLogger("consolidate")

# typer labels every flag `<bool>` in help; a flag takes no value, so it gets no type label
_display_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else _display_type(self, ctx)


def _show_version(value: bool) -> None:
    if value:
        _plain(out, f"consolidate {api.version()}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                       help="print the version and exit"),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="log what happens, step by step, on stderr")) -> None:
    """Options for every command."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S", force=True)


def _interrupted(what: str) -> typer.Exit:
    _plain(err, f"interrupted: {what}")
    return typer.Exit(code=EXIT_INTERRUPTED)


class _DelayedProgress:
    """A progress bar that appears only once a run has taken longer than `delay_s`, so quick runs stay quiet."""

    def __init__(self, label: str, delay_s: float = 1.0):
        self.label, self.delay_s = label, delay_s
        self.t0 = time.perf_counter()
        self.bar: Progress | None = None
        self.task = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.perf_counter() - self.t0 < self.delay_s:
                return
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("intervals"), TimeElapsedColumn(), TimeRemainingColumn(),
                                console=err, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _plain(console: Console, text: str) -> None:
    """Print text as is: no markup, no colouring, no wrapping (paths and messages must stay greppable)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _fail(exc: ConsolidateError) -> None:
    for p in exc.problems:
        _plain(err, str(p))
    raise typer.Exit(code=exc.exit_code)


def _summary_table(summary) -> Table:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for k, v in summary.iloc[0].items():
        table.add_row(k, f"{v:,.6g}" if isinstance(v, float) else str(v))
    return table


class RunFormat(str, Enum):
    table = "table"
    json = "json"


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES)


@app.command()
def run(scenario: Optional[Path] = typer.Argument(None, help="scenario YAML (default: the embedded PlanetLab day)"),
        out_dir: Optional[Path] = typer.Option(None, "--out", help="output folder, new or empty (default "
                                               "reports/<scenario>/<run-id>, a new one per run)"),
        force: bool = typer.Option(False, "--force", help="replace --out if it holds files (another run's)"),
        seed: Optional[int] = typer.Option(None, "--seed", min=0, max=2**63 - 1, help="override the scenario's seed"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the output folder"),
        fmt: RunFormat = typer.Option(RunFormat.table, "--format", help="summary as a table, or as JSON on stdout"),
        csv: Optional[bool] = typer.Option(None, "--csv/--no-csv", help="also write CSV beside Parquet (default: "
                                           "the scenario's outputs.csv, else only up to 10,000,000 VM-intervals)"),
        plots: bool = typer.Option(True, "--plots/--no-plots", help="write index.html with its plots (--no-plots: "
                                   "frames, summary, resolved scenario and run.json only)"),
        policy: Optional[str] = typer.Option(None, "--policy", help=f"consolidation policy: {registry.policy_syntax()} "
                                             "(consolidate catalog policies)"),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, help="run the scenario's partitions on this "
                                              "many local processes (docs/partitions.md; default: in turn, here)"),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="run the scenario's partitions on a Dask "
                                                "cluster, e.g. tcp://host:8786 (docs/partitions.md)"),
        ship_traces: bool = typer.Option(False, "--ship-traces", help="send each partition its trace files with "
                                         "the task (workers without the scenario's folder; at most 512 MiB each)")
        ) -> None:
    """Run a scenario, print its summary and write frames, plots, index.html and run.json."""
    progress = None if quiet or fmt is RunFormat.json else _DelayedProgress(f"{scenario or 'default scenario'}")
    target = out_dir or Path("reports")
    try:
        sc = api.load_scenario(scenario, seed=seed, policy=policy)
        run_id = api.make_run_id(sc)
        target = out_dir or Path("reports") / sc.name / run_id
        api.check_output(target, force=force)  # before simulating: a bad folder must not cost the run
        log.info("scenario %s (%s), run %s, writing to %s", sc.name, sc.file, run_id, target)
        if workers is None and scheduler is None and not ship_traces:
            # a big vm_intervals spools beside its run folder, so writing it is a link on the same disk, not a
            # copy out of a temporary folder that may be a small tmpfs
            res = api.run(sc, progress=progress, run_id=run_id, spool_dir=target.parent)
        else:
            from consolidate import partition

            def on_part(name: str, done: int, total: int, wall_s: float) -> None:
                if not quiet:
                    _plain(err, f"partition {name} finished ({done} of {total}, {wall_s:.1f} s)")

            if not quiet and not api.partition_scenarios(sc):
                _plain(err, f"{sc.file}: no partitions: --workers and --scheduler do not apply; running in this "
                       "process")
            res = partition.run(sc, workers=workers, scheduler=scheduler, run_id=run_id, on_part=on_part,
                                ship_traces=ship_traces)
    except ConsolidateError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        raise _interrupted("the run was stopped; nothing was written") from None
    except OSError as exc:
        if scheduler is not None and exc.filename is None and exc.errno not in _DISK_ERRNOS:
            _plain(err, f"--scheduler: cannot reach {scheduler} ({exc}; expected a running Dask scheduler's address)")
        else:  # the run's temporary files: a big grid or frame spooled beside the run folder (a full disk)
            _plain(err, f"{target.parent}: the run could not write its temporary files ({exc.strerror or exc}; "
                   "expected room for the spooled workload and frames, README \"Outputs\"); nothing was written")
        raise typer.Exit(code=EXIT_BAD_INPUT)
    finally:
        if progress is not None:
            progress.close()
    log.info("simulated in %.2f s; writing", float(res.summary["wall_s"].iloc[0]))
    if fmt is RunFormat.json:
        sys.stdout.write(json.dumps(json.loads(res.summary.to_json(orient="records"))[0], indent=1) + "\n")
    elif not quiet:  # printed before writing: a full disk must not lose what was computed
        out.print(_summary_table(res.summary))
    try:
        path = api.write(res, target, csv=csv, report=plots, force=force)
    except ConsolidateError as exc:
        _fail(exc)
    except OSError as exc:
        _plain(err, f"{target}: cannot write results ({exc.strerror or exc}); nothing was left there")
        raise typer.Exit(code=EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        raise _interrupted(f"writing {target} was stopped; nothing was left there") from None
    log.info("wrote %s", path)
    if fmt is RunFormat.json:
        _plain(err, f"report: {path / 'index.html'}" if plots else f"results: {path}")
    elif not quiet:
        _plain(out, f"report: {path / 'index.html'}" if plots else f"results: {path}")
    else:
        _plain(out, str(path))


@app.command()
def sweep(scenario: Path = typer.Argument(..., help="scenario YAML with a sweep block"),
          workers: Optional[int] = typer.Option(None, "--workers", min=1, help="local processes (default: CPU count)"),
          scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address, e.g. tcp://host:8786"),
          out_dir: Optional[Path] = typer.Option(None, "--out", help="output folder (default reports/<name>-sweep)"),
          resume: bool = typer.Option(False, "--resume", help="keep finished runs, run only the rest"),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the output folder")) -> None:
    """Run every combination of a sweep on a local pool or a Dask cluster; one table, plots, index.html.
    Exit 1 if any run failed; Ctrl-C cancels the queued runs and exits 130 (--resume finishes the sweep)."""
    from consolidate.sweep.run import SweepInterrupted, run_sweep

    bar = None
    task = None

    def progress(done: int, failed: int, running: int, total: int) -> None:
        nonlocal bar, task
        if quiet:
            return
        if bar is None:
            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
                           TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)
            bar.start()
            task = bar.add_task("sweep", total=total)
        bar.update(task, completed=done + failed,
                   description=f"sweep: {done} done, {failed} failed, {running} to go")

    try:
        res = run_sweep(scenario, workers=workers, scheduler=scheduler, out=out_dir, resume=resume, progress=progress)
    except ConsolidateError as exc:
        _fail(exc)
    except OSError as exc:
        _plain(err, f"{scenario}: cannot run the sweep ({exc})")
        raise typer.Exit(code=2)
    except SweepInterrupted as exc:
        if bar is not None:
            bar.stop()
            bar = None
        raise _interrupted(str(exc)) from None
    except KeyboardInterrupt:
        raise _interrupted("the sweep was stopped before any run started") from None
    finally:
        if bar is not None:
            bar.stop()
    failed = int((res.table.status != "ok").sum())
    if quiet:
        _plain(out, str(res.out_dir))
    else:
        _plain(out, f"{len(res.table)} runs ({len(res.ran)} run now, {failed} failed): {res.out_dir / 'index.html'}")
    if failed:
        first = res.table[res.table.status != "ok"].error.iloc[0]
        _plain(err, f"{failed} of {len(res.table)} runs failed; the first: {first.splitlines()[0] if first else '?'}")
        raise typer.Exit(code=EXIT_FAILED)


@app.command()
def plan(scenario: Path = typer.Argument(..., help="scenario YAML"),
         target: str = typer.Option(..., "--target", help="e.g. 'sla_unserved_fraction<=0.01' (any summary column)"),
         vary: str = typer.Option("hosts.0.count", "--vary", help="integer field to search, by dotted path"),
         low: int = typer.Option(1, "--low", min=0, help="smallest value to consider"),
         high: Optional[int] = typer.Option(None, "--high", min=1, help="a value expected to meet the target "
                                            "(default: the scenario's, doubled until it does)"),
         max_value: Optional[int] = typer.Option(None, "--max", min=1, help="the largest value to try (default: 64 "
                                                 "times the scenario's); beyond it the target is unreachable"),
         repeats: int = typer.Option(1, "--repeats", min=1, max=100, help="seeds per value (derived from the "
                                     "scenario's); a value meets the target only if every seed does")) -> None:
    """Find the smallest value of a field (default: host count) that meets a target, by bisection over runs.
    Exit 1 when no value up to --max meets it."""
    from consolidate.sweep.plan import plan as search

    def show(t) -> None:
        what = "VMs fit no host" if t.metric != t.metric else f"{t.metric:.6g}"  # NaN: placement failed
        spread = f" (seeds {min(t.per_seed):.6g} .. {max(t.per_seed):.6g})" if len(t.per_seed) > 1 and \
            t.metric == t.metric else ""
        _plain(out, f"  {vary} = {t.value}: {what}{spread} -> {'meets' if t.ok else 'misses'} the target")

    _plain(out, f"searching {vary} for {target}")
    try:
        value, trials = search(scenario, target, vary, low, high, max_value=max_value, on_trial=show,
                               repeats=repeats)
    except ConsolidateError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        raise _interrupted("the search was stopped") from None
    if value is None:
        _plain(out, f"unreachable: no {vary} up to {trials[-1].value} meets {target} ({len(trials)} runs; --max "
                    "raises the ceiling)")
        raise typer.Exit(code=EXIT_FAILED)
    _plain(out, f"smallest {vary} meeting {target}: {value} ({len(trials)} runs)")


@app.command()
def generate(vms: int = typer.Option(..., "--vms", min=1, help="number of VMs"),
             hosts: int = typer.Option(..., "--hosts", min=1, help="number of hosts"),
             profile_mix: str = typer.Option("web=0.5,database=0.2,batch=0.3", "--profile-mix",
                                             help="profile shares, e.g. web=0.5,database=0.2,batch=0.3"),
             seed: int = typer.Option(1, "--seed", min=0),
             duration_s: float = typer.Option(86400, "--duration-s", min=1),
             out_file: Path = typer.Option(Path("generated.yaml"), "--out", help="scenario file to write")) -> None:
    """Write a scenario with a synthetic population (for scale studies)."""
    from consolidate.sweep.generate import generate as gen, parse_mix, write

    try:
        path = write(out_file, gen(vms, hosts, parse_mix(profile_mix), seed, duration_s))
    except ConsolidateError as exc:
        _fail(exc)
    except OSError as exc:
        _plain(err, f"{out_file}: cannot write the scenario ({exc.strerror or exc})")
        raise typer.Exit(code=EXIT_BAD_INPUT)
    _plain(out, str(path))


@app.command()
def validate(scenario: Path = typer.Argument(..., help="scenario YAML to check")) -> None:
    """Check a scenario (or every run of a sweep) and every trace it reads; print all problems (exit 2) or 'ok'."""
    from consolidate.scenario.loader import read_mapping

    try:
        data, _ = read_mapping(scenario)
        if "sweep" in data:
            from consolidate.sweep.run import load_sweep

            name, runs, _, _ = load_sweep(scenario)
            _plain(out, f"{scenario}: ok ({name}: a sweep of {len(runs)} runs)")
            return
        sc = api.validate(scenario)
    except ConsolidateError as exc:
        _fail(exc)
    n_hosts = sum(g.count for g in sc.hosts)
    _plain(out, f"{scenario}: ok ({sc.name}: {n_hosts} hosts, {len(sc.vms)} VM groups, {sc.n_intervals} intervals "
                f"of {sc.interval_s:g} s)")


class CatalogKind(str, Enum):
    cpus = "cpus"
    hypervisors = "hypervisors"
    devices = "devices"
    hosts = "hosts"
    policies = "policies"


class Format(str, Enum):
    table = "table"
    csv = "csv"


def _sources(sources: dict) -> str:
    return "; ".join(f"{k}: {v['source']} ({v['confidence']})" for k, v in sources.items())


def _policy_rows() -> list[dict]:
    rows = [{"kind": "detector", "name": d.name, "aliases": "", "parameter": d.param.meaning,
             "valid_range": d.param.range_text, "study_value": d.param.example,
             "reads_history": "yes" if d.reads_history else "no", "description": d.doc}
            for d in registry.DETECTORS.values()]
    rows += [{"kind": "selector", "name": s.name, "aliases": "", "parameter": "", "valid_range": "", "study_value": "",
              "reads_history": "", "description": s.doc} for s in registry.SELECTORS.values()]
    rows += [{"kind": "placement", "name": p.name, "aliases": " ".join(p.aliases), "parameter": "", "valid_range": "",
              "study_value": "", "reads_history": "", "description": p.doc} for p in registry.PLACEMENTS.values()]
    return rows


def _catalog_rows(kind: CatalogKind) -> tuple[str, list[dict]]:
    from consolidate.hardware import catalog as cat

    if kind is CatalogKind.policies:
        return ("policies (consolidation.policy: '<detector>-<selector>-<parameter>' or none; placement.policy: a "
                "placement or its alias)"), _policy_rows()
    if kind is CatalogKind.hosts:
        return "host types (power_w at 0%, 10%, ..., 100% CPU)", [
            {"name": n, "processor": e.processor, "cpu": e.host_type.cpu, "cores": e.host_type.cores, "mips_per_core": e.host_type.mips_per_core,
             "memory_mb": e.host_type.memory_mb, "network_bps": e.host_type.network_bps,
             "power_w": " ".join(f"{w:g}" for w in e.host_type.power_curve_w()), "source": _sources(e.sources)}
            for n, e in cat.host_catalog().items()]
    if kind is CatalogKind.cpus:
        return "CPU microarchitectures (cycles are core clock cycles)", [
            {"name": c.name, "family": c.family, "part": c.part, "year": c.year, "frequency_ghz": c.frequency_ghz,
             "cores": c.cores, "threads": c.threads, "roundtrip_cycles": c.roundtrip_cycles,
             "features": " ".join(f for f, on in c.features.items() if on),
             "tlb": " ".join(f"{k}={v}" for k, v in c.tlb.items()), "source": _sources(c.sources)}
            for c in cat.cpus().values()]
    if kind is CatalogKind.hypervisors:
        return "hypervisors (software cycles per exit)", [
            {"name": h.name, "type": h.type, "modes": " ".join(h.modes), "exit_overhead_cycles": h.exit_overhead_cycles,
             "emulate_cycles": h.emulate_cycles, "user_exit_cycles": h.user_exit_cycles,
             "world_switch_cycles": h.world_switch_cycles,
             "uses": " ".join(f for f, on in h.uses.items() if on), "source": _sources(h.sources)}
            for h in cat.hypervisors().values()]
    rows = [{"name": n.name, "kind": n.kind, "line_rate_bps": n.line_rate_bps, "ports": n.ports,
             "vfs_per_port": n.vfs_per_port, "source": _sources(n.sources)} for n in cat.nics().values()]
    rows += [{"name": p.name, "kind": "io-path", "line_rate_bps": "", "ports": "", "vfs_per_port": "",
              "source": f"{p.description}. {_sources(p.sources)}"} for p in cat.io_paths().values()]
    rows += [{"name": c.name, "kind": c.kind, "line_rate_bps": "", "ports": "", "vfs_per_port": "",
              "interface": c.interface, "max_read_iops": c.max_read_iops, "max_write_iops": c.max_write_iops,
              "virtual_functions": c.virtual_functions, "source": _sources(c.sources)}
             for c in cat.nvme_controllers().values()]
    for r in rows:  # one column set for every row: NVMe columns blank for NICs and paths, source last
        for k in ("interface", "max_read_iops", "max_write_iops", "virtual_functions"):
            r.setdefault(k, "")
        r["source"] = r.pop("source")
    return "devices: NICs with SR-IOV VF pools, I/O paths, and NVMe controllers (assigned whole through the IOMMU)", rows


@app.command()
def catalog(kind: CatalogKind = typer.Argument(CatalogKind.hosts, help="what to list"),
            fmt: Format = typer.Option(Format.table, "--format", help="table or csv")) -> None:
    """List the hardware catalog shipped with the package, every figure with its source, or the registered
    policies (detectors with their parameter ranges, selectors, placements)."""
    title, rows = _catalog_rows(kind)
    if fmt is Format.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(sys.stdout, index=False)
        return
    table = Table(title=title, show_lines=True)
    for col in rows[0]:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(f"{v:g}" if isinstance(v, float) else str(v) for v in r.values()))
    # piped (grep, less, a file): one line per row, never folded at 80 columns
    (out if out.is_terminal else Console(width=100_000, no_color=True)).print(table)


class MbFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def microbench(cpu: str = typer.Option(..., "--cpu", help="CPU name (consolidate catalog cpus)"),
               hypervisor: Optional[str] = typer.Option(None, "--hypervisor", help="hypervisor name (consolidate catalog hypervisors); not needed for --mode native"),
               mode: str = typer.Option("hw", "--mode", help="hw, bt, pv or native"),
               paging: Optional[str] = typer.Option(None, "--paging", help="ept, npt or shadow (default: the best available)"),
               disable: list[str] = typer.Option([], "--disable", help="turn a feature off: vpid, apicv, posted_interrupts, tpr_shadow, ple, preemption_timer, vmcs_shadowing"),
               timer_fastpath: bool = typer.Option(True, "--timer-fastpath/--no-timer-fastpath", help="inject expired TSC deadlines without a preemption-timer exit"),
               suite: Optional[str] = typer.Option(None, "--suite", help="kvm-unit-tests or adams-agesen (default both)"),
               event_mode: bool = typer.Option(False, "--event-mode", help="step each iteration exit by exit instead of the closed form"),
               fmt: MbFormat = typer.Option(MbFormat.table, "--format", help="table, csv or json")) -> None:
    """Predict kvm-unit-tests x86/vmexit and Adams & Agesen nanobenchmark cycles with the core model."""
    from consolidate.hardware import catalog as cat, coremodel as cm, microbench as mb

    problems = []
    cpus, hvs = cat.cpus(), cat.hypervisors()
    if cpu not in cpus:
        problems.append(f"--cpu: unknown CPU (got {cpu!r}, expected one of: {', '.join(cpus)})")
    if mode not in ("hw", "bt", "pv", "native"):
        problems.append(f"--mode: unknown mode (got {mode!r}, expected hw, bt, pv or native)")
    if mode != "native" and hypervisor is None:
        problems.append(f"--hypervisor: required for mode {mode!r} (expected one of: {', '.join(hvs)})")
    if hypervisor is not None and hypervisor not in hvs:
        problems.append(f"--hypervisor: unknown hypervisor (got {hypervisor!r}, expected one of: {', '.join(hvs)})")
    if paging not in (None, "ept", "npt", "shadow"):
        problems.append(f"--paging: unknown paging (got {paging!r}, expected ept, npt or shadow)")
    bad = [f for f in disable if f not in cm.FEATURES or f == "ept"]
    if bad:
        problems.append(f"--disable: unknown feature (got {bad[0]!r}, expected one of: "
                        f"{', '.join(f for f in cm.FEATURES if f != 'ept')})")
    suites = {"kvm-unit-tests", "adams-agesen"}
    if suite is not None and suite not in suites:
        problems.append(f"--suite: unknown suite (got {suite!r}, expected kvm-unit-tests or adams-agesen)")
    if problems:
        for p in problems:
            _plain(err, f"microbench: {p}")
        raise typer.Exit(code=2)
    cfg = cm.VirtConfig(mode=mode, paging=paging, timer_fastpath=timer_fastpath, **{f: False for f in disable})
    c, h = cpus[cpu], (hvs[hypervisor] if hypervisor else None)
    fn = mb.step_through if event_mode else mb.predict
    try:
        preds = [fn(name, c, h, cfg) for name, spec in mb.benchmarks().items() if suite in (None, spec["suite"])]
    except cm.ConfigError as exc:
        _plain(err, f"microbench: {exc}")
        raise typer.Exit(code=2)
    rows = [{"benchmark": p.benchmark, "mode": p.mode, "paging": p.paging, "cycles": round(p.cycles, 1),
             "exits": p.exits} for p in preds]
    if fmt is MbFormat.csv:
        import pandas as pd

        pd.DataFrame(rows, columns=["benchmark", "mode", "paging", "cycles", "exits"]).to_csv(sys.stdout, index=False)
        return
    if fmt is MbFormat.json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    table = Table(title=f"{cpu} / {hypervisor or 'bare metal'} / mode {mode} "
                        f"({'event-by-event' if event_mode else 'rate'} mode; cycles per iteration)")
    for col, just in (("benchmark", "left"), ("suite", "left"), ("paging", "left"), ("cycles", "right"),
                      ("exits", "right"), ("us", "right")):
        table.add_column(col, justify=just)
    for p in preds:
        table.add_row(p.benchmark, p.suite, p.paging, f"{p.cycles:,.0f}", str(p.exits),
                      f"{cm.cycles_to_s(p.cycles, c) * 1e6:.3f}")
    out.print(table)


@app.command()
def overhead(cpu: list[str] = typer.Option(..., "--cpu", help="CPU name (consolidate catalog cpus); repeat for several generations"),
             hypervisor: str = typer.Option(..., "--hypervisor", help="hypervisor name (consolidate catalog hypervisors)"),
             profile: list[str] = typer.Option([], "--profile", help="workload profile; repeat for several (default: every profile)"),
             paging: Optional[str] = typer.Option(None, "--paging", help="ept, npt or shadow (default: every paging mode the CPU supports)"),
             guest_page: Optional[str] = typer.Option(None, "--guest-page", help="4k or 2m (default: the profile's)"),
             host_page: str = typer.Option("4k", "--host-page", help="4k, 2m or 1g: pages backing guest memory"),
             mode: Optional[str] = typer.Option(None, "--mode", help="hw, bt or pv (default: the hypervisor's first)"),
             nested_tlb: bool = typer.Option(False, "--nested-tlb", help="a nested TLB / 2D page-walk cache"),
             clock_ghz: Optional[float] = typer.Option(None, "--clock-ghz", help="the host's clock (default: the catalog part's)"),
             fmt: Format = typer.Option(Format.table, "--format", help="table or csv")) -> None:
    """The what-if calculator: slowdown of one busy vCPU of a profile over native, per configuration, with the share of each cost term."""
    from consolidate.costmodel import calculator as calc
    from consolidate.hardware import catalog as cat, coremodel as cm
    from consolidate.workload.profiles import profile_table

    problems = []
    cpus, hvs, profiles = cat.cpus(), cat.hypervisors(), profile_table().names
    for c in cpu:
        if c not in cpus:
            problems.append(f"--cpu: unknown CPU (got {c!r}, expected one of: {', '.join(cpus)})")
    if hypervisor not in hvs:
        problems.append(f"--hypervisor: unknown hypervisor (got {hypervisor!r}, expected one of: {', '.join(hvs)})")
    for p in profile:
        if p not in profiles:
            problems.append(f"--profile: unknown profile (got {p!r}, expected one of: {', '.join(profiles)})")
    checks = (("--paging", paging, (None, "ept", "npt", "shadow")), ("--guest-page", guest_page, (None, "4k", "2m")),
              ("--host-page", host_page, ("4k", "2m", "1g")), ("--mode", mode, (None, "hw", "bt", "pv")))
    for flag, value, allowed in checks:
        if value not in allowed:
            problems.append(f"{flag}: got {value!r}, expected one of: {', '.join(a for a in allowed if a)}")
    if clock_ghz is not None and not clock_ghz > 0:
        problems.append(f"--clock-ghz: got {clock_ghz}, expected a clock above 0")
    if problems:
        for p in problems:
            _plain(err, f"overhead: {p}")
        raise typer.Exit(code=2)
    try:
        rows = calc.table(list(cpu), hypervisor, list(profile) or list(profiles), mode=mode, paging=paging,
                          guest_page=guest_page, host_page=host_page, nested_tlb=nested_tlb, clock_ghz=clock_ghz)
    except cm.ConfigError as exc:
        _plain(err, f"overhead: {exc}")
        raise typer.Exit(code=2)
    if fmt is Format.csv:
        import pandas as pd

        pd.DataFrame(rows, columns=list(calc.COLUMNS)).round(4).to_csv(sys.stdout, index=False)
        return
    table = Table(title=f"{hypervisor}: slowdown of one busy vCPU over native, and where it goes")
    heads = ("cpu", "profile", "mode", "paging", "guest", "host", "slowdown", "vs shadow", *calc.TERMS, "shadow MiB")
    for col in heads:
        table.add_column(col, justify="left" if col in ("cpu", "profile", "mode", "paging", "guest", "host") else "right")
    for r in rows:
        gain = r["gain_vs_shadow"]
        table.add_row(r["cpu"], r["profile"], r["mode"], r["paging"], r["guest_page"], r["host_page"],
                      f"{r['slowdown']:.3f}", "" if gain != gain else f"{gain:+.1%}",
                      *(f"{r['share_' + t]:.0%}" for t in calc.TERMS), f"{r['shadow_memory_mib']:.0f}")
    out.print(table)


@app.command()
def migration(memory_mib: float = typer.Option(..., "--memory-mib", help="guest memory, MiB"),
              link_gbps: float = typer.Option(..., "--link-gbps", help="bandwidth of the migration stream, Gbit/s"),
              dirty_mib_per_s: float = typer.Option(0.0, "--dirty-mib-per-s", help="memory the guest dirties, MiB/s"),
              zero_fraction: float = typer.Option(0.0, "--zero-fraction", help="share of memory in zero pages (0..1)"),
              latency_ms: float = typer.Option(0.0, "--latency-ms", help="one-way latency of the path, ms (paid once per round)"),
              hypervisor: str = typer.Option("kvm-qemu", "--hypervisor", help="hypervisor (its switch-over and zero-page scan)"),
              model: str = typer.Option("precopy", "--model", help="precopy or postcopy"),
              costs: str = typer.Option("physical", "--costs", help="physical (headers, zero pages, scan, switch-over) or ideal (the plain closed form)"),
              compression: float = typer.Option(1.0, "--xbzrle-ratio", help="XBZRLE: memory bytes per byte sent for dirty pages (1: off)"),
              downtime_target_ms: float = typer.Option(30.0, "--downtime-target-ms", help="stop-and-copy when the next round fits this"),
              max_rounds: int = typer.Option(30, "--max-rounds", help="rounds before a forced stop-and-copy"),
              fmt: Format = typer.Option(Format.table, "--format", help="table or csv")) -> None:
    """One live migration, alone on its link: total time, downtime, rounds and bytes, to size a maintenance window."""
    import math

    from consolidate.hardware import catalog as cat
    from consolidate.policies import precopy as pc

    problems = []
    for flag, value, ok, expected in (("--memory-mib", memory_mib, memory_mib > 0, "above 0"),
                                      ("--link-gbps", link_gbps, link_gbps > 0, "above 0"),
                                      ("--dirty-mib-per-s", dirty_mib_per_s, dirty_mib_per_s >= 0, "0 or more"),
                                      ("--zero-fraction", zero_fraction, 0 <= zero_fraction <= 1, "0..1"),
                                      ("--latency-ms", latency_ms, latency_ms >= 0, "0 or more"),
                                      ("--xbzrle-ratio", compression, compression >= 1, "1 or more"),
                                      ("--downtime-target-ms", downtime_target_ms, downtime_target_ms > 0, "above 0"),
                                      ("--max-rounds", max_rounds, max_rounds >= 1, "1 or more")):
        if not (ok and math.isfinite(value)):
            problems.append(f"{flag}: got {value}, expected a number {expected}")
    hvs = cat.hypervisors()
    if hypervisor not in hvs:
        problems.append(f"--hypervisor: unknown hypervisor (got {hypervisor!r}, expected one of: {', '.join(hvs)})")
    if model not in ("precopy", "postcopy"):
        problems.append(f"--model: got {model!r}, expected one of: precopy, postcopy")
    if costs not in ("physical", "ideal"):
        problems.append(f"--costs: got {costs!r}, expected one of: physical, ideal")
    if problems:
        for p in problems:
            _plain(err, f"migration: {p}")
        raise typer.Exit(code=2)
    mem, bw = memory_mib * 2**20, link_gbps * 1e9 / 8
    c = pc.physical_costs(hypervisor, zero_fraction, dirty_compression_ratio=compression) if costs == "physical" \
        else pc.MigrationCosts(zero_fraction=zero_fraction)
    if model == "precopy":
        plan = pc.precopy_plan(mem, dirty_mib_per_s * 2**20, bw, downtime_target_ms / 1000, max_rounds, costs=c)
    else:
        plan = pc.postcopy_plan(mem, bw, costs=c)
    # each round (and the switch-over's handshake) waits a round trip before its data flows
    latency_s = latency_ms / 1000 * 2 * plan.rounds
    row = {"model": model, "total_s": plan.total_s + latency_s, "downtime_s": plan.downtime_s + 2 * latency_ms / 1000,
           "rounds": plan.rounds, "bytes_sent": plan.wire_bytes if costs == "physical" else plan.bytes,
           "converged": plan.converged}
    if fmt is Format.csv:
        print(",".join(row))
        print(",".join(f"{v:.6g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v)
                       for v in row.values()))
        return
    table = Table(title=f"{hypervisor}: {memory_mib:g} MiB over {link_gbps:g} Gbit/s ({costs})")
    for col in row:
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_row(model, f"{row['total_s']:.3f}", f"{row['downtime_s']:.4f}", str(row["rounds"]),
                  f"{row['bytes_sent']:.4g}", str(row["converged"]).lower())
    out.print(table)


@app.command()
def calibration(fmt: Format = typer.Option(Format.table, "--format", help="table or csv")) -> None:
    """Compare the core model with every published calibration figure; exit 1 if any is out of tolerance."""
    from consolidate.hardware.calibration import checks

    rows = [{"id": c.id, "published": c.published,
             "predicted": c.predicted if isinstance(c.predicted, str) else round(c.predicted, 1),
             "error": "" if c.error is None else f"{c.error:+.1%}",
             "tolerance": "exact" if c.tolerance is None else f"{c.tolerance:.0%}", "ok": c.ok,
             "fitted": c.fitted, "setup": c.setup, "source": c.source} for c in checks()]
    if fmt is Format.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(sys.stdout, index=False)
    else:
        table = Table(title="core model against the published calibration set (fitted = a parameter was solved from this row)")
        for col in ("id", "published", "predicted", "error", "tolerance", "ok", "fitted", "setup"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(*(str(r[c]) for c in ("id", "published", "predicted", "error", "tolerance", "ok", "fitted", "setup")))
        out.print(table)
    if not all(r["ok"] for r in rows):
        raise typer.Exit(code=1)


trace_app = typer.Typer(no_args_is_help=True, help="Look at a trace before writing a scenario for it.")
app.add_typer(trace_app, name="trace")


class TraceKind(str, Enum):
    opendc = "opendc"
    bitbrains = "bitbrains"
    azure = "azure"
    alibaba2018 = "alibaba2018"
    google2019 = "google2019"
    native = "native"


@trace_app.command("inspect")
def trace_inspect(path: str = typer.Argument(..., help="trace file or folder, or an fsspec URL (s3://..., "
                                             "zip://folder::file:///path/traces.zip)"),
                  fmt: Format = typer.Option(Format.table, "--format", help="table or csv (csv: the header line goes "
                                             "to stderr, stdout stays CSV)"),
                  kind: Optional[TraceKind] = typer.Option(None, "--kind", help="the layout (default: detected)")) -> None:
    """What a reader sees: one row per VM (first sample and end of the last on the trace's clock, s; samples,
    median step, gaps, vCPUs, memory MiB, mean CPU utilisation) and a header with the span, the VM count and the
    warnings. Exit 2 on a bad or unknown trace."""
    from consolidate.errors import TraceError
    from consolidate.workload.inspect import COLUMNS, inspect
    from consolidate.workload.remote import fetched, is_url

    try:
        with fetched(path) as local:  # a URL is read from a local copy, removed afterwards
            seen = inspect(local, kind.value if kind else None)
        if is_url(path):
            seen = dataclasses.replace(seen, path=path)
    except TraceError as exc:
        _plain(err, str(exc))
        raise typer.Exit(code=EXIT_BAD_INPUT)
    # times keep whole epoch seconds; the rest six significant digits
    cell = lambda v, c="": (f"{v:.10g}" if c.endswith("_s") else f"{v:.6g}") if isinstance(v, float) else str(v)  # noqa: E731
    if fmt is Format.csv:
        _plain(err, seen.header())
        print(",".join(COLUMNS))
        for r in seen.rows:
            print(",".join("" if isinstance(r[c], float) and r[c] != r[c] else cell(r[c], c) for c in COLUMNS))
        return
    _plain(out, seen.header())
    table = Table()
    for col in COLUMNS:
        table.add_column(col, justify="left" if col == "vm" else "right")
    for r in seen.rows:
        table.add_row(*(cell(r[c], c) for c in COLUMNS))
    (out if out.is_terminal else Console(width=100_000, no_color=True)).print(table)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the scenario format (for editors: yaml-language-server, etc.)."""
    sys.stdout.write(json.dumps(api.schema(), indent=2) + "\n")


@app.command("version")
def version_cmd() -> None:
    """Print the package version."""
    out.print(api.version())


def _sigterm(signum, frame) -> None:
    raise KeyboardInterrupt  # `kill` stops a run as Ctrl-C does: cleaned up, exit 130


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _sigterm)
    app()


if __name__ == "__main__":
    main()
