"""The `judge` command: score every sample of a finished run without generating anything again.

It keeps its own durable file, judgements.jsonl (one line per sample and judge), and names the judge it applied last
in quality.json, which inspect and export read to know whose scores to show.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import ValidationError

from .backends.factory import open_backend
from .backends.sending import guarded_send
from .commands import export_command
from .config import BuildConfig, JudgeConfig
from .errors import UserError
from .generate.judging import JudgeFailed, QualityJudge, Send, judge_endpoint
from .generate.stop import Drain, Shutdown
from .publish.report import run_report
from .publish.stats import Job, scan_run
from .quality.judge import Judgement
from .records import JUDGED_FIELDS, JobKey, JudgementRecord
from .store import RunStore, job_at, judgement_records, read_judgements


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
        message, name = error["msg"].removeprefix("Value error, "), str(error["loc"][0])
        given = name in {key for key, value in overrides.items() if value is not None} or (
            name == "min_dimension" and min_dimension)
        where = f"--{name.replace('_', '-')}" if given else f"{saved.path}: quality.judge.{name}"
        raise UserError(f"{where}: {message}.") from None
    judge = QualityJudge(settings, config.backend.model, config.generation.step_attempts)
    config = config.model_copy(update={"quality": config.quality.model_copy(update={"judge": settings})})
    store.lock()
    try:
        jobs = [job for job in scan_run(run_dir).jobs if job.status == "accepted" or job.reason == "low_quality"]
        store.open_judgements()
        # Scores a build's judge left in the job records are kept in judgements.jsonl before a status change
        # below writes another judge's into the records: whichever judge runs next finds its own.
        tally = asyncio.run(_score(config, judge, store, jobs))
        if tally.interrupted:  # statuses and quality.json wait for the run that judges the rest
            _say(f"Interrupted: {tally.judged} samples judged now, {len(tally.todo) - tally.judged - tally.failed} "
                 "left; everything judged is saved. Run the same command again to judge the rest.")
            return 130
        changed = _apply(store, judge, jobs, tally.scored) if judge.filters else 0
        store.set_active_judge(judge.key, judge.model, settings.min_score, settings.min_dimension)
        previous = store.saved_report()  # what only a build knows is kept
        report = replace(run_report(store.jobs_path), skipped_instructions=previous.get("skipped_instructions"),
                         synthesis=previous.get("synthesis"))
        store.save_report(report.as_record())
    finally:
        store.close()
    failed = tally.failed
    print(f"Judge {judge.key}: {tally.judged} samples judged now, {len(jobs) - len(tally.todo)} already judged, "
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


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class _Tally:
    scored: dict[JobKey, JudgementRecord]  # this judge's judgements, by job
    todo: list[Job]  # the jobs it had not judged before this run
    judged: int = 0  # of those, judged now
    failed: int = 0
    interrupted: bool = False


async def _score(config: BuildConfig, judge: QualityJudge, store: RunStore, jobs: list[Job]) -> _Tally:
    """Judge the jobs this judge has not scored, until done or Ctrl-C."""
    shutdown = Shutdown(config.engine.shutdown_grace_s, _say, starting="judgements")  # Ctrl-C caught from here
    known = {(record.key, record.judge) for record in judgement_records(store.run_dir)}
    with store.jobs_path.open("rb") as fh:
        for job in jobs:  # scores of the build's own judge, in the job records: kept before any record changes
            if job.recorded_judge and (job.key, job.recorded_judge) not in known:
                record = job_at(fh, job.offset)
                if record.quality_scores is None:
                    continue
                await store.append_judgement(JudgementRecord(
                    seq=job.seq, sample=job.sample, id=record.id, **{k: getattr(record, k) for k in JUDGED_FIELDS},
                    from_build=True))
    scored = read_judgements(store.run_dir, judge.key)
    tally = _Tally(scored, [job for job in jobs if job.key not in scored])
    await _judge_all(config, judge, store, tally, shutdown)
    tally.interrupted = shutdown.requested
    return tally


async def _judge_all(config: BuildConfig, judge: QualityJudge, store: RunStore, tally: _Tally,
                     shutdown: Shutdown) -> None:
    """Judge `tally.todo` with up to max_jobs requests in flight; each judgement is fsync'd before it counts. Ctrl-C
    starts no more and gives those in flight engine.shutdown_grace_s to finish and be stored."""
    engine = config.engine
    queue = list(reversed(tally.todo))
    workers: dict[int, asyncio.Task] = {}
    stop = Drain(workers)
    shutdown.attach(stop)

    async def worker(send: Send) -> None:
        with store.jobs_path.open("rb") as fh:
            while queue and not stop.requested:
                job = queue.pop()
                record = job_at(fh, job.offset)
                try:
                    judgement, step = await judge.judge(send, record.prompt, record.text)
                except JudgeFailed as exc:
                    tally.failed += 1
                    print(f"{record.id}: {exc}", file=sys.stderr)
                    continue
                line = judge.record(job.key, record.id, judgement, step)
                await store.append_judgement(line)
                tally.scored[job.key] = line
                tally.judged += 1

    async def run(send: Send) -> None:
        workers.update(enumerate(asyncio.create_task(worker(send))
                                 for _ in range(min(engine.max_jobs, len(tally.todo)))))
        try:
            await asyncio.gather(*workers.values())
        except asyncio.CancelledError:  # the grace period ran out: what was still in flight is asked next time
            if not stop.requested:
                raise
        finally:
            await stop.close()

    if not tally.todo or stop.requested:
        return
    async with judge_endpoint(config) as own:
        if own is not None:
            await run(own)
            return
    # The judge shares the build's backend (perhaps a local model).
    async with open_backend(config.backend, engine.max_jobs, engine.request_timeout_s) as backend:
        await run(guarded_send(backend, engine))  # a dead endpoint: one line, not one per sample


def _apply(store: RunStore, judge: QualityJudge, jobs: list[Job], scored: dict[JobKey, JudgementRecord]) -> int:
    """Re-apply the judge's bar: a job whose status changes (accepted <-> low_quality) gets a new last record,
    appended to jobs.jsonl (the last record of a job wins; nothing is rewritten)."""
    changed = []
    with store.jobs_path.open("rb") as fh:
        for job in jobs:
            judgement = scored.get(job.key)
            if judgement is None:
                continue
            verdict = judge.verdict(Judgement(scores=judgement.quality_scores))
            if verdict.status == job.status:
                continue
            record = replace(job_at(fh, job.offset), status=verdict.status, reason=verdict.reason,
                             detail=verdict.detail)
            changed.append(record.judged(judgement))
    if changed:
        async def append() -> None:
            store.open_logs()
            for record in changed:
                await store.append_job(record)

        asyncio.run(append())
    return len(changed)
