"""Traces named by an fsspec URL (`s3://bucket/azure/`, `gcs://...`, `https://...`, a chained
`zip://traces::file:///srv/traces.zip`): copied to a local folder before the readers run, then removed.

The readers read local files in chunks (pyarrow, pandas, numpy) and rely on listing folders and seeking, so a
URL is fetched whole to disk first, streamed by fsspec (never held in memory), rather than read through a file
object per reader. Each worker of a partitioned run fetches its own copy, so a cluster's workers need the URL's
credentials and network, not a shared filesystem (docs/partitions.md). A protocol whose fsspec driver is not
installed (s3fs, gcsfs, adlfs, aiohttp for https) is refused with one line naming it.
"""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from consolidate.errors import Problem, ScenarioError, TraceError
from consolidate.scenario.model import Scenario
from consolidate.workload import sources
from consolidate.workload.planetlab import BUILTIN_PREFIX

# Most a fetch may leave the disk holding: the copy must leave this much free (bytes), so a URL larger than
# the disk fails before it fills it.
DISK_RESERVE_BYTES = 1 * 2**30


def trace_paths(sc: Scenario) -> list[tuple[int, str, str]]:
    """(group index, TraceSource field, path as written) of every trace file, folder or URL the scenario reads."""
    out = []
    for i, g in enumerate(sc.vms):
        kind = sources.kind_of(g.trace)
        value = getattr(g.trace, kind)
        if isinstance(value, str) and not value.startswith(BUILTIN_PREFIX):
            out.append((i, kind, value))
        if g.trace.order is not None:
            out.append((i, "order", g.trace.order))
    return out


def is_url(value: str) -> bool:
    """Whether a trace path is an fsspec URL (`protocol://...`, or chained with `::`); `file://` counts too."""
    return "://" in value or "::" in value


def _fetch(url: str, dest: Path) -> Path:
    """Copy the file or folder at `url` to `dest` (a new path); returns the local path. Raises OSError,
    ImportError or ValueError as fsspec does."""
    from fsspec.core import url_to_fs  # imported by runs that name a URL only

    fs, path = url_to_fs(url)
    info = fs.info(path)
    folder = info.get("type") == "directory"
    size = fs.du(path) if folder else int(info.get("size") or 0)
    free = shutil.disk_usage(dest.parent).free
    if size > free - DISK_RESERVE_BYTES:
        raise OSError(f"{size / 2**20:,.0f} MiB to fetch but {free / 2**20:,.0f} MiB free at {dest.parent} (expected "
                      f"at least {DISK_RESERVE_BYTES // 2**20} MiB to remain free)")
    if folder:
        dest.mkdir()
        # the folder's contents, not the folder inside dest (fsspec's rule for a trailing slash)
        fs.get(path.rstrip("/") + "/", str(dest) + "/", recursive=True)
    else:
        fs.get(path, str(dest))
    return dest


def _why(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextmanager
def fetched(value: str, tmp_dir: Path | None = None) -> Iterator[Path]:
    """A local path to read trace `value` from: the path itself, or for a URL a copy in a temporary folder under
    tmp_dir, removed on leaving. Raises TraceError naming the URL when it cannot be fetched."""
    if not is_url(value):
        yield Path(value)
        return
    folder = Path(tempfile.mkdtemp(prefix="consolidate-fetch-", dir=tmp_dir))
    try:
        try:
            local = _fetch(value, folder / "t0")
        except (OSError, ImportError, ValueError) as exc:
            raise TraceError(value, f"cannot fetch: {_why(exc)} (expected a file or folder fsspec can read, with "
                             "its protocol's driver installed)") from None
        try:
            yield local
        except TraceError as exc:  # name the URL, not the copy
            raise TraceError(exc.file.replace(str(local), value.rstrip("/")),
                             exc.message.replace(str(local), value.rstrip("/")), exc.row) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def local_traces(sc: Scenario, tmp_dir: Path | None = None) -> Iterator[tuple[Scenario, Callable[[str], str]]]:
    """(sc with every URL trace path replaced by a local copy, a function turning a text that names a copy back
    into one naming its URL). Without URLs: (sc itself, the identity), and nothing is copied. The copies live in
    a temporary folder under `tmp_dir` (default: the system's) that is removed on leaving. Raises ScenarioError
    naming the field of every URL that cannot be fetched."""
    urls = [(i, field, value) for i, field, value in trace_paths(sc) if is_url(value)]
    if not urls:
        yield sc, lambda text: text
        return
    folder = Path(tempfile.mkdtemp(prefix="consolidate-fetch-", dir=tmp_dir))
    try:
        local = sc.model_copy(deep=True).set_origin(sc.file, sc.base_dir)
        copies: dict[str, str] = {}
        problems = []
        for i, field, url in urls:
            if url not in copies:
                try:
                    copies[url] = str(_fetch(url, folder / f"t{len(copies)}"))
                except (OSError, ImportError, ValueError) as exc:
                    problems.append(Problem(sc.file, f"vms.{i}.trace.{field}",
                                            f"cannot fetch {url}: {_why(exc)} (expected a file or folder fsspec can read, "
                                            "with its protocol's driver installed)"))
                    continue
            setattr(local.vms[i].trace, field, copies[url])
        if problems:
            raise ScenarioError(problems)

        def back(text: str) -> str:
            for url, path in copies.items():
                text = text.replace(path, url.rstrip("/"))
            return text

        yield local, back
    finally:
        shutil.rmtree(folder, ignore_errors=True)
