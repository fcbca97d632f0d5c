"""What the readers of two-table traces (a VM table and a usage table joined by a key: Azure, Alibaba) share:
published CSV files (gzip or plain, no header row) read in chunks, numeric columns checked with the row named,
and a usage table's rows gathered per selected VM, mismatched keys counted."""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from consolidate.errors import TraceError, cut, not_a_regular_file


def has_layout(path: Path, files) -> bool:
    """Whether `path` is a folder in which `files(folder)` (a reader's file finder, raising TraceError when the
    layout's files are missing) finds its layout."""
    try:
        return path.is_dir() and bool(files(path))
    except TraceError:
        return False

CHUNK_ROWS = 1 << 20
BLOCK_BYTES = 16 << 20  # pyarrow's read block: memory stays a few blocks whatever the file's size
MAX_UNKNOWN_KEYS = 1_000_000  # distinct unmatched keys remembered for the count (bounded memory)


def _stream(path: Path):
    """The file's bytes, gunzipped if it starts with the gzip magic; TraceError if it is not a regular text file."""
    why = not_a_regular_file(path)
    if why is not None:
        raise TraceError(str(path), f"trace file {why}")
    with path.open("rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if gz else path.open("rb")) as f:
            if b"\0" in f.read(4096):
                raise TraceError(str(path), "not a text file (got NUL bytes, expected comma-separated CSV)")
    except (OSError, EOFError) as exc:
        raise TraceError(str(path), f"cannot be read as the published CSV ({cut(str(exc), 200)})") from None
    return pa.input_stream(str(path), compression="gzip" if gz else None), gz


def _slow_chunks(path: Path, names: tuple[str, ...], usecols: list[str], chunk_rows: int):
    """The file's rows as strings (pandas), for finding the row a fast read refused."""
    _, gz = _stream(path)
    try:
        yield from pd.read_csv(path, header=None, names=list(names), usecols=usecols, dtype=str, chunksize=chunk_rows,
                               compression="gzip" if gz else None)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError, EOFError) as exc:
        raise TraceError(str(path), f"cannot be read as the published CSV ({cut(str(exc), 200)}; expected "
                         f"{len(names)} columns: {', '.join(names)})") from None


def csv_chunks(path: Path, names: tuple[str, ...], usecols: list[str], numeric: tuple[str, ...] = (),
               chunk_rows: int = CHUNK_ROWS):
    """The file's `usecols` in chunks (DataFrames; `numeric` columns as float64, empty cells NaN, the rest as
    strings), read by pyarrow's streaming CSV reader. On a value it cannot convert the file is scanned again as
    strings so that the TraceError names the row and the column."""
    stream, _ = _stream(path)
    types = {c: (pa.float64() if c in numeric else pa.string()) for c in usecols}
    try:
        reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(column_names=list(names),
                                                                       block_size=BLOCK_BYTES),
                                convert_options=pacsv.ConvertOptions(include_columns=usecols, column_types=types))
        pending, have = [], 0
        for batch in reader:
            pending.append(batch)
            have += batch.num_rows
            if have >= chunk_rows:
                yield pa.Table.from_batches(pending).to_pandas()
                pending, have = [], 0
        if pending:
            yield pa.Table.from_batches(pending).to_pandas()
    except (pa.ArrowInvalid, pa.ArrowException, UnicodeDecodeError, OSError, EOFError) as exc:
        # find the row: the same checks on the strings (numbers() raises naming it)
        rows = 0
        for chunk in _slow_chunks(path, names, usecols, chunk_rows):
            for c in numeric:
                numbers(chunk, c, path, rows, missing_ok=True)
            rows += len(chunk)
        raise TraceError(str(path), f"cannot be read as the published CSV ({cut(str(exc), 200)}; expected "
                         f"{len(names)} columns: {', '.join(names)})") from None


