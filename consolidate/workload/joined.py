"""What the readers of two-table traces (a VM table and a usage table joined by a key: Azure, Alibaba, Google)
share: published CSV files (gzip or plain, no header row) read in chunks, numeric columns checked with the row
named, and a usage table's rows gathered per selected VM, mismatched keys counted, and handed out one VM at a time
so that memory holds the run grid and one range of VMs' rows, not the trace."""
from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from consolidate.errors import TraceError, cut, not_a_regular_file
from consolidate.scenario.model import Scenario, TraceSource
from consolidate.workload.sources import GroupTraces, from_grid
from consolidate.workload.timeline import to_grid


def trace_folder(value: str, sc: Scenario, expected: str) -> Path:
    """The folder a group's trace names (relative to the scenario's folder); a TraceError saying what it should
    hold (`expected`) unless it is one."""
    folder = Path(value)
    if not folder.is_absolute():
        folder = sc.base_dir / folder
    if not folder.is_dir():
        raise TraceError(str(folder), f"expected a folder holding {expected}")
    return folder


def on_grid(folder: Path, series, warnings: list[str], sc: Scenario, src: TraceSource) -> GroupTraces:
    """A two-table trace's Series on the run grid, the join's warnings first."""
    grid = to_grid(series, sc, src, str(folder))
    grid.warnings[:0] = warnings
    return from_grid(grid, [str(folder)] * len(grid.names))


def has_layout(path: Path, files) -> bool:
    """Whether `path` is a folder in which `files(folder)` (a reader's file finder, raising TraceError when the
    layout's files are missing) finds its layout."""
    try:
        return path.is_dir() and bool(files(path))
    except TraceError:
        return False

CHUNK_ROWS = 1 << 18  # rows handled at once: each costs ~100 bytes of arrays in flight
BLOCK_BYTES = 1 << 20  # pyarrow's read block: its reader reads ~20-40 blocks ahead, so memory grows with the block
MAX_UNKNOWN_KEYS = 1_000_000  # distinct unmatched keys remembered for the count (bounded memory)
# Gathered rows are parked per range of VMs: above BUCKET_BYTES of them (estimated from the files' sizes) the
# ranges go to temporary files (TMPDIR), about 8 bytes per number against 30+ bytes of CSV per row
BUCKET_BYTES = 64 << 20
ROW_BYTES_MIN = 30  # the shortest usage row of the published layouts, in CSV bytes (an estimate's floor)
GZIP_RATIO = 8  # a gzip file's CSV is taken as this many times its size (trace CSV compresses 4-8x)
MAX_BUCKETS = 512


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


def tables(reader, rows: int):
    """The record batches of a pyarrow stream reader as tables of about `rows` rows (at least, but the last)."""
    pending, have = [], 0
    for batch in reader:
        pending.append(batch)
        have += batch.num_rows
        if have >= rows:
            yield pa.Table.from_batches(pending)
            pending, have = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def csv_chunks(path: Path, names: tuple[str, ...], usecols: list[str], numeric: tuple[str, ...] = (),
               chunk_rows: int = CHUNK_ROWS, raw: bool = False):
    """The file's `usecols` in chunks (DataFrames, or pyarrow Tables with `raw`; `numeric` columns as float64,
    empty cells NaN, the rest as strings), read by pyarrow's streaming CSV reader. On a value it cannot convert
    the file is scanned again as strings so that the TraceError names the row and the column."""
    convert = (lambda t: t) if raw else (lambda t: t.to_pandas())  # noqa: E731
    stream, _ = _stream(path)
    types = {c: (pa.float64() if c in numeric else pa.string()) for c in usecols}
    try:
        reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(column_names=list(names),
                                                                       block_size=BLOCK_BYTES),
                                convert_options=pacsv.ConvertOptions(include_columns=usecols, column_types=types))
        for table in tables(reader, chunk_rows):
            yield convert(table)
    except (pa.ArrowInvalid, pa.ArrowException, UnicodeDecodeError, OSError, EOFError) as exc:
        # find the row: the same checks on the strings (numbers() raises naming it)
        rows = 0
        for chunk in _slow_chunks(path, names, usecols, chunk_rows):
            for c in numeric:
                numbers(chunk, c, path, rows, missing_ok=True)
            rows += len(chunk)
        raise TraceError(str(path), f"cannot be read as the published CSV ({cut(str(exc), 200)}; expected "
                         f"{len(names)} columns: {', '.join(names)})") from None


