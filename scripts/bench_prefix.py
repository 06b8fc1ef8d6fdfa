"""Prefix reuse of a built run: how much of each AgentWrite prompt a prefix-caching server could serve from cache.

Rebuilds every step's request of every finished job from jobs.jsonl and the saved recipe with the package's own
AgentWrite (checked against the request keys in steps.jsonl), then prints:
  - prefix share: characters of each prompt that are an exact prefix of the same job's next prompt, over all
    prompts that have a next one (plan -> paragraph 1 counted, and also shown without it);
  - tokens: prompt tokens sent (the server's `usage`, from steps.jsonl) versus tokens that would be new with prefix
    caching (each step's tokens scaled by the share of its characters not shared with the previous prompt).

Run: .venv/bin/python scripts/bench_prefix.py RUN_DIR
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

from longwriter_data.backends.base import ChatRequest, request_key
from longwriter_data.generate.agentwrite import AgentWrite
from longwriter_data.generate.plan import Plan, PlanStep
from longwriter_data.pools.instructions import Instruction
from longwriter_data.store import read_jsonl, read_snapshot


def job_requests(record: dict, agent: AgentWrite) -> list[ChatRequest]:
    """The requests of one finished job, in order: plan, then one per paragraph."""
    inst = Instruction(seq=record["seq"], id=record["id"], prompt=record["prompt"], lang=record["lang"])
    plan = Plan(tuple(PlanStep(step["main_point"], step["words"]) for step in record["plan"]))
    paragraphs = record["paragraphs"]
    writes = [agent._write_request(inst, plan, paragraphs[:i], i) for i in range(len(plan.steps))]
    return [agent._plan_request(inst), *writes]


def common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    low, high = 0, n  # binary search on slice equality: C-speed compares instead of a Python loop per character
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def main(run_dir: Path) -> None:
    config = read_snapshot(run_dir).build_config()
    agent = AgentWrite(config.generation, config.backend.model, config.backend.plan_model)
    steps: dict[tuple[int, int, int], dict] = {}
    for step in read_jsonl(run_dir / "steps.jsonl"):
        steps[step["seq"], step["sample"], step["step"]] = step  # the last record of a step wins, as on resume
    jobs = {}
    for record in read_jsonl(run_dir / "jobs.jsonl"):
        if record.get("paragraphs"):
            jobs[record["seq"], record["sample"]] = record
    shared = total = shared_writes = total_writes = 0
    sent_tokens = new_tokens = 0.0
    checked = matched = 0
    shares: list[float] = []
    for (seq, sample), record in jobs.items():
        requests = job_requests(record, agent)
        prompts = [request.prompt for request in requests]
        previous = ""
        for index, prompt in enumerate(prompts):
            step = steps.get((seq, sample, index))
            if step is not None:
                checked += 1
                matched += step.get("key") == request_key(requests[index], sample)
                reused = common_prefix(previous, prompt) if previous else 0
                # A step's tokens are what all its answers cost: an answer asked again repeats the same prompt,
                # whole (cacheable), so only one send of it is new.
                each = step["prompt_tokens"] / step.get("requests", 1)
                sent_tokens += step["prompt_tokens"]
                new_tokens += each * (1 - reused / len(prompt))
            if index + 1 < len(prompts):
                prefix = common_prefix(prompt, prompts[index + 1])
                shares.append(prefix / len(prompt))
                shared, total = shared + prefix, total + len(prompt)
                if index > 0:
                    shared_writes, total_writes = shared_writes + prefix, total_writes + len(prompt)
            previous = prompt
    print(f"prefix: {len(jobs)} jobs, prompts rebuilt {matched}/{checked} match steps.jsonl keys; "
          f"share of prompt chars that prefix the next prompt {shared / total:.1%} "
          f"(paragraph -> paragraph only {shared_writes / max(total_writes, 1):.1%}; per prompt: min "
          f"{min(shares):.1%}, median {statistics.median(shares):.1%}); "
          f"prompt tokens sent {sent_tokens:,.0f}, new with prefix caching {new_tokens:,.0f} "
          f"({new_tokens / sent_tokens:.1%} of sent, {1 - new_tokens / sent_tokens:.1%} cacheable); "
          f"load1={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
