"""Commands that work on an existing run directory or exported dataset: export, inspect and push."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .errors import UserError


def _run_target(run_dir: Path) -> tuple[int | None, int]:
    from .store import read_snapshot

    snapshot = read_snapshot(run_dir)
    if snapshot is None:
        raise UserError(f"{run_dir} is not a run directory (no config.json).")
    config = snapshot.build_config()
    return config.target, config.seed


def export_command(run_dir: Path, out: Path | None, fmt: str, test_size: float) -> int:
    if not 0 <= test_size < 1:
        raise UserError(f"--test-size must be in [0, 1), got {test_size}.")
    from .publish.card import split_sizes
    from .publish.export import export_run  # imports datasets: only the commands that need it pay for it
    from .text import plural

    target, seed = _run_target(run_dir)
    out = out or run_dir / "dataset"
    rows = export_run(run_dir, out, fmt=fmt, target=target, test_size=test_size, seed=seed)
    splits = ", ".join(f"{n:,} {name}" for name, (n, _, _) in split_sizes(out).items())
    print(f"Exported {plural(rows, 'sample')} ({splits}; {fmt} format) with its card to {out}")
    return 0


def inspect_command(path: Path, png: Path | None) -> int:
    from .publish.inspection import render_text
    from .publish.views import png_title, write_png
    from .publish.stats import describe, load_scan

    if png is not None:
        _check_png_path(png)
    scan = load_scan(path)
    if png is not None and not scan.jobs:
        raise UserError(f"{path} has no finished jobs yet: nothing to draw in {png}.")
    print(render_text(scan), flush=True)
    if png is not None:
        try:
            write_png(describe(scan.jobs), png, png_title(scan))
        except OSError as exc:  # a read-only disk, a full one: what the checks before could not see
            raise UserError(f"--png {png}: cannot write it ({exc.strerror or exc}); pass another path.") from None
        print(f"Wrote {png}")
    return 0


def _check_png_path(png: Path) -> None:
    """Refuse, before anything is read or written, a --png path that cannot be written or that would overwrite
    something other than an image (a run's jobs.jsonl, a folder): only an earlier PNG is replaced."""
    if png.is_dir():
        raise UserError(f"--png {png} is a folder; pass a file name such as {png / 'lengths.png'}.")
    if png.exists():
        with png.open("rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                raise UserError(f"--png {png} exists and is not a PNG image; inspect overwrites only an earlier "
                                "image: pass another path.")
    folder = png.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders that are missing are created when the image is written
    if not folder.is_dir():
        raise UserError(f"--png {png}: {folder} is a file, not a folder; pass another path.")
    try:  # a real probe (as root, os.access says yes to a read-only mount or /proc); an unnamed file leaves no trace
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise UserError(f"--png {png}: the folder {folder} is not writable ({exc.strerror or exc}); pass another "
                        "path.") from None


def push_command(path: Path, repo_id: str, private: bool | None = None, revision: str | None = None) -> int:
    from .publish.hub import push_and_say

    push_and_say(path, repo_id, private=private, revision=revision)
    return 0
