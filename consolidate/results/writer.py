"""Write a run's frames to disk: Parquet always, CSV on request, the resolved scenario, and the report."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from consolidate.results.frames import Results


def write_results(res: "Results", out_dir: Path, *, csv: bool = True, report: bool = True) -> Path:
    """Write `res` under `out_dir` (created); returns the folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stem, df in res.frames.items():
        df.to_parquet(out_dir / f"{stem}.parquet", index=False)
        if csv:
            df.to_csv(out_dir / f"{stem}.csv", index=False)
    # the scenario as validated, defaults filled in: what was really run
    (out_dir / "scenario.resolved.yaml").write_text(
        f"# resolved from {res.scenario.file}\n" + yaml.safe_dump(res.scenario.model_dump(mode="json"), sort_keys=False))
    if report:
        from consolidate.report.html import write_report

        write_report(res, out_dir)
    return out_dir
