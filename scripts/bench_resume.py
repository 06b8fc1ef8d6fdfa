"""Resume latency: how long `build` takes to send its first new request on a run directory of 6,000 samples.

Writes a synthetic run directory in the format a build writes (config.json, jobs.jsonl with 6,000 accepted jobs of
~10,000 words, steps.jsonl with their plan and paragraph steps, plus a few half-done jobs), a matching pool and a
recipe with target 6,010, then starts `python -m longwriter_data build --config X` against the fake server (which
holds every request, so nothing new is written) and times, per trial: the "Resuming ..." message (state loaded)
and the first request reaching the server. The build is killed after that. The data is kept in --workdir and
reused on later runs (the page cache is warm: a cold start reads ~0.7 GB from disk first).

Run: .venv/bin/python scripts/bench_resume.py [--samples 6000] [--words 10000] [--trials 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

PARAGRAPH_WORDS = 400


def recipe(workdir: Path, base_url: str, target: int) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump({
        "name": "bench-resume", "run_dir": str(workdir / "run"), "target": target,
        "backend": {"base_url": base_url, "api_key_env": None, "model": "fake"},
        "pools": [{"path": str(workdir / "pool.jsonl")}],
    }))
    return path


def generate(workdir: Path, samples: int, words: int, base_url: str) -> None:
    """Run directory, pool and recipe, using the package's own config snapshot and draw order."""
    from longwriter_data.config import load_config

    from longwriter_data.pools.instructions import Instruction, PreparedPools, draw
    from longwriter_data.store import RunStore
    from longwriter_data.testing.fake_server import english

    try:  # the instruction MinHash cache a build keeps in its run directory, where the package has one
        from longwriter_data.quality.dedupe import SignatureCache
    except ImportError:
        SignatureCache = None
    try:  # the run-directory format, where the package has one: a job is (instruction, sample)
        from longwriter_data.store import RUN_FORMAT
    except ImportError:
        RUN_FORMAT = None
    try:  # how the package hashes shingles, which the snapshot names, where it does
        from longwriter_data.quality.dedupe import SHINGLE_HASH
        hashed = {"shingle_hash": SHINGLE_HASH} if RUN_FORMAT is None else {}
    except ImportError:
        hashed = {}

    steps = max(1, words // PARAGRAPH_WORDS)
    with (workdir / "pool.jsonl").open("w") as fh:
        for i in range(samples + 100):
            # Distinct topics: templated prompts would be skipped as near-duplicate instructions.
            prompt = f"Write essay {i} about {english(12, i)} in {words} words. [[words={words}]]"
            fh.write(json.dumps({"id": f"r{i}", "prompt": prompt}) + "\n")
    config = load_config(recipe(workdir, base_url, samples + 10))
    pools = PreparedPools(config.pools)
    run = config.run_dir
    run.mkdir(parents=True)
    if RUN_FORMAT is None:
        snapshot = {"config": config.model_dump(mode="json"), "pools_fingerprint": pools.fingerprint, **hashed}
    else:
        snapshot = {"format": RUN_FORMAT, "config": config.model_dump(mode="json"),
                    "pool_fingerprints": pools.fingerprints}
    (run / "config.json").write_text(json.dumps(snapshot, indent=2))
    texts = [english(PARAGRAPH_WORDS, seed) for seed in range(97)]  # reused: sizes are what matter here
    minhashes = output_signatures(texts)
    plan = [{"main_point": f"Part {i + 1} of the piece, in detail", "words": PARAGRAPH_WORDS} for i in range(steps)]
    plan_text = "\n\n".join(f"Paragraph {i + 1} - Main Point: {p['main_point']} - Word Count: {p['words']} words"
                            for i, p in enumerate(plan))
    cache = SignatureCache(RunStore(run).minhash_cache_path) if SignatureCache else None
    stores_instruction = hasattr(Instruction, "to_record")  # a job's plan step names its instruction
    try:  # the draw's settings as one object, where the package has them
        from longwriter_data.pools.instructions import DrawSettings
        drawn = draw(pools, DrawSettings.of(config), **({"minhashes": cache} if cache else {}))
    except ImportError:
        drawn = draw(pools, config.seed, config.pools.inject_length, config.filters.near_duplicate_threshold,
                     *((None, cache) if cache else ()))
    with (run / "jobs.jsonl").open("w") as jobs, (run / "steps.jsonl").open("w") as log:
        for inst in drawn:
            if inst.seq >= samples + 5:
                break
            paragraphs = [texts[(inst.seq + i) % len(texts)] for i in range(steps)]
            done = steps if inst.seq < samples else 3  # the last 5 jobs are half done
            job = {"seq": inst.seq} if RUN_FORMAT is None else {"seq": inst.seq, "sample": 0}
            keys = replay_keys(config, inst, plan_text, paragraphs, done) if inst.seq >= samples else {}
            for step in range(done + 1):
                text = plan_text if step == 0 else paragraphs[step - 1]
                log.write(dumps({**job, "step": step, "text": text, "finish_reason": "stop",
                                 "prompt_tokens": 800 + step * 700, "completion_tokens": len(text) // 4,
                                 "cached_tokens": 0, "prompt_chars": 3200 + step * 2800,
                                 "key": keys.get(step, f"{inst.seq:020x}"),
                                 "attempts": 1, "seconds": 20.0,
                                 **({"instruction": inst.to_record()} if step == 0 and stores_instruction else {})}))
            if inst.seq >= samples:
                continue
            jobs.write(dumps({
                **job, "id": inst.id, "status": "accepted",
                **({"minhash": minhashes[inst.seq % len(minhashes)]} if minhashes else {}),
                "reason": None, "prompt": inst.prompt,
                "lang": inst.lang, "type": None, "required_length": words, "pool": inst.pool, "model": "fake",
                "plan_model": "fake", "detail": None, "plan": plan, "paragraphs": paragraphs,
                "paragraph_words": [PARAGRAPH_WORDS] * steps, "planned_words": words, "word_count": words,
                "usage": {"requests": steps + 1, "prompt_tokens": 400000, "completion_tokens": 14000,
                          "cached_tokens": 0}, "seconds": 520.0, "wall_seconds": 530.0}))
    if cache:
        cache.close()
    (workdir / "done").write_text("")


def replay_keys(config, inst, plan_text: str, paragraphs: list[str], done: int) -> dict[int, str]:
    """The request keys of a half-done job's stored steps, as the package computes them, where a resumed build
    replays a step only when its request matches (otherwise it pays for the step again)."""
    import inspect

    from longwriter_data.backends.openai_http import request_key
    from longwriter_data.generate.agentwrite import AgentWrite
    from longwriter_data.generate.plan import parse_text_plan

    agent = AgentWrite(config.generation, config.backend.model, getattr(config.backend, "plan_model", None))
    whole = "request" in inspect.signature(request_key).parameters  # where the package keys the whole request
    key = request_key if whole else (lambda request: request_key(request.prompt))
    plan = parse_text_plan(plan_text, max_steps=len(paragraphs))
    keys = {0: key(agent._plan_request(inst))}
    for step in range(1, done + 1):
        keys[step] = key(agent._write_request(inst, plan, paragraphs[: step - 1], step - 1))
    return keys


def output_signatures(texts: list[str]) -> list[str]:
    """Encoded MinHash signatures as accepted records carry them, where the package filters near-duplicates."""
    try:
        from longwriter_data.quality.dedupe import encode, signature
    except ImportError:  # a version without near-duplicate filtering
        return []
    return [encode(signature(" ".join(texts[i: i + 25]))) for i in range(0, len(texts), 5)]


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"  # as store.py writes lines


def trial(config: Path, server) -> tuple[float, float | None]:
    """Seconds from start to the 'Resuming' message and to the first request the server sees."""
    before = server.stats()["requests"]
    started = time.monotonic()
    command = [sys.executable, "-m", "longwriter_data", "build", "--config", str(config), "--no-progress"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    resumed: list[float] = []

    def watch() -> None:
        for line in proc.stderr:
            if line.startswith("Resuming") and not resumed:
                resumed.append(time.monotonic() - started)

    threading.Thread(target=watch, daemon=True).start()
    try:
        while server.stats()["requests"] == before:
            if proc.poll() is not None:
                raise RuntimeError(f"build exited with status {proc.returncode} before sending a request")
            time.sleep(0.005)
        first = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return first, resumed[0] if resumed else None


def main() -> None:
    from longwriter_data.testing.fake_server import FakeServerProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--words", type=int, default=10000)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_resume"))
    args = parser.parse_args()
    with FakeServerProcess(latency=3600) as server:  # requests are held, never answered: the run dir stays as it is
        if not (args.workdir / "done").exists():
            args.workdir.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            generate(args.workdir, args.samples, args.words, server.base_url)
            print(f"generated {args.workdir} in {time.monotonic() - t0:.0f}s", flush=True)
        config = recipe(args.workdir, server.base_url, args.samples + 10)
        size = sum(f.stat().st_size for f in (args.workdir / "run").glob("*.jsonl")) / 2**20
        results = [trial(config, server) for _ in range(args.trials)]
    firsts = [first for first, _ in results]
    print(f"resume: {args.samples} finished samples ({size:.0f} MiB of logs), target {args.samples + 10}: "
          f"first new request after {statistics.median(firsts):.2f}s (median of {len(firsts)}: "
          f"{', '.join(f'{f:.2f}' for f in firsts)}), 'Resuming' message after "
          f"{', '.join(f'{r:.2f}' if r else '-' for _, r in results)}s; load1={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
