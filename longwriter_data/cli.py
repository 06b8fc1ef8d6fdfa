"""Command line: parses arguments and calls one function per command; no logic lives here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import FatalBackendError, UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longwriter-data", description="Build long-output SFT datasets with AgentWrite.")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="generate samples (resumes the run directory if it exists)")
    build.add_argument("--config", required=True, type=Path, help="YAML recipe, e.g. configs/6k.yaml")
    build.add_argument("--retry-failed", action="store_true", help="re-queue jobs that failed in earlier runs")
    build.add_argument("--force", action="store_true", help="resume even though the recipe changed")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")

    export = commands.add_parser("export", help="write accepted samples as a Hugging Face dataset")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--out", type=Path, help="output folder (default RUN_DIR/dataset)")
    export.add_argument("--format", default="messages", choices=["messages", "sharegpt", "alpaca"])
    export.add_argument("--test-size", type=float, default=0.0, help="share of rows for a test split")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            from .build import build

            return build(args.config, retry_failed=args.retry_failed, force=args.force, progress=not args.no_progress)
        if args.command == "export":
            from .commands import export_command

            return export_command(args.run_dir, args.out, args.format, args.test_size)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except FatalBackendError as exc:
        print(f"error: {exc}. Check the key in the environment variable named by backend.api_key_env.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
