"""Commands that work on an existing run directory (export, and later inspect and push)."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError
from .export import export_run


def _run_target(run_dir: Path) -> tuple[int | None, int]:
    config_path = run_dir / "config.json"
    if not config_path.exists():
        raise UserError(f"{run_dir} is not a run directory (no config.json).")
    config = json.loads(config_path.read_text(encoding="utf-8"))["config"]
    return config.get("target"), config.get("seed", 0)


def export_command(run_dir: Path, out: Path | None, fmt: str, test_size: float) -> int:
    if not 0 <= test_size < 1:
        raise UserError(f"--test-size must be in [0, 1), got {test_size}.")
    target, seed = _run_target(run_dir)
    out = out or run_dir / "dataset"
    rows = export_run(run_dir, out, fmt=fmt, target=target, test_size=test_size, seed=seed)
    print(f"Exported {rows} samples ({fmt}) to {out}")
    return 0
