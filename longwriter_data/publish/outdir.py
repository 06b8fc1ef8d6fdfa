"""The folders export writes: which existing folder it may replace (only one it made itself), the marker that says
so and records the settings it was written with, and the staging folders it writes into first.

A marker names every file the export wrote; a folder is replaced only if it holds nothing else, so a user's file
put inside an export is never deleted. Exports from before the marker are recognised by their recipe.json and
their exact layout. No `datasets` import here: a build checks its output folder before it starts.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from ..errors import DiskFull, UserError

MARKER = ".longwriter-export.json"
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
_OWNER = "owner.json"  # inside a staging folder: the pid and host of the export writing it
# What an export wrote before it left a marker (save_to_disk's split folders, Parquet shards, card, recipe).
_LEGACY_LAYOUT = ("README.md", "README.md.tmp", "recipe.json", "length_histogram.png", "dataset_dict.json",
                  "data/*.parquet", "*/data-*.arrow", "*/dataset_info.json", "*/state.json")


@dataclass(frozen=True)
class ExportSettings:
    """What an export was written with: a build re-exports with the settings of the folder's last export."""

    format: str = "messages"
    test_size: float = 0.0

    def describe(self) -> str:
        return self.format + (f", test split {self.test_size:g}" if self.test_size else "")


def _files(folder: Path) -> Iterator[str]:
    """Relative paths of everything under `folder` that is not a directory (links included, never followed)."""
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            yield (base / name).as_posix()


def _marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), list) else None


def _legacy(folder: Path) -> bool:
    """An export written before the marker existed: its recipe.json says longwriter-data wrote it."""
    try:
        recipe = json.loads((folder / "recipe.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(recipe, dict) and str(recipe.get("generator", "")).startswith("longwriter-data")


def written_by_export(folder: Path) -> bool:
    """True for a folder an export wrote (push rewrites its card; no other folder's README.md is touched)."""
    return _marker(folder) is not None or _legacy(folder)


def _foreign_file(folder: Path) -> str | None:
    """The first file in `folder` that its export did not write, or None when it holds only the export's files."""
    marker = _marker(folder)
    if marker is not None:
        known = {*map(str, marker["files"]), MARKER}
        known |= {f"{name}.tmp" for name in known}  # write_atomic's, left by a push killed re-rendering the card
        return next((name for name in _files(folder) if name not in known), None)
    if not _legacy(folder):
        return next(_files(folder), None)
    return next((name for name in _files(folder) if not any(fnmatch(name, p) for p in _LEGACY_LAYOUT)), None)


def check_replaceable(out: Path, run_dir: Path) -> None:
    """Refuse (exit 2, nothing touched) an output folder that export may not replace: anything but a new or empty
    folder or one that an export made and that holds only what it wrote."""
    out, run_dir = out.resolve(), run_dir.resolve()
    if run_dir.is_relative_to(out):
        what = "is the run directory" if run_dir == out else f"holds the run directory {run_dir}"
        raise UserError(f"{out} {what}: export writes only to a folder of its own; pass another --out "
                        "(the default is RUN_DIR/dataset).")
    if Path.cwd().resolve().is_relative_to(out):
        raise UserError(f"{out} is the current directory or one above it: export replaces its output folder whole; "
                        "pass a new folder as --out.")
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a folder: export writes a folder; pass a new folder as --out.")
    if out.is_symlink():
        raise UserError(f"{out} is a link: export replaces its output folder whole; pass a new folder as --out.")
    foreign = _foreign_file(out)
    if foreign is not None:
        what = "holds a file its export did not write" if written_by_export(out) else "was not written by export"
        raise UserError(f"{out} {what} ({foreign}); export replaces only a folder it made itself: move that "
                        "aside or pass another --out.")


def exported_from_bytes(out: Path) -> int | None:
    """The size of jobs.jsonl when the export in `out` was made (None: unknown)."""
    marker = _marker(out)
    value = marker.get("run_bytes") if marker is not None else None
    return value if isinstance(value, int) else None


def previous_settings(out: Path) -> ExportSettings | None:
    """The settings of the export in `out` (defaults when there is none); None when they are not known (an export
    written before the marker, with a test split; a marker edited by hand)."""
    marker = _marker(out)
    if marker is not None:
        fmt, test_size = marker.get("format"), marker.get("test_size")
        if not isinstance(fmt, str) or not isinstance(test_size, (int, float)) or not 0 <= test_size < 1:
            return None
        return ExportSettings(fmt, float(test_size))
    if not _legacy(out):
        return ExportSettings()
    recipe = json.loads((out / "recipe.json").read_text(encoding="utf-8"))
    if any(fnmatch(name, "data/test-*") for name in _files(out)):
        return None
    return ExportSettings(str(recipe.get("format", "messages")))


def write_marker(stage: Path, settings: ExportSettings, seed: int, rows: int, run_bytes: int | None = None) -> None:
    """Written last into a finished staging folder: the files there are exactly the export's. `run_bytes`: the size
    of the run's jobs.jsonl it was exported from, so a push can tell an export the run has since outgrown."""
    files = sorted(_files(stage))
    data = {"generator": "longwriter-data export", "format": settings.format, "test_size": settings.test_size,
            "seed": seed, "rows": rows, "files": files, "run_bytes": run_bytes}
    (stage / MARKER).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _staging_name(name: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(name)}\.staging-(\d+)-[A-Za-z0-9_]+")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clean_stale_staging(parent: Path, name: str) -> list[Path]:
    """Remove staging folders of exports to `parent/name` whose process died (killed mid-export); returns them.

    Only folders with the staging name and an owner file naming this host and a process that no longer runs: a
    live export's, another machine's (a shared disk) and anything else are left alone."""
    import shutil

    pattern = _staging_name(name)
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    host = socket.gethostname()
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            owner = json.loads((entry / _OWNER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(owner, dict) or owner.get("host") != host or owner.get("pid") != int(match.group(1)):
            continue
        if not _alive(owner["pid"]):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A staging folder beside `out` (same disk: the finished export is moved into place, not copied), owned by
    this process; removed on the way out, whatever happens. A full disk or an unwritable folder is one clear error."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.staging-{os.getpid()}-")
    except OSError as exc:
        raise _write_error(exc, out) from None
    with tmp:
        folder = Path(tmp.name)
        try:
            (folder / _OWNER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}),
                                         encoding="utf-8")
            yield folder
        except Exception as exc:
            if _out_of_space(exc) or (isinstance(exc, OSError) and exc.errno in _NOT_WRITABLE):
                raise _write_error(exc, out) from None
            raise


def _write_error(exc: Exception, out: Path) -> UserError:
    if _out_of_space(exc):
        return DiskFull(f"no space left on the disk of {out.parent} while writing the export; nothing was replaced "
                        "and the run is unchanged: free some space and export again.")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return UserError(f"cannot write the export beside {out} ({reason}); pass another --out.")


def _out_of_space(exc: BaseException | None) -> bool:
    """True when `exc` or what caused it is a full disk or quota (pyarrow and datasets wrap the OSError)."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "[errno 28]" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def replace(stage_out: Path, out: Path, run_dir: Path) -> None:
    """Move a finished export into place. An earlier export there is moved into the staging folder first (so it is
    removed with it), after checking again that it still holds only the export's files."""
    check_replaceable(out, run_dir)
    if out.exists():
        os.rename(out, stage_out.parent / "previous")
    os.rename(stage_out, out)
