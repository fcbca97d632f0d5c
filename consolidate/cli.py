"""The `consolidate` command: a thin typer layer over consolidate.api.

User errors (bad scenario, bad trace, a VM that fits no host, an unwritable folder) print
`FILE: field.path: message` lines on stderr and exit with code 2, never a traceback.
"""
from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from consolidate import api
from consolidate.errors import ConsolidateError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Datacenter consolidation simulator that knows what hardware-assisted virtualization costs.")
out = Console()
err = Console(stderr=True)


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


@app.command()
def run(scenario: Optional[Path] = typer.Argument(None, help="scenario YAML (default: the embedded PlanetLab day)"),
        out_dir: Optional[Path] = typer.Option(None, "--out", help="output folder (default reports/<scenario>/<run-id>)"),
        seed: Optional[int] = typer.Option(None, "--seed", min=0, help="override the scenario's seed"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="print only the output folder"),
        csv: bool = typer.Option(True, "--csv/--no-csv", help="also write CSV beside Parquet")) -> None:
    """Run a scenario, print its summary and write frames, plots and index.html."""
    progress = None if quiet else _DelayedProgress(f"{scenario or 'default scenario'}")
    try:
        res = api.run(scenario, seed=seed, progress=progress)
    except ConsolidateError as exc:
        _fail(exc)
    finally:
        if progress is not None:
            progress.close()
    target = out_dir or Path("reports") / res.scenario.name / res.run_id
    try:
        path = res.write(target, csv=csv)
    except OSError as exc:
        _plain(err, f"{target}: cannot write results ({exc.strerror or exc})")
        raise typer.Exit(code=2)
    if not quiet:
        out.print(_summary_table(res.summary))
        _plain(out, f"report: {path / 'index.html'}")
    else:
        _plain(out, str(path))


@app.command()
def validate(scenario: Path = typer.Argument(..., help="scenario YAML to check")) -> None:
    """Check a scenario and every trace it reads; print all problems at once (exit 2) or 'ok'."""
    try:
        sc = api.validate(scenario)
    except ConsolidateError as exc:
        _fail(exc)
    n_hosts = sum(g.count for g in sc.hosts)
    _plain(out, f"{scenario}: ok ({sc.name}: {n_hosts} hosts, {len(sc.vms)} VM groups, {sc.n_intervals} intervals "
                f"of {sc.interval_s:g} s)")


class CatalogKind(str, Enum):
    hosts = "hosts"


class Format(str, Enum):
    table = "table"
    csv = "csv"


@app.command()
def catalog(kind: CatalogKind = typer.Argument(CatalogKind.hosts, help="what to list"),
            fmt: Format = typer.Option(Format.table, "--format", help="table or csv")) -> None:
    """List the hardware catalog shipped with the package, with sources."""
    from consolidate.hardware.catalog import host_catalog

    rows = []
    for name, entry in host_catalog().items():
        ht = entry.host_type
        rows.append({"name": name, "cpu": entry.cpu, "cores": ht.cores, "mips_per_core": ht.mips_per_core,
                     "memory_mb": ht.memory_mb, "network_bps": ht.network_bps,
                     "power_w": " ".join(f"{w:g}" for w in ht.power_curve_w()), "source": ht.source})
    if fmt is Format.csv:
        import pandas as pd

        pd.DataFrame(rows).to_csv(sys.stdout, index=False)
        return
    table = Table(title="host types (power_w at 0%, 10%, ..., 100% CPU)", show_lines=True)
    for col in ("name", "cpu", "cores", "mips_per_core", "memory_mb", "power_w", "source"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(f"{r[c]:g}" if isinstance(r[c], float) else str(r[c])
                        for c in ("name", "cpu", "cores", "mips_per_core", "memory_mb", "power_w", "source")))
    out.print(table)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the scenario format (for editors: yaml-language-server, etc.)."""
    sys.stdout.write(json.dumps(api.schema(), indent=2) + "\n")


@app.command("version")
def version_cmd() -> None:
    """Print the package version."""
    out.print(api.version())


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
