"""Execute a sweep: every run on a local process pool (default) or a Dask cluster (`scheduler`), the same
worker function either way; then one table of all runs, plots and an index page.

Each finished run leaves `<out>/runs/<key>/summary.parquet`; `resume=True` runs only the keys without one. A key
hashes the run's swept values, its fully resolved scenario (defaults filled in) and the package version, so a
resumed sweep never reuses a result of another version of the scenario or of the simulator.

Ctrl-C (or SIGTERM) cancels the queued runs, ends the workers and raises SweepInterrupted saying what finished;
the finished runs stay in `runs/` for `--resume`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from pydantic import ValidationError

from consolidate import api
from consolidate.errors import Problem, ScenarioError
from consolidate.report.html import CSS, embed_png
from consolidate.results.metrics import HEADLINE_METRICS, unit as metric_unit
from consolidate.scenario.loader import problem_from_pydantic, read_mapping
from consolidate.validation import load_scenario
from consolidate.sweep.expand import RunSpec, SweepSpec, expand, run_key
from consolidate.sweep.worker import init_worker, run_one

Progress = Callable[[int, int, int, int], None]  # (done, failed, running, total)
METRICS = HEADLINE_METRICS  # the table's and plots' metrics, flagged in the metric registry


@dataclass
class SweepResult:
    table: pd.DataFrame
    out_dir: Path
    ran: list[str]  # keys run this time (the others were found finished)


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM during a sweep; `finished` of `total` runs have results in `out_dir`/runs."""

    def __init__(self, finished: int, failed: int, total: int, out_dir: Path):
        self.finished, self.failed, self.total, self.out_dir = finished, failed, total, out_dir
        super().__init__(f"{finished} of {total} runs finished ({failed} failed), kept in {out_dir / 'runs'}; "
                         f"--resume runs the other {total - finished - failed}")


