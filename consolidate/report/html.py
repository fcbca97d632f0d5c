"""The run's index.html: summary table, plots and links to the data files. Self-contained, no JavaScript."""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from consolidate.report.plots import run_plots

if TYPE_CHECKING:
    from consolidate.results.frames import Results

_CSS = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.25em .8em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}code{background:#f4f4f4}"""


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return html.escape(str(v))


def write_report(res: "Results", out_dir: Path) -> Path:
    """Write plots and index.html for one run under out_dir; returns the page's path."""
    plots = run_plots(res.host_intervals, out_dir, res.overhead_reasons, res.migrations, res.scenario.interval_s)
    row = res.summary.iloc[0]
    rows = "\n".join(f"<tr><th>{html.escape(k)}</th><td class=num>{_fmt(v)}</td></tr>" for k, v in row.items())
    imgs = "\n".join(f'<p><img src="{p.relative_to(out_dir).as_posix()}" alt="{p.stem}"></p>' for p in plots)
    files = sorted(p.name for p in out_dir.iterdir() if p.suffix in (".parquet", ".csv", ".yaml"))
    links = " · ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in files)
    sc = res.scenario
    maintenance = _maintenance_section(res)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(sc.name)} — {res.run_id}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(sc.name)}</h1>
<p>Run <code>{html.escape(res.run_id)}</code> of <code>{html.escape(sc.file)}</code>, seed {sc.seed}.
{html.escape(sc.description)}</p>
<h2>Summary</h2><table>{rows}</table>
{maintenance}<h2>Plots</h2>{imgs}
<h2>Data</h2><p>{links}</p>
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
        rows.append(f"<tr><td>{d}</td><td class=num>{_fmt(float(g.at_s.iloc[0]))}</td><td class=num>{len(moved)}</td>"
                    f"<td class=num>{int((g.outcome == 'stuck').sum())}</td><td class=num>{_fmt(float(last))}</td></tr>")
    stuck = m[m.outcome == "stuck"].groupby("reason").vm.agg(["count", lambda v: ", ".join(map(str, v[:20]))])
    why = "".join(f"<tr><td>{html.escape(r)}</td><td class=num>{n}</td><td>{html.escape(vms)}</td></tr>"
                  for r, (n, vms) in stuck.iterrows())
    s = res.summary.iloc[0]
    impact = [(k, s[k]) for k in s.index if k.startswith("drain_impact_")]
    imp = "".join(f"<tr><th>{html.escape(k[len('drain_impact_'):])}</th><td class=num>{_fmt(v)}</td></tr>"
                  for k, v in impact)
    return ("<h2>Maintenance</h2><table><tr><th>drain</th><th>at_s</th><th>VMs moved</th><th>VMs stuck</th>"
            f"<th>evacuation s</th></tr>{''.join(rows)}</table>"
            + (f"<h3>VMs that could not leave</h3><table><tr><th>why</th><th>VMs</th><th>first VM ids</th></tr>"
               f"{why}</table>" if why else "<p>Every VM could leave.</p>")
            + (f"<h3>Cost of the drains (with minus without, same seed)</h3><table>{imp}</table>" if imp else ""))
