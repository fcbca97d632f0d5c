"""Write a run's frames to disk: Parquet always, CSV on request, and the resolved scenario. The HTML report is
the report layer's (report/html.py), which reads these results.

A run folder appears whole or not at all: everything is written into a hidden temporary folder beside the
destination, a `run.json` manifest (version, scenario hash, seed, start and end, every file with its size) goes
in last, and one rename puts the folder in place. Ctrl-C, kill -9 or a full disk leave at most a hidden
`.NAME.partial-*` folder without a manifest, never a folder that looks complete.

A big run's vm_intervals is written while the run goes (ParquetSpool) into a hidden `.consolidate-spool-*`
folder (under the destination's parent when the CLI knows it, else the system's temporary folder), removed when
its Results are; writing the run folder links (or copies) that file in rather than reading it.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
import uuid
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pa_parquet
import yaml

from consolidate.errors import OutputError, Problem

if TYPE_CHECKING:
    from consolidate.results.frames import Results


def write_csv(table: pa.Table, path: Path) -> None:
    """CSV through pyarrow: about 8x faster than pandas on the 300k-row frames of a PlanetLab day."""
    # categorical columns (host_type, state) become plain strings: CSV has no dictionary type
    plain = pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in table.schema])
    pa_csv.write_csv(table.cast(plain), path, pa_csv.WriteOptions(quoting_style="needed"))


def _text_columns(schema: pa.Schema) -> list[str] | bool:
    """The columns Parquet should dictionary-encode: only text ones (trying it on millions of distinct floats
    costs seconds and saves nothing: the 100k-VM day writes 29 M rows)."""
    text = [f.name for f in schema if pa.types.is_dictionary(f.type) or pa.types.is_string(f.type)
            or pa.types.is_large_string(f.type)]
    return text or False


class ParquetSpool:
    """One frame written to Parquet a piece at a time (one row group per `write`), in a new hidden folder under
    `parent` (None: the system's temporary folder) that is removed when this object is garbage-collected; a
    killed process leaves only that folder, which has no manifest and does not look like a run."""

    def __init__(self, parent: Path | None, stem: str):
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix=".consolidate-spool-", dir=parent))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.path = self.folder / f"{stem}.parquet"
        self._writer: pa_parquet.ParquetWriter | None = None

    def write(self, df: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(df, preserve_index=False)
        if self._writer is None:
            self._writer = pa_parquet.ParquetWriter(self.path, table.schema, use_dictionary=_text_columns(table.schema))
        self._writer.write_table(table, row_group_size=max(len(table), 1))

    def close(self) -> Path:
        """Finish the file and return its path."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.path


def parquet_shape(path: Path) -> tuple[int, int]:
    """(rows, columns) of a Parquet file, from its metadata."""
    meta = pa_parquet.ParquetFile(path).metadata
    return meta.num_rows, meta.num_columns


def parquet_pieces(path: Path, columns: list[str] | None = None):
    """The frame in Parquet file `path` (its `columns`, None: all), a row group at a time."""
    f = pa_parquet.ParquetFile(path)
    for i in range(f.num_row_groups):
        yield f.read_row_group(i, columns=columns).to_pandas()


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)  # same filesystem: no copy, and the spool stays readable until its Results go
    except OSError:
        shutil.copyfile(src, dest)


def _write_csv_from_parquet(src: Path, dest: Path) -> None:
    """CSV of a Parquet file, row group by row group (never the whole frame in memory)."""
    pf = pa_parquet.ParquetFile(src)
    plain = pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                       for f in pf.schema_arrow])
    with pa_csv.CSVWriter(dest, plain, write_options=pa_csv.WriteOptions(quoting_style="needed")) as out:
        for i in range(pf.num_row_groups):
            out.write_table(pf.read_row_group(i).cast(plain))


