"""PNG plots of a run, from its result frames.

Figures are matplotlib `Figure` objects rendered straight to PNG, never pyplot: no display is needed, a notebook's
backend is left alone, and matplotlib is imported only when the first plot is drawn, so `import consolidate`
stays light.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from consolidate.report.views import HostView, MigrationView


def _subplots(figsize: tuple[float, float]):
    from matplotlib.figure import Figure  # a second of imports, paid only by runs that draw

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def _series(series: pd.Series, ylabel: str, title: str, path: Path) -> Path:
    """A step plot of a series indexed by time_s, in hours."""
    fig, ax = _subplots((8, 3.2))
    ax.step(series.index / 3600, series.to_numpy(), where="post")
    ax.set(xlabel="time (h)", ylabel=ylabel, title=title, ylim=(0, None))
    ax.grid(alpha=0.3)
    return _save(fig, path)


def active_hosts(view: HostView, path: Path) -> Path:
    """Hosts powered on per interval, over time (hours)."""
    return _series(view.active, "active hosts", "Active hosts", path)


def utilisation_percentiles(view: HostView, path: Path) -> Path:
    """5th/25th/50th/75th/95th percentile of CPU utilisation over active hosts, over time."""
    q = view.util_q
    fig, ax = _subplots((8, 3.2))
    if not q.empty:
        h = q.index / 3600
        ax.fill_between(h, q[0.05] * 100, q[0.95] * 100, alpha=0.2, step="post", label="p5-p95")
        ax.fill_between(h, q[0.25] * 100, q[0.75] * 100, alpha=0.4, step="post", label="p25-p75")
        ax.step(h, q[0.5] * 100, where="post", label="median")
        ax.legend(loc="upper right", fontsize=8)
    ax.set(xlabel="time (h)", ylabel="CPU utilisation (%)", title="Utilisation of active hosts", ylim=(0, 100))
    ax.grid(alpha=0.3)
    return _save(fig, path)


def power(view: HostView, path: Path) -> Path:
    """Total power draw of the datacenter (kW) over time."""
    return _series(view.power_w / 1000, "power (kW)", "Datacenter power", path)


def overhead_by_reason(reasons: pd.DataFrame, path: Path) -> Path:
    """The datacenter's exit-driven virtualization overhead over time, stacked by exit reason (MIPS)."""
    cols = [c for c in reasons.columns if c != "time_s"]
    order = sorted(cols, key=lambda c: -reasons[c].sum())
    fig, ax = _subplots((8, 3.6))
    ax.stackplot(reasons["time_s"] / 3600, *[reasons[c].to_numpy() / 1000 for c in order],
                 labels=[c[:-len("_mips")] for c in order], step="post")
    ax.set(xlabel="time (h)", ylabel="overhead (thousand MIPS)", title="Virtualization overhead by exit reason")
    ax.legend(loc="upper left", fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def overhead_per_host(view: HostView, path: Path) -> Path:
    """Each active host's virtualization overhead (overhead + I/O backend) as a share of its CPU capacity,
    averaged over the run, hosts sorted from most to least."""
    per_host = view.overhead_pct.sort_values(ascending=False)
    fig, ax = _subplots((8, 3.2))
    ax.plot(np.arange(len(per_host)), per_host.to_numpy(), drawstyle="steps-post")
    ax.set(xlabel="active hosts, most overhead first", ylabel="overhead (% of capacity)",
           title="Virtualization overhead per host", ylim=(0, None))
    ax.grid(alpha=0.3)
    return _save(fig, path)


def live_vms(datacenter: pd.DataFrame, path: Path) -> Path:
    """VMs alive and VMs waiting for a host (left axis) against hosts on (right axis), per interval over time
    (hours): how the hosts on follow the VMs as they arrive and leave."""
    fig, ax = _subplots((8, 3.4))
    h = datacenter["time_s"].to_numpy() / 3600
    ax.step(h, datacenter["vms_live"].to_numpy(), where="post", label="VMs live")
    if datacenter["vms_queued"].any():
        ax.step(h, datacenter["vms_queued"].to_numpy(), where="post", label="VMs queued")
    ax.set(xlabel="time (h)", ylabel="VMs", title="Live VMs against active hosts", ylim=(0, None))
    ax.grid(alpha=0.3)
    right = ax.twinx()  # hosts and VMs differ by an order of magnitude: each on its own scale
    right.step(h, datacenter["hosts_active"].to_numpy(), where="post", color="C3", label="hosts on")
    right.set(ylabel="active hosts", ylim=(0, max(1, int(datacenter["hosts_active"].max())) * 1.1))
    for a in (ax, right):
        a.yaxis.get_major_locator().set_params(integer=True)  # counts: no half hosts on the scale
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    return _save(fig, path)


def migration_timeline(view: MigrationView, path: Path) -> Path:
    """Migrations started per scheduling interval, by reason, and their mean duration."""
    fig, ax = _subplots((8, 3.2))
    if view.n:
        counts = view.started
        counts = counts.reindex(np.arange(counts.index.max() + 1), fill_value=0)
        edges = np.arange(len(counts) + 1) * view.interval_s / 3600
        bottom = np.zeros(len(counts))
        for reason in counts.columns:
            # one filled staircase per reason, stacked: a bar per interval and reason costs a patch each
            top = bottom + counts[reason].to_numpy()
            ax.stairs(top, edges, baseline=bottom, fill=True, label=reason)
            bottom = top
        ax.set_title(f"Migrations per interval ({view.n:,} in all, mean duration {view.duration_s_mean:.1f} s)")
        ax.legend(fontsize=8)
    else:
        ax.set_title("Migrations per interval (none)")
    ax.set(xlabel="time (h)", ylabel="migrations started")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def run_plots(view: HostView, out_dir: Path, reasons: pd.DataFrame | None = None,
              migrations: MigrationView | None = None, datacenter: pd.DataFrame | None = None) -> list[Path]:
    """All plots of a run (`view` and `migrations`: its host_intervals' and migrations' views, report/views.py),
    written under out_dir/plots/; returns their paths. `datacenter` (VMs that arrive and leave) adds live VMs
    against active hosts."""
    d = out_dir / "plots"
    d.mkdir(parents=True, exist_ok=True)
    paths = [active_hosts(view, d / "active_hosts.png"),
             utilisation_percentiles(view, d / "host_utilisation.png"),
             power(view, d / "power.png")]
    if datacenter is not None:
        paths.append(live_vms(datacenter, d / "live_vms.png"))
    if reasons is not None:
        paths += [overhead_by_reason(reasons, d / "overhead_by_reason.png"),
                  overhead_per_host(view, d / "overhead_per_host.png")]
    if migrations is not None:
        paths.append(migration_timeline(migrations, d / "migrations.png"))
    return paths
