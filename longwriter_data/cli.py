"""Command line: parses arguments and calls one function per command; no logic lives here."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path

from .errors import FatalBackendError, UserError


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, unless it has none worth printing (a flag's off, an unset value
    whose help says what happens instead) or its help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def _count(least: int):
    """An argparse type: a whole number of at least `least` (a bad value is argparse's one-line error, status 2)."""
    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value
    return count


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a folder")
    return Path(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="longwriter-data", formatter_class=_Help,
                                     description="Build long-output SFT datasets with AgentWrite.")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser("build", help="generate samples (resumes the run directory if it exists)")
    build.add_argument("--config", required=True, type=Path, help="YAML recipe, e.g. configs/6k.yaml")
    build.add_argument("--retry-failed", action="store_true", help="re-queue jobs that failed in earlier runs")
    build.add_argument("--force", action="store_true", help="resume even though the recipe changed")
    build.add_argument("--no-progress", action="store_true", help="show no progress bar (for logs and CI)")

    pools = commands.add_parser("pools", help="preview the instruction mix of a recipe without generating")
    pools.add_argument("--config", required=True, type=Path, help="YAML recipe")
    pools.add_argument("--samples", type=_count(0), default=5,
                       help="how many instructions to show, first in draw order (default: %(default)s)")

    estimate = commands.add_parser("estimate", help="predict requests, tokens, cost and wall time before a build")
    estimate.add_argument("--config", required=True, type=Path, help="YAML recipe")
    estimate.add_argument("--acceptance", type=float, default=0.85,
                          help="share of jobs expected to pass the filters, in (0, 1]: the target is divided by it "
                          "to get the jobs priced (default: %(default)s)")
    estimate.add_argument("--default-words", type=_count(1), default=5000,
                          help="output length in words assumed for instructions that ask for none "
                          "(default: %(default)s)")
    estimate.add_argument("--paragraph-words", type=_count(1), help="words per planned paragraph (default: the middle "
                          "of generation.paragraph_word_range)")
    estimate.add_argument("--tokens-per-second", type=_positive, default=50.0,
                          help="decode speed of one request, for the wall time (default: %(default)s)")

    export = commands.add_parser("export", help="write accepted samples as a Hugging Face dataset")
    export.add_argument("run_dir", type=Path, help="the run directory of a build")
    export.add_argument("--out", type=_folder, help="output folder: a new or empty one, or one an earlier export "
                        "made, which it replaces (default: RUN_DIR/dataset)")
    export.add_argument("--format", default="messages", help="chat schema of the rows: messages (LongWriter-6k's; "
                        "the one TRL reads as conversations), sharegpt or alpaca")
    export.add_argument("--test-size", type=float, default=0.0,
                        help="share of rows held out as a test split, e.g. 0.05; 0 writes only a train split")

    inspect = commands.add_parser("inspect", help="length histogram and bands, languages, types, S_l, tokens, cost")
    inspect.add_argument("path", type=Path, help="a run directory (even one still running) or an exported folder")
    inspect.add_argument("--png", type=Path, help="also draw the histogram and the required-vs-actual scatter into "
                         "this PNG file (default: text only)")

    judge = commands.add_parser("judge", help="score a finished run with the quality judge, keep or reject by it")
    judge.add_argument("run_dir", type=Path, help="a run directory made by build")
    judge.add_argument("--model", help="judge model (default: quality.judge.model, else backend.model)")
    judge.add_argument("--min-score", type=float, help="reject samples with S_q below this as low_quality (default: quality.judge.min_score of the "
                       "run's recipe; none: score only)")
    judge.add_argument("--min-dimension", action="append", default=[], metavar="DIMENSION=N",
                       help="reject samples scoring below N on a dimension, e.g. Relevance=3 (repeatable)")
    judge.add_argument("--base-url", help="the judge's endpoint (default: quality.judge.base_url, else the backend's)")
    judge.add_argument("--api-key-env", help="environment variable holding the judge endpoint's key; '' for a server that needs no key (default: "
                       "quality.judge.api_key_env)")
    judge.add_argument("--export", action="store_true", help="export RUN_DIR/dataset again afterwards (default: off)")

    push = commands.add_parser("push", help="upload the exported dataset and its card to the Hugging Face Hub")
    push.add_argument("run_dir", type=Path, help="a run directory (pushes RUN_DIR/dataset) or an exported folder")
    push.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset repository (created if missing)")
    push.add_argument("--private", action="store_true", default=None,
                      help="create the repository private (default: public; an existing one keeps its visibility)")
    push.add_argument("--revision", help="branch to push to, created from main if missing (default: main)")
    for command in commands.choices.values():
        command.formatter_class = _Help
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        status = _dispatch(args)
        sys.stdout.flush()  # inside the try: a reader that left (`| head`) is handled below
        return status
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except FatalBackendError as exc:
        print(f"error: {exc}.", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `inspect RUN | head`: the reader left; say nothing more, exit like other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: no space left on the device{where}: free some space, then run the same command again to "
              "resume (everything finished so far is saved).", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "build":
        from .build import build

        return build(args.config, retry_failed=args.retry_failed, force=args.force, progress=not args.no_progress)
    if args.command == "pools":
        from .pools.preview import preview_pools

        print(preview_pools(args.config, samples=args.samples))
        return 0
    if args.command == "estimate":
        from .estimate import estimate_command

        print(estimate_command(args.config, args.acceptance, args.default_words, args.paragraph_words,
                               args.tokens_per_second))
        return 0
    if args.command == "export":
        from .commands import export_command

        return export_command(args.run_dir, args.out, args.format, args.test_size)
    if args.command == "inspect":
        from .commands import inspect_command

        return inspect_command(args.path, args.png)
    if args.command == "judge":
        from .judge_run import judge_command, parse_minimums

        return judge_command(args.run_dir, args.model, args.min_score, parse_minimums(args.min_dimension),
                             args.base_url, args.api_key_env, args.export)
    if args.command == "push":
        from .commands import push_command

        return push_command(args.run_dir, args.repo_id, args.private, args.revision)
    return 0
