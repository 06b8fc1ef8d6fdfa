"""Engine throughput and overhead: a real build against the fake server versus a bare AsyncOpenAI loop.

Starts the fake server in its own process with a fixed latency, then (each in a child process of its own):
  1. builds N jobs of P paragraphs at max_jobs=C (pool of N `[[words=400*P]]` instructions, min_words 0);
  2. sends the same N x (P+1) requests, P+1 in a row per job, C jobs at once, with a bare `openai.AsyncOpenAI`
     on `DefaultAioHttpClient` (max_retries=0, pool of C connections), prompts of the same sizes.
Prints one line: wall time vs the critical path ceil(N/C) x (P+1) x latency, CPU ms per request of both, their
ratio, the builder's peak RSS, the load average, and the share of CPU time stolen by the hypervisor during each.
Wall/CPU/RSS of the builder are taken up to the end of the engine (the dataset export that ends a build is reported
apart); imports are excluded on both sides (datasketch, which the build imports on first use, included). The
builder's CPU is its own process's: the worker processes that judge samples are reported apart (judge_cpu).

Run: .venv/bin/python scripts/bench_engine.py [--jobs 2000] [--paragraphs 8] [--concurrency 500] [--latency 2]
     [--no-bare]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

WORDS_PER_PARAGRAPH = 400  # the fake server plans round(total / 400) paragraphs of total // count words


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_build(config_path: str) -> dict:
    """Run the real build; measure up to the end of the engine (build's `on_engine_done`), then let export run.

    The export module is not imported here: it loads `datasets` (~150 MB), which a build loads only once the
    engine is done, and the engine's peak memory is what this measures."""
    import datasketch  # noqa: F401  (imported by the build on first use; imports are not the engine's throughput)

    from longwriter_data.build import build

    marks: dict = {"rss_after_imports_mb": rss_mb()}

    def engine_done(summary) -> None:
        marks.update(wall_s=time.monotonic() - t0, cpu_s=time.process_time() - c0, rss_mb=rss_mb())

    t0, c0 = time.monotonic(), time.process_time()
    status = build(config_path, progress=False, on_engine_done=engine_done)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the judging workers, joined when the engine ends
    marks.update(status=status, export_s=time.monotonic() - t0 - marks["wall_s"], rss_with_export_mb=rss_mb(),
                 judge_cpu_s=children.ru_utime + children.ru_stime)
    return marks


def job_prompts(paragraphs: int) -> list[str]:
    """The P+1 prompts of one job, exactly as AgentWrite builds them against the fake server."""
    from longwriter_data.generate.agentwrite import plan_prompt, write_prompt
    from longwriter_data.generate.plan import Plan, PlanStep
    from longwriter_data.pools.instructions import Instruction
    from longwriter_data.testing.fake_server import english

    words = WORDS_PER_PARAGRAPH * paragraphs
    inst = Instruction(seq=0, id="bare", prompt=f"Write essay 0. [[words={words}]]", lang="en")
    plan = Plan(tuple(PlanStep(f"Part {i + 1} of the piece", WORDS_PER_PARAGRAPH) for i in range(paragraphs)))
    prompts, written = [plan_prompt(inst, "text")], []
    for index in range(paragraphs):
        prompts.append(write_prompt(inst, plan, written, index))
        written.append(english(WORDS_PER_PARAGRAPH, index))
    return prompts


def child_bare(base_url: str, jobs: int, paragraphs: int, concurrency: int) -> dict:
    import httpx2
    import openai

    prompts = job_prompts(paragraphs)

    async def main() -> None:
        http = openai.DefaultAioHttpClient(
            limits=httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
        client = openai.AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0, timeout=600, http_client=http)
        next_job = iter(range(jobs))

        async def worker() -> None:
            for _ in next_job:
                for prompt in prompts:
                    response = await client.chat.completions.create(
                        model="fake", messages=[{"role": "user", "content": prompt}], max_tokens=4096, temperature=0.7)
                    assert response.choices[0].message.content

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await client.close()

    t0, c0 = time.monotonic(), time.process_time()
    asyncio.run(main())
    return {"wall_s": time.monotonic() - t0, "cpu_s": time.process_time() - c0, "rss_mb": rss_mb()}


def in_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times() -> list[int]:
    """The machine's CPU time by kind (user, nice, system, idle, iowait, irq, softirq, steal), in ticks."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def stolen(before: list[int], after: list[int]) -> float:
    """The share of CPU time the hypervisor gave to other machines in between: on a virtual machine, the main
    source of noise from run to run."""
    spent = [b - a for a, b in zip(before, after)]
    return spent[7] / max(1, sum(spent))


def bench(jobs: int, paragraphs: int, concurrency: int, latency: float, with_bare: bool = True) -> str:
    from longwriter_data.testing.fake_server import FakeServerProcess

    with tempfile.TemporaryDirectory(prefix="bench_engine.") as tmp, FakeServerProcess(latency=latency) as server:
        tmp = Path(tmp)
        words = WORDS_PER_PARAGRAPH * paragraphs
        pool = tmp / "pool.jsonl"
        pool.write_text("".join(json.dumps({"id": f"b{i}", "prompt": f"Write essay {i}. [[words={words}]]"}) + "\n"
                                for i in range(jobs)))
        config = tmp / "config.yaml"
        config.write_text(yaml.safe_dump({
            "name": "bench", "run_dir": str(tmp / "run"), "target": jobs,
            "backend": {"base_url": server.base_url, "api_key_env": None, "model": "fake"},
            "engine": {"max_jobs": concurrency, "max_retries": 0},
            "pools": [{"path": str(pool)}], "filters": {"min_words": 0},
        }))
        load_before, times = os.getloadavg()[0], cpu_times()
        s0 = cpu_of(server.proc.pid)
        built = in_child("--child-build", str(config))
        server_cpu = cpu_of(server.proc.pid) - s0
        built["steal"], times = stolen(times, cpu_times()), cpu_times()
        requests = server.stats()["requests"]
        server.reset()
        if with_bare:
            bare = in_child("--child-bare", server.base_url, str(jobs), str(paragraphs), str(concurrency))
            bare["ms"] = 1000 * bare["cpu_s"] / server.stats()["requests"]
            bare["steal"] = stolen(times, cpu_times())
        load_after = os.getloadavg()[0]

    ideal = math.ceil(jobs / concurrency) * (paragraphs + 1) * latency
    build_ms = 1000 * built["cpu_s"] / requests
    compared = (f"bare_wall={bare['wall_s']:.1f}s bare_efficiency={ideal / bare['wall_s']:.3f} "
                f"builder_cpu={build_ms:.2f}ms/req bare_cpu={bare['ms']:.2f}ms/req overhead={build_ms / bare['ms']:.2f}x "
                if with_bare else f"builder_cpu={build_ms:.2f}ms/req (bare loop skipped) ")
    return (f"jobs={jobs} paragraphs={paragraphs} C={concurrency} latency={latency:g}s requests={requests} "
            f"wall={built['wall_s']:.1f}s ideal={ideal:.1f}s efficiency={ideal / built['wall_s']:.3f} {compared}"
            f"judge_cpu={1000 * built['judge_cpu_s'] / requests:.2f}ms/req builder_rss={built['rss_mb']:.0f}MB "
            f"(after imports {built['rss_after_imports_mb']:.0f}MB, with export {built['rss_with_export_mb']:.0f}MB, "
            f"export {built['export_s']:.1f}s)" + (f" bare_rss={bare['rss_mb']:.0f}MB" if with_bare else "")
            + f" server_cpu={1000 * server_cpu / requests:.2f}ms/req load1={load_before:.2f}->{load_after:.2f}"
            f" steal={built['steal']:.0%}" + (f" bare_steal={bare['steal']:.0%}" if with_bare else ""))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-build":
        print(json.dumps(child_build(sys.argv[2])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--child-bare":
        print(json.dumps(child_bare(sys.argv[2], *map(int, sys.argv[3:6]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--paragraphs", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-client loop (memory runs at large N)")
    args = parser.parse_args()
    print(bench(args.jobs, args.paragraphs, args.concurrency, args.latency, not args.no_bare), flush=True)


if __name__ == "__main__":
    main()
