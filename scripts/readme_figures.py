"""Regenerate the README's figures that are cheap to rerun: the default scenario's line under "A short tour"
(one PlanetLab day, about 4 s). The block sits between `<!-- default-run:begin ... -->` and
`<!-- default-run:end -->`.

    python scripts/readme_figures.py           # rewrite the block in README.md
    python scripts/readme_figures.py --check   # exit 1 (and show both) when the README differs from a fresh run

tests/test_readme.py runs the check. The longer tables name their own commands beside them.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import consolidate

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- default-run:begin[^>]*-->\n)(.*?)(<!-- default-run:end -->)", re.S)


def default_run_text() -> str:
    """The default scenario's sentence, from a fresh run of the embedded default."""
    res = consolidate.run()
    s = res.summary.iloc[0]
    mem = int(res.hosts["memory_mb"].iloc[0])
    return (f"On the default scenario (static power-aware best-fit decreasing, no migrations): {int(s['hosts_active_max'])} "
            f"of {int(s['hosts'])} hosts active\n(memory, {mem:,} MB per host, is the binding constraint), "
            f"{s['energy_kwh']:,.1f} kWh for the day, {s['sla_unserved_fraction'] * 100:.3f} % of CPU demand\n"
            "unserved.\n")


def main(argv: list[str]) -> int:
    text = README.read_text()
    m = BLOCK.search(text)
    if m is None:
        print(f"{README}: no default-run block", file=sys.stderr)
        return 2
    fresh = default_run_text()
    if "--check" in argv:
        if m.group(2) != fresh:
            print(f"README.md is stale.\nREADME says:\n{m.group(2)}\na fresh run gives:\n{fresh}", file=sys.stderr)
            return 1
        return 0
    README.write_text(text[:m.start(2)] + fresh + text[m.end(2):])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
