"""Does the engine hold a requests-per-minute budget? Runs a build against the fault-injecting fake server with
`engine.requests_per_minute` set and prints the achieved rate next to the budget, and the most requests the server
saw in any one-minute window (that must never exceed the budget).

    python scripts/bench_rpm.py [--rpm 600] [--minutes 2.5] [--rate-limit-faults 0.05]
"""

from __future__ import annotations

import argparse
import bisect
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from longwriter_data.testing.fake_server import FakeServerProcess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--minutes", type=float, default=2.5, help="how long the build should run")
    parser.add_argument("--rate-limit-faults", type=float, default=0.05, help="share of requests answered 429")
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()

    paragraphs = 3
    jobs = int(args.rpm * args.minutes / (paragraphs + 1)) + 1
    with tempfile.TemporaryDirectory() as tmp, FakeServerProcess(
            latency=args.latency, faults={"rate_limit": args.rate_limit_faults, "server_error": 0.02}) as server:
        tmp = Path(tmp)
        pool = tmp / "pool.jsonl"
        pool.write_text("".join(json.dumps({"prompt": f"Essay {i}. [[words={400 * paragraphs}]]"}) + "\n"
                                for i in range(jobs)))
        config = tmp / "config.yaml"
        config.write_text(yaml.safe_dump({
            "name": "bench-rpm", "run_dir": str(tmp / "run"), "target": jobs,
            "backend": {"base_url": server.base_url, "api_key_env": None, "model": "fake"},
            "engine": {"max_jobs": 200, "requests_per_minute": args.rpm, "max_retries": 10,
                       "retry_base_delay_s": 0.1, "retry_max_delay_s": 2.0},
            "pools": [{"path": str(pool)}],
            "filters": {"min_words": 0, "near_duplicate_threshold": None},
        }))
        started = time.time()
        subprocess.run([sys.executable, "-m", "longwriter_data", "build", "--config", str(config), "--no-progress"],
                       check=True, stdout=subprocess.DEVNULL)
        wall = time.time() - started
        times = sorted(server.stats(times=True)["times"])
    span = times[-1] - times[0]
    achieved = (len(times) - 1) / span * 60 if span > 0 else float("nan")
    # The busiest minute: for each request, how many requests fall in the 60 s that start with it.
    busiest = max(bisect.bisect_left(times, t + 60.0) - i for i, t in enumerate(times))
    print(f"budget {args.rpm:.0f} rpm | requests {len(times)} (incl. 429/5xx retries) over {span:.1f} s "
          f"(build wall {wall:.1f} s) | achieved {achieved:.1f} rpm ({achieved / args.rpm:.1%} of budget) | "
          f"busiest 60 s window {busiest} requests ({'OK' if busiest <= args.rpm else 'OVER BUDGET'})")


if __name__ == "__main__":
    main()