def write_results(res: "Results", out_dir: Path, *, csv: bool | None = None) -> Path:
    """Write the frames of `res` its scenario's `outputs:` chooses under `out_dir` (created), with CSV when `csv`
    (None: as outputs.csv, else only for runs of at most BIG_RUN_VM_INTERVALS VM-intervals); returns the folder."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = res.csv_default if csv is None else csv
    for stem in res.written_names():
        if stem in res.spooled:  # written while the run went: taken over as it is
            _link_or_copy(res.spooled[stem], out_dir / f"{stem}.parquet")
            if csv:
                _write_csv_from_parquet(res.spooled[stem], out_dir / f"{stem}.csv")
            continue
        table = pa.Table.from_pandas(getattr(res, stem), preserve_index=False)
        pa_parquet.write_table(table, out_dir / f"{stem}.parquet", use_dictionary=_text_columns(table.schema))
        if csv:
            write_csv(table, out_dir / f"{stem}.csv")
    # the scenario as validated, defaults filled in: what was really run
    (out_dir / "scenario.resolved.yaml").write_text(
        f"# resolved from {res.scenario.file}\n" + yaml.safe_dump(res.scenario.model_dump(mode="json"), sort_keys=False))
    return out_dir


MANIFEST = "run.json"


def _out_problem(dest: Path, message: str) -> OutputError:
    return OutputError([Problem(str(dest), "", message)])


def check_destination(dest: Path, *, force: bool = False) -> None:
    """Refuse, before any simulating, an output folder that cannot take this run: one that holds files (another
    run's, unless `force` replaces it), a file in the way, or a parent that cannot be written. Creates the
    parent folders. Raises OutputError."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise _out_problem(dest, "exists and is not a folder (expected a new or empty folder)")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        what = "another run" if (dest / MANIFEST).exists() else "other files"
        raise _out_problem(dest, f"holds {what} (expected a new or empty folder; --force replaces it, or leave "
                           "--out out to get a new folder per run)")
    blocker = next((a for a in dest.parents if a.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise _out_problem(dest, f"cannot be written ({blocker} is a file, expected a folder)")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        probe = dest.parent / f".{dest.name}.probe-{uuid.uuid4().hex[:8]}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise _out_problem(dest, f"cannot be written ({exc.strerror or exc})") from None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_manifest(folder: Path, info: dict) -> Path:
    """`run.json`: `info` (identity, status, times) and every file under `folder` with its size in bytes."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {**info, "files": {p.relative_to(folder).as_posix(): p.stat().st_size for p in files}}
    path = folder / MANIFEST
    path.write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    return path


def _move_into_place(tmp: Path, dest: Path, force: bool) -> None:
    try:
        os.rename(tmp, dest)  # atomic; takes the place of a missing or empty folder only
        return
    except OSError:
        if not (force and dest.is_dir()):
            raise _out_problem(dest, "was filled by someone else while this run was written (expected a new or "
                               f"empty folder; the results are kept in {tmp})") from None
    old = dest.parent / f".{dest.name}.replaced-{uuid.uuid4().hex[:8]}"
    os.rename(dest, old)
    os.rename(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)


def write_run_folder(res: "Results", dest: Path, *, csv: bool | None = None, force: bool = False,
                     extra: Callable[[Path], object] | None = None, started_at: str | None = None) -> Path:
    """Write `res` (and whatever `extra(folder)` adds, e.g. the report) into a temporary folder beside `dest`,
    then the manifest, then rename it to `dest`. Returns `dest`. Raises OutputError or OSError; on any failure,
    interruption included, the temporary folder is removed."""
    dest = Path(dest)
    check_destination(dest, force=force)
    tmp = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write_results(res, tmp, csv=csv)
        if extra is not None:
            extra(tmp)
        row = res.summary.iloc[0]
        write_manifest(tmp, {"status": "complete", "run_id": res.run_id, "scenario": res.scenario.name,
                             "scenario_file": res.scenario.file, "scenario_sha256": row.get("scenario_sha256"),
                             "seed": int(res.scenario.seed), "consolidate_version": row.get("consolidate_version"),
                             "started_at": started_at or getattr(res, "started_at", None) or _now(),
                             "ended_at": _now(),
                             # what was written (rows per frame) and what a full run would hold that this does not
                             "frames": {k: res.frame_shape(k)[0] for k in res.written_names()},
                             "vm_intervals": res.vm_intervals_detail, "left_out": res.left_out})
        _move_into_place(tmp, dest, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
