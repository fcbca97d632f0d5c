"""Write docs/metrics.md and the README's `summary` bullet from the metric registry
(consolidate/results/metrics.py), and docs/columns.md (every frame's columns, one table) and the README's frame
bullets from the column registry (consolidate/results/columns.py), so the documented columns are always the
computed ones.

    python scripts/gen_metrics_doc.py          # rewrite what is stale
    python scripts/gen_metrics_doc.py --check  # exit 1, naming the stale files, if any is out of date
"""
from __future__ import annotations

import sys
from pathlib import Path

from consolidate.results.columns import columns_markdown, readme_frames_bullets
from consolidate.results.metrics import metrics_markdown, readme_summary_bullet

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- metrics:begin -->", "<!-- metrics:end -->"
COLUMNS_BEGIN, COLUMNS_END = "<!-- columns:begin -->", "<!-- columns:end -->"


def _between(text: str, begin: str, end: str, body: str) -> str:
    """`text` (the README) with `body` between the markers `begin` and `end` of its "## Result columns" section."""
    section = text.index("\n## Result columns\n")
    next_section = text.find("\n## ", section + 1)
    a, b = text.find(begin, section), text.find(end, section)
    if not (0 <= a < b < (next_section if next_section >= 0 else len(text))):
        raise ValueError(f"README.md: no {begin} ... {end} block in the 'Result columns' section")
    return text[:a + len(begin)] + "\n" + body + "\n" + text[b:]


def readme_with_bullet(text: str) -> str:
    """`text` (the README) with the generated summary bullet and frame bullets in its "Result columns" section."""
    text = _between(text, BEGIN, END, readme_summary_bullet())
    return _between(text, COLUMNS_BEGIN, COLUMNS_END, readme_frames_bullets())


def expected() -> dict[Path, str]:
    """Each generated file and the text it should hold."""
    readme = REPO / "README.md"
    return {REPO / "docs" / "metrics.md": metrics_markdown(), REPO / "docs" / "columns.md": columns_markdown(),
            readme: readme_with_bullet(readme.read_text())}


def main(argv: list[str]) -> int:
    stale = [p for p, text in expected().items() if not p.exists() or p.read_text() != text]
    if "--check" in argv:
        for p in stale:
            print(f"{p.relative_to(REPO)} is stale: run python scripts/gen_metrics_doc.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in expected().items():
        if p in stale:
            p.write_text(text)
            print(f"wrote {p.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
