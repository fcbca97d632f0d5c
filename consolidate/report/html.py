"""The run's index.html: one self-contained page a capacity planner reads. Plots are embedded (PNG as data URIs;
the files are also under plots/), the data files are linked beside it, no JavaScript.

Sections: warnings (VMs rejected, demand unserved, migrations queued), the scenario's inputs (hosts, VM groups,
policies, virtualization), headline figures, per host type breakdown (hosts, energy, CPU and memory), headroom
percentiles (CPU and memory left on powered-on hosts), the full summary with units, plots and data files.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np
import pandas as pd

from consolidate.report.views import (COLUMNS, MIGRATION_COLUMNS, OVERHEAD_COLUMNS, HostView, MigrationView,
                                     host_view, migration_view)
from consolidate.report.plots import run_plots
from consolidate.results.metrics import unit

if TYPE_CHECKING:
    from consolidate.results.frames import Results

CSS = """body{font-family:system-ui,sans-serif;max-width:64em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border-bottom:1px solid #ddd;padding:.25em .8em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}code{background:#f4f4f4}
.warn{background:#fff4e5;border-left:4px solid #e68a00;padding:.6em 1em;margin:1em 0}
.ok{background:#eef7ee;border-left:4px solid #3a3;padding:.6em 1em;margin:1em 0}
.unit{color:#666;font-size:.9em}nav a{margin-right:1em}"""

# units a planner reads, for the summary's own unit names
_UNIT_TEXT = {"count": "", "fraction": "", "-": "", "bool": ""}


def esc(v) -> str:
    return html.escape(str(v))


def fmt(v, unit_name: str = "") -> str:
    """A number for people: thousands separated, 4 significant digits for non-integers, a fraction as %."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        text = f"{int(v):,}"
    elif isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "—"
        if unit_name == "fraction":
            return f"{v * 100:.3g} %"
        text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    else:
        return esc(v)
    u = _UNIT_TEXT.get(unit_name, unit_name)
    return f"{text} <span class=unit>{esc(u)}</span>" if u else text


def table(header: Iterable[str], rows: Iterable[Iterable[str]], numeric_from: int = 1, numeric_to: int = 99) -> str:
    """An HTML table; cells are already HTML; columns numeric_from..numeric_to-1 are right-aligned (numbers)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class=num>{c}</td>" if numeric_from <= i < numeric_to else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def embed_png(path: Path, alt: str) -> str:
    """An <img> carrying the PNG itself, so the page stands alone (mailed, attached, opened from anywhere)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img src="data:image/png;base64,{data}" alt="{esc(alt)}"></p>'


def _unit(col: str) -> str:
    try:
        return unit(col)
    except KeyError:
        return ""


def _warnings(res: "Results", migrations: MigrationView | None) -> list[str]:
    s = res.summary.iloc[0]
    out = []
    if s.get("vms_rejected", 0):
        out.append(f"{int(s['vms_rejected']):,} of {int(s['vms']):,} VMs fit no host and were rejected "
                   f"({fmt(float(s.get('cpu_rejected_mips_h', 0.0)), 'MIPS-h')} of CPU demand never placed).")
    if s.get("sla_unserved_fraction", 0) > 0:
        out.append(f"{fmt(float(s['sla_unserved_fraction']), 'fraction')} of CPU demand went unserved "
                   f"({fmt(float(s['cpu_unserved_mips_h']), 'MIPS-h')}): hosts were asked for more than they have.")
    if s.get("net_pps_unserved_fraction", 0) > 0:
        out.append(f"{fmt(float(s['net_pps_unserved_fraction']), 'fraction')} of network packets went unserved "
                   "(an I/O path at its cap).")
    if migrations is not None and migrations.queued:
        out.append(f"{migrations.queued:,} migrations were queued (waited {fmt(migrations.queued_s, 's')} in all for "
                   "a free migration slot).")
    if s.get("drain_vms_stuck", 0):
        out.append(f"{int(s['drain_vms_stuck']):,} VMs could not leave a drained host.")
    return out


def _lifecycles(res: "Results") -> str:
    """One line on the VMs that arrive and leave (nothing for a run whose VMs live the whole run)."""
    s = res.summary.iloc[0]
    if "vms_arrived" not in s.index:
        return ""
    waits = (f" (median wait {fmt(float(s['queue_wait_s_p50']), 's')}, longest {fmt(float(s['queue_wait_s_max']), 's')})"
             if s["vms_queued"] else "")
    return (f"<p id=lifecycles><b>VMs that arrive and leave:</b> {fmt(int(s['vms_arrived']))} arrived and "
            f"{fmt(int(s['vms_departed']))} departed during the run, at most {fmt(int(s['vms_live_max']))} live at once; "
            f"{fmt(int(s['vms_queued']))} waited for a host{waits}; {fmt(int(s['vms_rejected']))} were rejected.</p>")


def _inputs(res: "Results") -> str:
    sc = res.scenario
    hosts = res.hosts
    by_type = hosts.groupby("host_type", observed=True, sort=False).agg(
        count=("host", "size"), cores=("cores", "first"), mips=("mips_per_core", "first"),
        mem=("memory_mb", "first"))
    host_rows = [[esc(t), fmt(int(r["count"])), fmt(int(r["cores"])), fmt(float(r["mips"]), "MIPS"),
                  fmt(int(r["mem"]), "MiB")] for t, r in by_type.iterrows()]
    vm_rows = []
    for i, g in enumerate(sc.vms):
        t = g.trace
        src = (f"PlanetLab {t.planetlab}" if t.planetlab else f"native {t.native}" if t.native else
               f"synthetic mean {t.synthetic.mean:g}" if t.synthetic else f"{t.kind} {getattr(t, t.kind)}")
        n = int((res.vms["group_index"] == i).sum()) if "group_index" in res.vms else g.count
        io = g.virtualization.io if g.virtualization is not None else None
        vm_rows.append([esc(g.name or f"group {i}"), fmt(n), esc(", ".join(g.type.types)), esc(src), esc(g.profile),
                        esc(f"net {io.net or 'default'}, disk {io.disk or 'default'}" if io else "default")])
    cons = sc.consolidation.policy if sc.consolidation is not None else "none (static placement)"
    policy_rows = [["placement", esc(f"{sc.placement.policy} (by {sc.placement.cpu_basis})")],
                   ["consolidation", esc(cons)],
                   ["migration model", esc(sc.migration.model if sc.consolidation is not None else "—")],
                   ["CPU overcommit", esc(f"{sc.cpu_overcommit:g}×")],
                   ["idle hosts", "switched off" if sc.power_off_idle_hosts else "left on"],
                   ["virtualization overhead model", "on" if sc.overhead_enabled else "off"],
                   ["time", esc(f"{sc.duration_s / 3600:g} h in {sc.n_intervals:,} intervals of {sc.interval_s:g} s, "
                                f"seed {sc.seed}")]]
    return ("<h2 id=inputs>Inputs</h2><h3>Hosts</h3>"
            + table(["host type", "hosts", "cores", "per core", "memory"], host_rows)
            + "<h3>VM groups</h3>"
            + table(["group", "VMs", "types", "trace", "profile", "I/O paths"], vm_rows, numeric_to=2)
            + "<h3>Policies and configuration</h3>" + table(["", ""], policy_rows, numeric_from=9))


def _per_host_type(res: "Results", view: HostView) -> str:
    n_int = max(res.scenario.n_intervals, 1)
    rows = []
    for t, g in res.hosts.groupby("host_type", observed=True, sort=False):
        n_on = view.type_on.get(t, 0)
        mem_used = g["memory_used_mb"].sum() / max(g.loc[g["vms"] > 0, "memory_mb"].sum(), 1)
        rows.append([esc(t), fmt(len(g)), fmt(n_on / n_int, "hosts"), fmt(int((g["vms"] > 0).sum())),
                     fmt(int(g["vms"].sum())), fmt(view.type_energy_kwh.get(t, 0.0), "kWh"),
                     fmt(view.type_util_sum.get(t, 0.0) / n_on if n_on else float("nan"), "fraction"),
                     fmt(float(mem_used), "fraction")])
    return ("<h2 id=by-type>By host type</h2>"
            + table(["host type", "hosts", "on (mean)", "holding VMs at end", "VMs at end", "energy",
                     "CPU used (on hosts)", "memory used (hosts with VMs)"], rows))


def _headroom(res: "Results", view: HostView) -> str:
    """What is left on powered-on hosts: CPU per host-interval, memory per host with VMs at the end."""
    qs = [0.05, 0.25, 0.5, 0.75, 0.95]
    cpu = (1 - view.on_util.astype(float)) if len(view.on_util) else np.array([np.nan])
    h = res.hosts[res.hosts["vms"] > 0]
    mem = (1 - h["memory_used_mb"] / h["memory_mb"]).to_numpy(dtype=float) if len(h) else np.array([np.nan])
    rows = [["CPU free (host-intervals, powered-on hosts)", *(fmt(float(np.quantile(cpu, q)), "fraction") for q in qs)],
            ["memory free (hosts holding VMs)", *(fmt(float(np.quantile(mem, q)), "fraction") for q in qs)]]
    return ("<h2 id=headroom>Headroom</h2><p>Share of capacity left, as percentiles: p5 is the tightest 5 %.</p>"
            + table(["", "p5", "p25", "p50", "p75", "p95"], rows))


def write_report(res: "Results", out_dir: Path) -> Path:
    """Write plots and index.html for one run under out_dir; returns the page's path."""
    # the host rows a piece at a time: a big run's host_intervals is never read whole
    overhead = res.overhead_reasons is not None
    view = host_view(res.pieces("host_intervals", COLUMNS + (OVERHEAD_COLUMNS if overhead else [])), overhead)
    migrations = migration_view(res.pieces("migrations", MIGRATION_COLUMNS), res.scenario.interval_s) \
        if "migrations" in res.frame_names() else None
    plots = run_plots(view, out_dir, res.overhead_reasons, migrations, res.datacenter)
    s = res.summary.iloc[0]
    sc = res.scenario
    warnings = _warnings(res, migrations)
    banner = ("".join(f"<div class=warn><b>Warning:</b> {w}</div>" for w in warnings) if warnings else
              "<div class=ok>Every VM was placed and all CPU demand was served.</div>")
    head_cols = [("energy_kwh", "energy"), ("hosts_active_mean", "hosts on (mean)"), ("hosts_active_max", "hosts on (max)"),
                 ("power_w_max", "peak power"), ("host_cpu_util_mean", "CPU used on hosts on"),
                 ("sla_unserved_fraction", "CPU demand unserved"), ("migrations", "migrations")]
    headline = table(["", ""], [[esc(label), fmt(s[c], _unit(c))] for c, label in head_cols if c in s.index])
    summary = table(["column", "value"], [[f"<code>{esc(k)}</code>", fmt(v, _unit(k))] for k, v in s.items()])
    imgs = "\n".join(embed_png(p, p.stem.replace("_", " ")) for p in plots)
    files = sorted(p.name for p in out_dir.iterdir() if p.suffix in (".parquet", ".csv", ".yaml"))
    links = " · ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in files)
    left_out = (f"<p class=warn><b>Left out</b> (the scenario's <code>outputs:</code>): {esc('; '.join(res.left_out))}"
                "</p>" if res.left_out else "")
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(sc.name)} — {esc(res.run_id)}</title>
<style>{CSS}</style></head><body>
<h1>{esc(sc.name)}</h1>
<p>Run <code>{esc(res.run_id)}</code> of <code>{esc(sc.file)}</code>, seed {sc.seed}, consolidate
{esc(s.get('consolidate_version', ''))}. {esc(sc.description)}</p>
<nav><a href="#inputs">inputs</a><a href="#by-type">by host type</a><a href="#headroom">headroom</a>
<a href="#summary">summary</a><a href="#plots">plots</a><a href="#data">data</a></nav>
{banner}
<h2>Headline</h2>{headline}
{_lifecycles(res)}
{_inputs(res)}
{_per_host_type(res, view)}
{_headroom(res, view)}
{_maintenance_section(res)}
<h2 id=summary>Summary</h2>{summary}
<h2 id=plots>Plots</h2>{imgs}
<h2 id=data>Data</h2><p>{links}</p>{left_out}
</body></html>"""
    path = out_dir / "index.html"
    path.write_text(page)
    return path


def _maintenance_section(res: "Results") -> str:
    """Each drain: when, how many VMs left and when the last one arrived, which could not leave and why, and
    what the drains cost against the same run without them."""
    m = getattr(res, "maintenance", None)
    if m is None:
        return ""
    rows = []
    for d, g in m.groupby("drain"):
        moved = g[g.outcome == "moved"]
        last = (moved.end_s.max() - g.at_s.iloc[0]) if len(moved) else float("nan")
        rows.append([esc(d), fmt(float(g.at_s.iloc[0]), "s"), fmt(len(moved)), fmt(int((g.outcome == "stuck").sum())),
                     fmt(float(last), "s")])
    stuck = m[m.outcome == "stuck"].groupby("reason").vm.agg(["count", lambda v: ", ".join(map(str, v[:20]))])
    why = [[esc(r), fmt(int(n)), esc(vms)] for r, (n, vms) in stuck.iterrows()]
    impact = [[esc(k[len("drain_impact_"):]), fmt(v, _unit(k))] for k, v in res.summary.iloc[0].items()
              if k.startswith("drain_impact_")]
    return ("<h2>Maintenance</h2>" + table(["drain", "at", "VMs moved", "VMs stuck", "evacuation"], rows)
            + ("<h3>VMs that could not leave</h3>" + table(["why", "VMs", "first VM ids"], why, 1) if why
               else "<p>Every VM could leave.</p>")
            + ("<h3>Cost of the drains (with minus without, same seed)</h3>" + table(["", ""], impact) if impact
               else ""))
