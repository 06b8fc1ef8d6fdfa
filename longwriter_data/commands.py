"""Commands that work on an existing run directory or exported dataset: export, inspect and push."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError


def _run_target(run_dir: Path) -> tuple[int | None, int]:
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise UserError(f"{run_dir} is not a run directory (no config.json).")
    config = json.loads(config_path.read_text(encoding="utf-8"))["config"]
    return config.get("target"), config.get("seed", 0)


def export_command(run_dir: Path, out: Path | None, fmt: str, test_size: float) -> int:
    if not 0 <= test_size < 1:
        raise UserError(f"--test-size must be in [0, 1), got {test_size}.")
    from .card import split_sizes
    from .export import export_run  # imports datasets: only the commands that need it pay for it
    from .report import plural

    target, seed = _run_target(run_dir)
    out = out or run_dir / "dataset"
    rows = export_run(run_dir, out, fmt=fmt, target=target, test_size=test_size, seed=seed)
    splits = ", ".join(f"{n:,} {name}" for name, (n, _, _) in split_sizes(out).items())
    print(f"Exported {plural(rows, 'sample')} ({splits}; {fmt} format) with its card to {out}")
    return 0


def inspect_command(path: Path, png: Path | None) -> int:
    from .inspect import png_title, render_text, write_png
    from .stats import describe, load_scan

    scan = load_scan(path)
    if png is not None and not scan.jobs:
        raise UserError(f"{path} has no finished jobs yet: nothing to draw in {png}.")
    print(render_text(scan), flush=True)
    if png is not None:
        write_png(describe(scan.jobs), png, png_title(scan))
        print(f"Wrote {png}")
    return 0


def push_command(path: Path, repo_id: str, private: bool | None = None, revision: str | None = None) -> int:
    from .hub import push_dataset

    result = push_dataset(path, repo_id, private=private, revision=revision)
    if result.changed:
        print(f"Pushed {result.files} files to {result.url} (revision {result.revision}, commit {result.commit[:10]})")
    else:
        print(f"{result.url} (revision {result.revision}) already holds this export: nothing to upload.")
    return 0
