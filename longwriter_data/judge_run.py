"""The `judge` command: score every sample of a finished run without generating anything again.

It keeps its own durable file, judgements.jsonl (one line per sample and judge), and names the judge it applied last
in quality.json, which inspect and export read to know whose scores to show.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path

from pydantic import ValidationError

from .backends.factory import open_backend
from .backends.sending import guarded_send
from .commands import export_command
from .config import BuildConfig, JudgeConfig
from .errors import UserError
from .generate.judging import JudgeFailed, QualityJudge, Send, judge_endpoint
from .publish.report import run_report
from .publish.stats import scan_run
from .quality.judge import Judgement
from .records import JUDGED_FIELDS, JobKey
from .store import (ACTIVE_JUDGE, JUDGEMENTS, GroupCommitLog, RunStore, job_at, read_judgements, read_jsonl,
                    repair_tail, write_atomic)


def parse_minimums(items: list[str]) -> dict[str, int]:
    """--min-dimension Relevance=3 (repeatable)."""
    minimums = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not value.strip().isdigit():
            raise UserError(f"--min-dimension {item!r}: write it as DIMENSION=N, e.g. Relevance=3.")
        minimums[name.strip()] = int(value)
    return minimums


def judge_command(run_dir: Path, model: str | None = None, min_score: float | None = None,
                  min_dimension: dict[str, int] | None = None, base_url: str | None = None,
                  api_key_env: str | None = None, export: bool = False) -> int:
    """Score every sample of a finished run that this judge has not scored, re-apply the quality bar, and
    re-export on request. Resumable: each judgement is on disk before the next counts."""
    store = RunStore(run_dir)
    saved = store.saved_config()
    if saved is None:
        raise UserError(f"{run_dir} is not a run directory (no config.json).")
    config = saved.build_config()
    base = (config.quality.judge or JudgeConfig()).model_dump()
    overrides = {"model": model, "min_score": min_score, "base_url": base_url, "api_key_env": api_key_env}
    base.update({name: value for name, value in overrides.items() if value is not None})
    if min_dimension:
        base["min_dimension"] = min_dimension
    try:
        settings = JudgeConfig.model_validate(base)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        raise UserError(f"--{str(error['loc'][0]).replace('_', '-')}: {message}.") from None
    judge = QualityJudge(settings, config.backend.model, config.generation.step_attempts)
    config = config.model_copy(update={"quality": config.quality.model_copy(update={"judge": settings})})
    store.lock()
    try:
        path = run_dir / JUDGEMENTS
        repair_tail(path)
        jobs = [job for job in scan_run(run_dir).jobs if job.status == "accepted" or job.reason == "low_quality"]
        log = GroupCommitLog(path)
        try:
            # Scores a build's judge left in the job records are kept in judgements.jsonl before a status change
            # below writes another judge's into the records: whichever judge runs next finds its own.
            scored, todo, failed = asyncio.run(_score(config, judge, run_dir, jobs, log))
        finally:
            log.close()
        changed = _apply(store, judge, jobs, scored) if judge.filters else 0
        write_atomic(run_dir / ACTIVE_JUDGE, json.dumps({"judge": judge.key, "model": judge.model,
                                                   "min_score": settings.min_score,
                                                   "min_dimension": settings.min_dimension}, indent=2) + "\n")
        store.save_report(run_report(store.jobs_path).as_record())
    finally:
        store.close()
    print(f"Judge {judge.key}: {len(todo) - failed} samples judged now, {len(jobs) - len(todo)} already judged, "
          f"{failed} could not be judged; {changed} changed status (accepted <-> low_quality).", flush=True)
    if failed:
        print(f"Run the same command again to retry the {failed} unjudged samples.", file=sys.stderr)
    if export:
        if not any(job.status == "accepted" for job in scan_run(run_dir).jobs):
            print(f"No sample is accepted now: nothing exported ({run_dir / 'dataset'} is left as it was).",
                  file=sys.stderr)
            return 1
        export_command(run_dir, None, "messages", 0.0)
    return 1 if failed else 0


async def _score(config: BuildConfig, judge: QualityJudge, run_dir: Path, jobs: list, log) -> tuple[dict, list, int]:
    """Judge the jobs this judge has not scored; (its scores by job, the jobs judged now, how many failed)."""
    known = {(JobKey(line["seq"], line.get("sample", 0)), line["judge"]) for line in read_jsonl(run_dir / JUDGEMENTS)}
    for job in jobs:  # scores of the build's own judge, in the job records: kept before any record changes
        if job.judge and job.quality_scores and (job.key, job.judge) not in known:
            await log.append({"seq": job.seq, "sample": job.sample, "id": job.id, "judge": job.judge,
                              "quality_score": job.quality_score, "quality_scores": job.quality_scores,
                              "from_build": True})
    scored = read_judgements(run_dir, judge.key)
    todo = [job for job in jobs if job.key not in scored]
    failed = await _judge_all(config, judge, run_dir / "jobs.jsonl", todo, log, scored)
    return scored, todo, failed


async def _judge_all(config: BuildConfig, judge: QualityJudge, jobs_path: Path, todo: list, log, scored: dict) -> int:
    """Judge `todo` with up to max_jobs requests in flight; each line is fsync'd before it counts. Returns failures."""
    engine = config.engine
    queue = list(reversed(todo))
    failures = 0

    async def worker(send: Send) -> None:
        nonlocal failures
        with jobs_path.open("rb") as fh:
            while queue:
                job = queue.pop()
                record = job_at(fh, job.offset)
                try:
                    judgement, step = await judge.judge(send, record.prompt, record.text)
                except JudgeFailed as exc:
                    failures += 1
                    print(f"{record.id}: {exc}", file=sys.stderr)
                    continue
                line = {"seq": job.seq, "sample": job.sample, "id": record.id, **judge.fields(judgement, step),
                        **{k: getattr(step, k) for k in ("prompt_tokens", "completion_tokens", "cached_tokens", "key")}}
                await log.append(line)
                scored[job.key] = line

    async def run(send: Send) -> None:
        await asyncio.gather(*(worker(send) for _ in range(min(engine.max_jobs, len(todo)))))

    if not todo:
        return 0
    async with judge_endpoint(config) as own:
        if own is not None:
            await run(own)
            return failures
    # The judge shares the build's backend (perhaps a local model).
    async with open_backend(config.backend, engine.max_jobs, engine.request_timeout_s) as backend:
        await run(guarded_send(backend, engine))  # a dead endpoint: one line, not one per sample
    return failures


def _apply(store, judge: QualityJudge, jobs: list, scored: dict) -> int:
    """Re-apply the judge's bar: a job whose status changes (accepted <-> low_quality) gets a new last record,
    appended to jobs.jsonl (the last record of a job wins; nothing is rewritten)."""
    changed = []
    with store.jobs_path.open("rb") as fh:
        for job in jobs:
            line = scored.get(job.key)
            if line is None:
                continue
            verdict = judge.verdict(Judgement(scores=line["quality_scores"]))
            if verdict.status == job.status:
                continue
            record = replace(job_at(fh, job.offset), status=verdict.status, reason=verdict.reason,
                             detail=verdict.detail, **{k: line[k] for k in JUDGED_FIELDS if k in line})
            changed.append(record)
    if changed:
        async def append() -> None:
            store.open_logs()
            for record in changed:
                await store.append_job(record)

        asyncio.run(append())
    return len(changed)
