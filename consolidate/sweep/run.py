"""Execute a sweep: every run on a local process pool (default) or a Dask cluster (`scheduler`), the same
worker function either way; then one table of all runs, plots and an index page.

Each finished run leaves `<out>/runs/<key>/summary.parquet`; `resume=True` runs only the keys without one.
"""
from __future__ import annotations

import html
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
from pydantic import ValidationError

from consolidate.errors import Problem, ScenarioError
from consolidate.results.metrics import HEADLINE_METRICS
from consolidate.scenario.loader import problem_from_pydantic, read_mapping
from consolidate.validation import load_scenario
from consolidate.sweep.expand import RunSpec, SweepSpec, expand
from consolidate.sweep.worker import run_one

Progress = Callable[[int, int, int, int], None]  # (done, failed, running, total)
METRICS = HEADLINE_METRICS  # the table's and plots' metrics, flagged in the metric registry


@dataclass
class SweepResult:
    table: pd.DataFrame
    out_dir: Path
    ran: list[str]  # keys run this time (the others were found finished)


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
    for r in runs:  # every run must be a valid scenario before anything starts
        try:
            load_scenario(r.data, base_dir=base)
        except ScenarioError as exc:
            values = ", ".join(f"{k}={v}" for k, v in r.values.items())
            problems += [Problem(p.file, p.path, f"{p.message} (in the run with {values})") for p in named(exc.problems)]
    if problems:
        raise ScenarioError(problems)
    return str(data.get("name", Path(path).stem)), runs, spec, base


def run_sweep(path: str | Path, *, workers: int | None = None, scheduler: str | None = None,
              out: str | Path | None = None, resume: bool = False, progress: Progress | None = None) -> SweepResult:
    """Run (or resume) a sweep and write its table, plots and index.html under `out`
    (default reports/<name>-sweep). Failed runs are recorded with their error; the sweep goes on."""
    name, runs, spec, base = load_sweep(path)
    out_dir = Path(out) if out is not None else Path("reports") / f"{name}-sweep"
    if not resume and (out_dir / "runs").exists():
        shutil.rmtree(out_dir / "runs")  # a fresh sweep: no stale results mixed in
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "runs.json").write_text(json.dumps([{"key": r.key, "values": r.values} for r in runs], indent=1,
                                                  default=str))
    done = {r.key for r in runs if (out_dir / "runs" / r.key / "summary.parquet").exists()} if resume else set()
    todo = [r for r in runs if r.key not in done]
    scheduler = scheduler or spec.scheduler
    results = {}
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
                for i, fut in enumerate(dask_completed(futures)):
                    _collect(fut.result(), results, counts)
                    report(len(futures) - i - 1)
        else:
            with ProcessPoolExecutor(max_workers=workers or spec.workers or os.cpu_count()) as pool:
                futures = [pool.submit(run_one, *a) for a in args]
                for i, fut in enumerate(as_completed(futures)):
                    _collect(fut.result(), results, counts)
                    report(len(futures) - i - 1)
    table = _table(runs, out_dir)
    table.to_parquet(out_dir / "sweep.parquet", index=False)
    table.to_csv(out_dir / "sweep.csv", index=False)
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


def _line_chart(ok: pd.DataFrame, spec, metric: str, path: Path) -> Path:
    """One metric against spec.x, a line per value of spec.series (means over repeats)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    groups = ok.groupby(spec.series, sort=False) if spec.series else [(None, ok)]
    for label, g in groups:
        line = g.groupby(spec.x)[metric].mean().sort_index()
        ax.plot(line.index, line.to_numpy(), "o-", label=str(label) if label is not None else None)
    ax.set(xlabel=spec.xlabel or spec.x, ylabel=metric, title=spec.title or metric)
    if spec.series:
        ax.legend(title=spec.series, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _report(table: pd.DataFrame, runs: list[RunSpec], out_dir: Path, name: str, plot_specs=()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = [k for k in (runs[0].values if runs else {}) if k not in ("repeat",)]
    ok = table[table.status == "ok"]
    plots = []
    (out_dir / "plots").mkdir(exist_ok=True)
    # the sweep's own charts replace the generic metric-by-field scatter plots
    for metric in [] if plot_specs else [m for m in METRICS if m in ok.columns]:
        for field in fields:
            fig, ax = plt.subplots(figsize=(6, 3.2))
            x = ok[field].astype(str) if ok[field].dtype == object else ok[field]
            ax.plot(x, ok[metric], "o")
            ax.set(xlabel=field, ylabel=metric, title=f"{metric} by {field}")
            ax.grid(alpha=0.3)
            fig.autofmt_xdate(rotation=30) if ok[field].dtype == object else None
            fig.tight_layout()
            p = out_dir / "plots" / f"{metric}__{field.replace('.', '_')}.png"
            fig.savefig(p, dpi=90)
            plt.close(fig)
            plots.append(p)
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
    head = "".join(f"<th>{html.escape(c)}</th>" for c in shown)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(f'{v:.6g}' if isinstance(v, float) else str(v))}</td>"
                                      for v in row) + "</tr>" for row in table[shown].itertuples(index=False))
    imgs = "\n".join(f'<p><img src="plots/{p.name}" alt="{p.stem}"></p>' for p in [*lines, *plots])
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(name)} sweep</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em}td,th{padding:.2em .6em;border-bottom:1px solid #ddd}"
            "img{max-width:100%}</style></head><body>"
            f"<h1>{html.escape(name)} — sweep of {len(table)} runs</h1>"
            + "".join(f"<p><b>Note:</b> {html.escape(n)}</p>" for n in notes) +
            f"<p>{(table.status == 'ok').sum()} finished, {(table.status != 'ok').sum()} failed. "
            "Data: <a href='sweep.csv'>sweep.csv</a> · <a href='sweep.parquet'>sweep.parquet</a></p>"
            f"<table><tr>{head}</tr>{body}</table>{imgs}</body></html>")
    (out_dir / "index.html").write_text(page)
