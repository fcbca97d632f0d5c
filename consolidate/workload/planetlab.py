"""CloudSim's PlanetLab trace format: one file per VM, one integer CPU percent per line, 300 s apart.

The day shipped inside the package (`builtin:20110303`) is the same data packed as a uint8 matrix,
so the default scenario loads in milliseconds and runs from an installed package, with no trace folder at hand.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from consolidate.errors import TraceError, not_a_regular_file, short
from consolidate.scenario.model import Scenario, VmGroup
from consolidate.workload.sources import GroupTraces, fit_to_grid, register

INTERVAL_S = 300.0
MAX_FILE_BYTES = 4 * 2**20
BUILTIN_PREFIX = "builtin:"


def builtin_days() -> list[str]:
    """Names of the PlanetLab days packed inside the package (e.g. ['20110303'])."""
    root = resources.files("consolidate.data")
    return sorted(p.name[len("planetlab-"):-len(".npz")] for p in root.iterdir()
                  if p.name.startswith("planetlab-") and p.name.endswith(".npz"))


def read_planetlab_file(path: Path) -> np.ndarray:
    """One VM's trace as int16 CPU percents (one per 300 s); rejects non-integers, blanks and values outside 0..100."""
    why = not_a_regular_file(path)
    if why is not None:
        raise TraceError(str(path), f"trace file {why}")
    n_bytes = path.stat().st_size
    if n_bytes > MAX_FILE_BYTES:  # a PlanetLab day is about 1 KB a VM; a year of 300 s samples under 0.5 MB
        raise TraceError(str(path), f"too large for a PlanetLab trace (got {n_bytes:,} bytes, expected at most "
                         f"{MAX_FILE_BYTES:,}: one CPU percent per line)")
    raw = path.read_bytes()
    if b"\0" in raw:
        raise TraceError(str(path), "not a text file (got NUL bytes, expected one integer CPU percent per line)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TraceError(str(path), "not a text file (expected one integer CPU percent per line)") from None
    lines = text.splitlines()
    try:
        values = np.array(lines, dtype=np.int16)
    except ValueError:
        values = None
    if values is None or len(lines) == 0:
        if not lines:
            raise TraceError(str(path), "file is empty (expected one integer CPU percent per line)")
        for i, line in enumerate(lines, start=1):
            try:
                int(line)
            except ValueError:
                raise TraceError(str(path), f"not an integer percent (got {short(line)}, expected 0..100)", row=i) from None
    bad = np.flatnonzero((values < 0) | (values > 100))
    if bad.size:
        i = int(bad[0])
        raise TraceError(str(path), f"CPU percent out of range (got {int(values[i])}, expected 0..100)", row=i + 1)
    return values


def read_planetlab_folder(folder: Path) -> tuple[list[str], np.ndarray]:
    """All traces of a PlanetLab day folder, sorted by file name.

    Returns (names, percents) with percents an int16 matrix of shape (VMs, samples); every file must
    have the same number of samples.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise TraceError(str(folder), "PlanetLab folder does not exist (expected a directory of trace files)")
    # every entry but hidden files: a sub-folder or a FIFO in the day's folder is reported, not skipped
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    if not files:
        raise TraceError(str(folder), "PlanetLab folder holds no trace files")
    rows = [read_planetlab_file(p) for p in files]
    n = len(rows[0])
    for p, r in zip(files, rows):
        if len(r) != n:
            raise TraceError(str(p), f"has {len(r)} samples (expected {n}, like {files[0].name})")
    return [p.name for p in files], np.vstack(rows)


@lru_cache(maxsize=4)
def _load_builtin(day: str) -> tuple[tuple[str, ...], np.ndarray]:
    ref = resources.files("consolidate.data") / f"planetlab-{day}.npz"
    with resources.as_file(ref) as path, np.load(path) as z:
        names = tuple(str(z["names"]).split("\n"))
        pct = z["util_pct"]
    pct.setflags(write=False)  # shared through the cache: nobody may modify it
    return names, pct


def load_planetlab(source: str, base_dir: Path | None = None) -> tuple[list[str], np.ndarray]:
    """Load a PlanetLab day from `builtin:DAY` or a folder path (relative to `base_dir`).

    Returns (names, percents) as `read_planetlab_folder` does.
    """
    if source.startswith(BUILTIN_PREFIX):
        day = source[len(BUILTIN_PREFIX):]
        if day not in builtin_days():
            raise TraceError(source, f"no such built-in PlanetLab day (expected one of: {', '.join(builtin_days())})")
        names, pct = _load_builtin(day)
        return list(names), pct
    path = Path(source)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return read_planetlab_folder(path)


def apply_order(names: list[str], pct: np.ndarray, order_file: Path) -> tuple[list[str], np.ndarray]:
    """The day's traces in the order a list file names them (one trace file name per line; blank lines and
    lines starting with # are skipped), e.g. the listing order of the folder CloudSim read (`ls -U`, as Java's
    File.listFiles returns it), so a comparison gives each VM the same trace and type. Traces it does not name
    are left out; a name the day lacks or a repeated one is an error."""
    why = not_a_regular_file(order_file)
    if why is not None:
        raise TraceError(str(order_file), f"trace order file {why}")
    if order_file.stat().st_size > MAX_FILE_BYTES:
        raise TraceError(str(order_file), f"too large for a trace order file (expected at most {MAX_FILE_BYTES:,} "
                         "bytes: one trace file name per line)")
    try:
        lines = order_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise TraceError(str(order_file), "not a text file (expected one trace file name per line)") from None
    index = {nm: k for k, nm in enumerate(names)}
    rows, seen = [], {}
    for i, line in enumerate(lines, start=1):
        nm = line.strip()
        if not nm or nm.startswith("#"):
            continue
        nm = Path(nm).name  # `ls -U` of a folder, or a listing with the folder in front
        if nm not in index:
            raise TraceError(str(order_file), f"no such trace in the day (got {short(nm)}, expected a file name "
                             f"such as {names[0]})", row=i)
        if nm in seen:
            raise TraceError(str(order_file), f"trace named twice (got {short(nm)}, also on row {seen[nm]})", row=i)
        seen[nm] = i
        rows.append(index[nm])
    if not rows:
        raise TraceError(str(order_file), "names no trace (expected one trace file name per line)")
    return [names[k] for k in rows], pct[rows]


def read_group(i: int, g: VmGroup, sc: Scenario, gen: np.random.Generator) -> GroupTraces:
    """Every VM of the day, in file-name order (or the group's `order` file's), as a fraction 0..1 per scenario
    interval."""
    src = g.trace
    names, pct = load_planetlab(src.planetlab, sc.base_dir)
    if src.order is not None:
        names, pct = apply_order(names, pct, sc.base_dir / src.order)  # an absolute path stays itself
    labels = [f"{src.planetlab}/{nm}" for nm in names]
    # divided in float32, as the published results were: on a coarser grid the averages carry this rounding
    util = fit_to_grid(pct.astype(np.float32) / 100.0, INTERVAL_S, 0.0, sc, src.repeat, src.planetlab)
    return GroupTraces(names, labels, util, {})


register("planetlab", read_group)
