"""Export benchmark: writes a synthetic run directory (config.json and jobs.jsonl records in the format a build
writes) of N accepted samples of W words, exports it with `python -m longwriter_data export` in a child process,
and prints the child's wall time and peak RSS. Export streams from the run, so peak memory must not grow with N.

  python scripts/bench_export.py                      # 6,000 samples x 10,000 words, messages format
  python scripts/bench_export.py --samples 600 --format sharegpt --test-size 0.02 --keep
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from longwriter_data.testing.synthetic_run import SyntheticJob, write_run  # noqa: E402


def synthetic_jobs(samples: int, words: int) -> list[SyntheticJob]:
    """Accepted samples, a third with a stated length, a quarter Chinese; one rejected job in twenty, as in a run."""
    jobs = []
    for i in range(samples):
        lang = "zh" if i % 4 == 3 else "en"
        required = (words, words) if i % 3 == 0 else None
        jobs.append(SyntheticJob(words=words, lang=lang, required=required, type=("essay", "story", "report")[i % 3]))
        if i % 20 == 19:
            jobs.append(SyntheticJob(words=words // 10, status="rejected", reason="too_short", lang=lang))
    return jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--words", type=int, default=10000)
    parser.add_argument("--format", default="messages")
    parser.add_argument("--test-size", type=float, default=0.0)
    parser.add_argument("--dir", type=Path, help="where to write the run (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the run and the dataset afterwards")
    args = parser.parse_args()

    base = args.dir or Path(tempfile.mkdtemp(prefix="bench_export."))
    run = base / "run"
    if run.exists():
        shutil.rmtree(run)
    started = time.monotonic()
    write_run(run, synthetic_jobs(args.samples, args.words), target=args.samples)
    size = (run / "jobs.jsonl").stat().st_size
    print(f"Run: {args.samples:,} accepted samples of {args.words:,} words, jobs.jsonl {size / 2**20:,.0f} MiB "
          f"(written in {time.monotonic() - started:.1f} s)", flush=True)

    command = [sys.executable, "-m", "longwriter_data", "export", str(run), "--format", args.format,
               "--test-size", str(args.test_size)]
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=Path(__file__).resolve().parents[1])
    _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage, peak RSS included
    wall = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        print(f"export failed with status {child.returncode}", file=sys.stderr)
        return 1
    dataset = run / "dataset"
    parquet = sum(p.stat().st_size for p in (dataset / "data").glob("*.parquet"))
    print(f"Export ({args.format}): wall {wall:.1f} s, peak RSS {usage.ru_maxrss / 2**20:,.2f} GiB "
          f"(user {usage.ru_utime:.1f} s, system {usage.ru_stime:.1f} s); Parquet {parquet / 2**20:,.0f} MiB")
    if args.keep:
        print(f"Kept: {run}")
    else:
        shutil.rmtree(base if args.dir is None else run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