def fingerprint(sc) -> str:
    """What a run's result depends on: the fully resolved scenario (every default filled in) and the version."""
    blob = json.dumps([sc.model_dump(mode="json"), api.version()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_sweep(path: str | Path) -> tuple[str, list[RunSpec], SweepSpec, Path]:
    """(name, runs, spec, base folder) of a sweep file; raises ScenarioError for a bad sweep or run."""
    data, base = read_mapping(path)
    raw = data.pop("sweep", None)
    if raw is None:
        raise ScenarioError([Problem(str(path), "sweep", "no sweep block (expected sweep: {grid: ..., zip: ..., "
                                     "repeats: ...})")])
    def named(problems):
        return [Problem(p.file if p.file != "<dict>" else str(path), p.path, p.message) for p in problems]

    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        problems = [Problem(str(path), "sweep." + p.path, p.message) if p.path else p
                    for p in (problem_from_pydantic(str(path), e) for e in exc.errors())]
        try:  # report the scenario's own problems too, all at once
            load_scenario(data, base_dir=base)
        except ScenarioError as base_exc:
            problems += named(base_exc.problems)
        raise ScenarioError(problems) from None
    runs = expand(data, spec, str(path))
    problems = []
    keyed = []
    for r in runs:  # every run must be a valid scenario before anything starts
        try:
            sc = load_scenario(r.data, base_dir=base)
            keyed.append(dataclasses.replace(r, key=run_key({**r.values, "scenario": fingerprint(sc)})))
        except ScenarioError as exc:
            values = ", ".join(f"{k}={v}" for k, v in r.values.items())
            problems += [Problem(p.file, p.path, f"{p.message} (in the run with {values})") for p in named(exc.problems)]
    if problems:
        raise ScenarioError(problems)
    return str(data.get("name", Path(path).stem)), keyed, spec, base


def _replace_file(path: Path, write) -> None:
    """Write through a temporary file and a rename: a reader sees the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Cancel the queue and end the workers now (a run in progress is abandoned, its folder has no result)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # no public handle before Python 3.14
    pool.shutdown(wait=False, cancel_futures=True)  # (this forgets the processes: taken first)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()


def run_sweep(path: str | Path, *, workers: int | None = None, scheduler: str | None = None,
              out: str | Path | None = None, resume: bool = False, progress: Progress | None = None) -> SweepResult:
    """Run (or resume) a sweep and write its table, plots and index.html under `out`
    (default reports/<name>-sweep). Failed runs are recorded with their error; the sweep goes on."""
    name, runs, spec, base = load_sweep(path)
    out_dir = Path(out) if out is not None else Path("reports") / f"{name}-sweep"
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "runs.json").exists():
        raise ScenarioError([Problem(str(out_dir), "", "holds files that are not a sweep's (expected a new or empty "
                                     "folder, or a sweep's own folder)")])
    if not resume:  # a fresh sweep: no stale results or pages mixed in
        for stale in ("runs", "plots"):
            shutil.rmtree(out_dir / stale, ignore_errors=True)
    for stale in ("index.html", "sweep.parquet", "sweep.csv"):  # rewritten at the end; never left stale
        (out_dir / stale).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    _replace_file(out_dir / "runs.json", lambda p: p.write_text(json.dumps(
        [{"key": r.key, "values": r.values} for r in runs], indent=1, default=str)))
    done = {r.key for r in runs if (out_dir / "runs" / r.key / "summary.parquet").exists()} if resume else set()
    todo = [r for r in runs if r.key not in done]
    scheduler = scheduler or spec.scheduler
    results: dict = {}
    counts = {"done": len(done), "failed": 0}

    def report(running: int) -> None:
        if progress is not None:
            progress(counts["done"], counts["failed"], running, len(runs))

    report(0)
    if todo:
        args = [(r.data, str(base), str(out_dir.resolve()), r.key) for r in todo]
        if scheduler:
            from distributed import Client, as_completed as dask_completed

            with Client(scheduler) as client:
                futures = [client.submit(run_one, *a, key=f"consolidate-{a[3]}", pure=False) for a in args]
                try:
                    for i, fut in enumerate(dask_completed(futures)):
                        _collect(fut.result(), results, counts)
                        report(len(futures) - i - 1)
                except KeyboardInterrupt:
                    client.cancel(futures)
                    raise SweepInterrupted(counts["done"], counts["failed"], len(runs), out_dir) from None
        else:
            pool = ProcessPoolExecutor(max_workers=workers or spec.workers or os.cpu_count(),
                                       initializer=init_worker, initargs=(os.getpid(),))
            try:
                futures = {pool.submit(run_one, *a): a[3] for a in args}
                for i, fut in enumerate(as_completed(futures)):
                    try:
                        res = fut.result()
                    except BrokenProcessPool:  # a worker was killed (out of memory, or by hand)
                        res = {"key": futures[fut], "status": "failed", "error": "its worker process died"}
                        (out_dir / "runs" / res["key"]).mkdir(parents=True, exist_ok=True)
                        (out_dir / "runs" / res["key"] / "error.txt").write_text(res["error"])
                    _collect(res, results, counts)
                    report(len(futures) - i - 1)
            except KeyboardInterrupt:
                _terminate(pool)
                raise SweepInterrupted(counts["done"], counts["failed"], len(runs), out_dir) from None
            pool.shutdown(wait=True)
    table = _table(runs, out_dir)
    _replace_file(out_dir / "sweep.parquet", lambda p: table.to_parquet(p, index=False))
    _replace_file(out_dir / "sweep.csv", lambda p: table.to_csv(p, index=False))
    _report(table, runs, out_dir, name, spec.plots)
    return SweepResult(table=table, out_dir=out_dir, ran=[r.key for r in todo])


def _collect(res: dict, results: dict, counts: dict) -> None:
    results[res["key"]] = res
    counts["done" if res["status"] == "ok" else "failed"] += 1


def _table(runs: list[RunSpec], out_dir: Path) -> pd.DataFrame:
    """One row per run: the swept values, status, error, and the run's summary columns."""
    rows = []
    for r in runs:
        folder = out_dir / "runs" / r.key
        row = {"run": r.index, "run_key": r.key, **{k: v for k, v in r.values.items()}}
        if (folder / "summary.parquet").exists():
            summary = pd.read_parquet(folder / "summary.parquet").iloc[0].to_dict()
            summary.pop("run_id", None)
            row.update({"status": "ok", "error": ""})
            row.update({k: v for k, v in summary.items() if k not in row})
        else:
            err = (folder / "error.txt").read_text() if (folder / "error.txt").exists() else "not run"
            row.update({"status": "failed", "error": err})
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.drop(columns=[c for c in ("wall_s",) if c in df.columns])  # timings differ run to run


def _figure(size=(6.4, 3.6)):
    from matplotlib.figure import Figure  # never pyplot: a notebook's backend is left alone

    fig = Figure(figsize=size)
    return fig, fig.subplots()


def _label(col: str) -> str:
    """An axis label with the column's unit, e.g. 'energy_kwh (kWh)'."""
    try:
        u = metric_unit(col)
    except KeyError:
        return col
    return col if u in ("-", "count", "") else f"{col} ({'share' if u == 'fraction' else u})"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def _line_chart(ok: pd.DataFrame, spec, metric: str, path: Path) -> Path:
    """One metric against spec.x, a line per value of spec.series (means over repeats)."""
    fig, ax = _figure()
    groups = ok.groupby(spec.series, sort=False) if spec.series else [(None, ok)]
    for label, g in groups:
        line = g.groupby(spec.x)[metric].mean().sort_index()
        ax.plot(line.index, line.to_numpy(), "o-", label=str(label) if label is not None else None)
    ax.set(xlabel=spec.xlabel or spec.x, ylabel=_label(metric), title=spec.title or metric)
    if spec.series:
        ax.legend(title=spec.series, fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _tradeoff_chart(ok: pd.DataFrame, fields: list[str], path: Path) -> Path:
    """Energy against unserved CPU demand, one point per run labelled by its swept values: the trade-off a
    planner chooses on (lower left is better on both)."""
    fig, ax = _figure((6.4, 4.2))
    fields = [f for f in fields if f != "seed"]  # repeats differ only by seed: not a choice to label
    by = next((f for f in fields if not pd.api.types.is_numeric_dtype(ok[f])), fields[0] if fields else None)
    for value, g in (ok.groupby(by, sort=False) if by else [(None, ok)]):
        ax.scatter(g["sla_unserved_fraction"] * 100, g["energy_kwh"], zorder=3,
                   label=str(value) if by else None)
    if len(ok) <= 12:  # few enough to name each point by its other swept values
        rest = [f for f in fields if f != by]
        for _, r in ok.iterrows():
            ax.annotate(", ".join(f"{f.split('.')[-1]}={r[f]}" for f in rest)[:40],
                        (r["sla_unserved_fraction"] * 100, r["energy_kwh"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    if by:
        ax.legend(title=by, fontsize=7)
    ax.set(xlabel="CPU demand unserved (%)", ylabel="energy (kWh)", title="Energy against SLA, one point per run")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _report(table: pd.DataFrame, runs: list[RunSpec], out_dir: Path, name: str, plot_specs=()) -> None:
    fields = [k for k in (runs[0].values if runs else {}) if k not in ("repeat",)]
    ok = table[table.status == "ok"]
    plots = []
    (out_dir / "plots").mkdir(exist_ok=True)
    if {"energy_kwh", "sla_unserved_fraction"} <= set(ok.columns) and len(ok):
        plots.append(_tradeoff_chart(ok, fields, out_dir / "plots" / "energy_vs_sla.png"))
    # the sweep's own charts replace the generic metric-by-field plots
    for metric in [] if plot_specs else [m for m in METRICS if m in ok.columns]:
        for field in fields:
            fig, ax = _figure()
            text = not pd.api.types.is_numeric_dtype(ok[field])
            x = ok[field].astype(str) if text else ok[field]
            ax.plot(x, ok[metric], "o")
            ax.set(xlabel=field, ylabel=_label(metric), title=f"{metric} by {field}")
            ax.grid(alpha=0.3)
            if text:  # category names are long: slanted, right-aligned under their tick
                ax.tick_params(axis="x", labelrotation=30, labelsize=8)
                for t in ax.get_xticklabels():
                    t.set_horizontalalignment("right")
            plots.append(_save(fig, out_dir / "plots" / f"{metric}__{field.replace('.', '_')}.png"))
    notes, lines = [], []
    for i, spec_plot in enumerate(plot_specs):
        for metric in spec_plot.metrics:
            if metric not in ok.columns:
                notes.append(f"sweep.plots.{i}: no run has a {metric!r} column (not drawn)")
                continue
            lines.append(_line_chart(ok, spec_plot, metric, out_dir / "plots" / f"line{i}__{metric}.png"))
    extra = [m for p in plot_specs for m in p.metrics if m in table.columns and m not in METRICS]
    shown = [c for c in ["run", *fields, "status", *[m for m in METRICS if m in table.columns],
                         *dict.fromkeys(extra), "error"] if c in table.columns]
    head = "".join(f"<th>{html.escape(_label(c))}</th>" for c in shown)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(f'{v:.6g}' if isinstance(v, float) else str(v))}</td>"
                                      for v in row) + "</tr>" for row in table[shown].itertuples(index=False))
    imgs = "\n".join(embed_png(p, p.stem.replace("__", " by ").replace("_", " ")) for p in [*lines, *plots])
    failed = int((table.status != "ok").sum())
    banner = (f"<div class=warn><b>Warning:</b> {failed} of {len(table)} runs failed; their errors are in the "
              "table.</div>" if failed else "")
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(name)} sweep</title>"
            f"<style>{CSS}</style></head><body>"
            f"<h1>{html.escape(name)} — sweep of {len(table)} runs</h1>{banner}"
            + "".join(f"<p><b>Note:</b> {html.escape(n)}</p>" for n in notes) +
            f"<p>{(table.status == 'ok').sum()} finished, {failed} failed. Swept: "
            f"{html.escape(', '.join(fields) or 'nothing')}. "
            "Data: <a href='sweep.csv'>sweep.csv</a> · <a href='sweep.parquet'>sweep.parquet</a></p>"
            f"<table><tr>{head}</tr>{body}</table>{imgs}</body></html>")
    _replace_file(out_dir / "index.html", lambda p: p.write_text(page))