def numbers(chunk: pd.DataFrame, col: str, path: Path, row0: int, bucket: bool = False,
            missing_ok: bool = False) -> tuple[np.ndarray, int]:
    """A column as float64 (a bucket's `>N` as N, counted; with `missing_ok` an empty cell is NaN); TraceError
    naming the first bad row."""
    if chunk[col].dtype.kind == "f":  # read as numbers already: an empty cell is NaN
        v = chunk[col].to_numpy(np.float64)
        bad = (~np.isfinite(v) & ~missing_ok) | (v < 0)
        capped = np.zeros(0)
    else:
        s = chunk[col].str.strip()
        capped = s.str.startswith(">", na=False)
        v = pd.to_numeric(s.str.lstrip(">") if bucket else s, errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(v) | (v < 0)
        if missing_ok:
            bad &= s.notna().to_numpy() & (s != "").to_numpy()
    bad = np.flatnonzero(bad)
    if bad.size:
        raise TraceError(str(path), f"{col}: missing, negative or not a number (got "
                         f"{cut(repr(chunk[col].iloc[bad[0]]), 60)})", row=row0 + int(bad[0]) + 1)
    return v, int(capped.sum())


@dataclass
class Gathered:
    """Per selected VM: its usage rows (time, values..., 1-based row) sorted by time, or None; and the join's
    mismatch counts."""

    rows: list[np.ndarray | None]
    n_rows: int
    unknown_rows: int
    unknown_keys: int

    def join_note(self) -> str:
        silent = sum(r is None for r in self.rows)
        return (f"{self.unknown_rows:,} of {self.n_rows:,} usage rows name {self.unknown_keys:,} VMs the VM table "
                f"does not list; {silent:,} of the {len(self.rows):,} selected VMs of the table have no usage row")


def gather(files: list[Path], names: tuple[str, ...], key: str, time: str, values: tuple[str, ...],
           index: dict[str, int], keep: np.ndarray, n_keys: int) -> Gathered:
    """Read the usage files in chunks and keep, for each VM of `keep` (indices into the table, whose keys map to
    indices by `index`), its rows' time and `values` (empty cells NaN)."""
    lookup = pd.Index(list(index), dtype=object)  # keys in their table order: position = index[key]
    slot = np.full(n_keys, -1, dtype=np.int64)
    slot[keep] = np.arange(len(keep))
    parts: list[list[np.ndarray]] = [[] for _ in keep]
    unknown, unknown_keys, n_rows = 0, set(), 0
    for path in files:
        rows = 0
        for chunk in csv_chunks(path, names, [key, time, *values], numeric=(time, *values)):
            cols = [numbers(chunk, time, path, rows)[0]] + [numbers(chunk, c, path, rows, missing_ok=True)[0]
                                                            for c in values]
            k_s = chunk[key]
            jj = lookup.get_indexer(k_s)  # a C hash lookup: a dict per row costs more than the parsing
            miss = jj < 0
            if miss.any():
                unknown += int(miss.sum())
                if len(unknown_keys) < MAX_UNKNOWN_KEYS:
                    unknown_keys.update(k_s[miss].unique().tolist())
            k = np.where(jj >= 0, slot[np.maximum(jj, 0)], -1)
            sel = k >= 0
            n_rows += len(chunk)
            if sel.any():
                order = np.argsort(k[sel], kind="stable")
                a = np.column_stack([k[sel]] + [c[sel] for c in cols] + [rows + 1 + np.flatnonzero(sel)])[order]
                for piece in np.split(a, np.flatnonzero(np.diff(a[:, 0])) + 1):
                    parts[int(piece[0, 0])].append(piece[:, 1:])
            rows += len(chunk)
    out: list[np.ndarray | None] = []
    for p in parts:
        if not p:
            out.append(None)
            continue
        a = np.vstack(p)
        out.append(a[np.argsort(a[:, 0], kind="stable")])
    return Gathered(out, n_rows, unknown, len(unknown_keys))