def numbers(chunk, col: str, path: Path, row0: int, bucket: bool = False,
            missing_ok: bool = False) -> tuple[np.ndarray, int]:
    """A column of a DataFrame (or a dict of float64 arrays) as float64 (a bucket's `>N` as N, counted; with `missing_ok` an empty cell is NaN); TraceError
    naming the first bad row."""
    if chunk[col].dtype.kind == "f":  # read as numbers already: an empty cell is NaN
        v = np.asarray(chunk[col], dtype=np.float64)
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


class Gathered:
    """The usage rows of the selected VMs, held per VM range (a bucket) in memory or, for a large input, in
    temporary files, and the join's mismatch counts. `series(make)` hands out one VM at a time (in the
    selection's order) so that no more than one bucket of rows is in memory."""

    def __init__(self, n_selected: int, per_bucket: int, stores: list, has: np.ndarray, n_cols: int,
                 n_rows: int, unknown_rows: int, unknown_keys: int, tmp: tempfile.TemporaryDirectory | None):
        self.n_selected, self.per_bucket, self._stores, self.has = n_selected, per_bucket, stores, has
        self._cols, self.n_rows, self.unknown_rows, self.unknown_keys, self._tmp = (n_cols, n_rows, unknown_rows,
                                                                                     unknown_keys, tmp)

    @property
    def n_with_rows(self) -> int:
        """How many selected VMs have at least one usage row."""
        return int(self.has.sum())

    def join_note(self) -> str:
        silent = self.n_selected - self.n_with_rows
        return (f"{self.unknown_rows:,} of {self.n_rows:,} usage rows name {self.unknown_keys:,} VMs the VM table "
                f"does not list; {silent:,} of the {self.n_selected:,} selected VMs of the table have no usage row")

    def per_vm(self):
        """(position in the selection, rows as (time, values..., 1-based row) sorted by time, equal times in file
        order) for every selected VM with rows, in the selection's order; a bucket is read, used and dropped."""
        try:
            for b, store in enumerate(self._stores):
                if isinstance(store, Path):
                    if not store.exists():  # no selected VM of this range had a row
                        continue
                    a = np.fromfile(store, dtype=np.float64).reshape(-1, self._cols)
                    store.unlink()
                else:
                    a = np.vstack(store) if store else np.zeros((0, self._cols))
                    self._stores[b] = []
                if not len(a):
                    continue
                # by VM (stable: file order within a VM), then by time within a VM only where the file was not
                # in time order (an export's shards need not be); equal times keep file order
                a = a[np.argsort(a[:, 0].astype(np.int64), kind="stable")]
                cut_at = np.flatnonzero(np.diff(a[:, 0])) + 1
                for lo, hi in zip(np.r_[0, cut_at], np.r_[cut_at, len(a)]):
                    piece = a[lo:hi]
                    if np.any(piece[1:, 1] < piece[:-1, 1]):
                        piece = piece[np.argsort(piece[:, 1], kind="stable")]
                    yield int(piece[0, 0]), piece[:, 1:]
                del a
        finally:
            self.close()

    def close(self) -> None:
        """Remove the temporary files (also done when per_vm() ends)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class Selected:
    """The Series of the selected VMs that have usage rows, made one at a time from a Gathered (sized: len is the
    count of VMs with rows, so to_grid can allocate the grid once)."""

    def __init__(self, got: Gathered, make):
        self._got, self._make = got, make

    def __len__(self) -> int:
        return self._got.n_with_rows

    def __iter__(self):
        for pos, rows in self._got.per_vm():
            s = self._make(pos, rows)
            if s is not None:
                yield s


def _buckets(files: list[Path], n_keep: int, n_cols: int) -> int:
    """How many VM ranges the rows are held in: one unless the input's rows (estimated from the files' sizes, at
    least ROW_BYTES_MIN bytes of CSV per row, gzip x GZIP_RATIO) would take more than BUCKET_BYTES."""
    size = 0
    for p in files:
        try:
            with p.open("rb") as f:
                gz = f.read(2) == b"\x1f\x8b"
            size += p.stat().st_size * (GZIP_RATIO if gz else 1)
        except OSError:
            continue
    rows_bytes = size / ROW_BYTES_MIN * 8 * n_cols
    return int(min(max(1, np.ceil(rows_bytes / BUCKET_BYTES)), max(n_keep, 1), MAX_BUCKETS))


def gather(files: list[Path], names: tuple[str, ...], key: str, time: str, values: tuple[str, ...],
           index: dict[str, int], keep: np.ndarray, n_keys: int, chunks=None, locate=None,
           buckets: int | None = None) -> Gathered:
    """Read the usage files in chunks and keep, for each VM of `keep` (indices into the table, whose keys map to
    indices by `index`), its rows' time and `values` (empty cells NaN). Rows are parked per range of VMs (in
    memory, or in temporary files when the input is large; `buckets` overrides the count) so that reading them
    back one range at a time bounds memory by a range, not the input.

    `chunks(path)` (default: csv_chunks of `names`) yields DataFrames with the `key`, `time` and `values` columns;
    `locate(chunk)` (default: `key` looked up in `index`) gives each row's table index or -1, and a function of a
    row mask giving those rows' distinct keys (for the mismatch count)."""
    # keys in their table order (position = index[key]), matched by Arrow's hash lookup on the Arrow column: no
    # Python string per row
    lookup = pa.array(list(index), type=pa.string()) if locate is None else None
    slot = np.full(n_keys, -1, dtype=np.int64)
    slot[keep] = np.arange(len(keep))
    n_cols = 3 + len(values)  # position, time, values..., row
    n_b = buckets or _buckets(files, len(keep), n_cols)
    per_bucket = max(1, -(-len(keep) // n_b))
    tmp = tempfile.TemporaryDirectory(prefix="consolidate-gather-") if n_b > 1 else None
    stores: list = ([Path(tmp.name) / f"{b}.f64" for b in range(n_b)] if tmp is not None else [[]])
    has = np.zeros(len(keep), dtype=bool)
    unknown, unknown_keys, n_rows = 0, set(), 0
    try:
        for path in files:
            rows = 0
            it = chunks(path) if chunks is not None else csv_chunks(path, names, [key, time, *values],
                                                                    numeric=(time, *values), raw=True)
            for chunk in it:
                if locate is None:  # a raw pyarrow Table
                    k_s = chunk.column(key)
                    jj = pc.index_in(k_s, value_set=lookup).fill_null(-1).to_numpy().astype(np.int64)
                    missing = lambda m, k_s=k_s: pc.unique(pc.filter(k_s, pa.array(m))).to_pylist()  # noqa: E731
                    chunk = {c: chunk.column(c).to_numpy() for c in (time, *values)}  # float64, NaN where empty
                else:
                    jj, missing = locate(chunk)
                cols = [numbers(chunk, time, path, rows)[0]] + [numbers(chunk, c, path, rows, missing_ok=True)[0]
                                                                for c in values]
                miss = jj < 0
                if miss.any():
                    unknown += int(miss.sum())
                    if len(unknown_keys) < MAX_UNKNOWN_KEYS:
                        unknown_keys.update(missing(miss))
                k = np.where(jj >= 0, slot[np.maximum(jj, 0)], -1)
                sel = k >= 0
                n_rows += len(jj)
                if sel.any():
                    ks = k[sel]
                    has[ks] = True
                    a = np.column_stack([ks] + [c[sel] for c in cols] + [rows + 1 + np.flatnonzero(sel)])
                    if tmp is None:
                        stores[0].append(a)
                    else:
                        a = a[np.argsort(ks // per_bucket, kind="stable")]
                        bounds = np.searchsorted(a[:, 0] // per_bucket, np.arange(n_b + 1), side="left")
                        for b in np.flatnonzero(np.diff(bounds)):
                            with stores[b].open("ab") as f:
                                a[bounds[b]:bounds[b + 1]].tofile(f)
                rows += len(jj)
    except BaseException:
        if tmp is not None:
            tmp.cleanup()
        raise
    return Gathered(len(keep), per_bucket, stores, has, n_cols, n_rows, unknown, len(unknown_keys), tmp)
