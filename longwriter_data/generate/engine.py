"""The scheduler: many AgentWrite jobs at once on one event loop, each strictly sequential inside.

Instructions are drawn as slots free up (memory does not grow with the pool or the target). The run stops when
`target` samples are accepted or the pools run dry. The dataset is the first `target` accepted jobs in draw
order; once that set is known, in-flight jobs that can no longer enter it are cancelled (their finished steps
stay on disk), so an interrupted-and-resumed run ends with exactly the samples of an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import heapq
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

import numpy as np

from .agentwrite import AgentWrite, JobFailed, NotSelected
from ..child_processes import die_with_parent
from ..config import BuildConfig
from ..quality.dedupe import SHINGLE_HASH, NearDuplicates, decode, encode, from_values
from ..quality.filters import Sample, Verdict, judge_and_sign
from .judging import JudgeFailed, QualityJudge
from ..pools.instructions import Instruction
from .status import StatusTracker
from .stop import Drain
from ..store import RunState, RunStore, Usage


@dataclass
class BuildSummary:
    """What this run did (jobs it finished, tokens it paid for); the whole run directory's counts are in the status
    tracker and report.json."""

    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)
    words: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    interrupted: bool = False
    exhausted: bool = False


class Engine:
    def __init__(self, config: BuildConfig, store: RunStore, state: RunState, send, status: StatusTracker,
                 shingle_hash: str = SHINGLE_HASH, judge_send=None):
        self.config = config
        self.shingle_hash = shingle_hash  # how this run's output MinHashes are made (see dedupe.run_shingle_hash)
        self.store = store
        self.state = state
        self.status = status  # the live figures: this engine reports its jobs there (requests are counted by `send`)
        self.agent = AgentWrite(send, config.generation, config.backend.model, config.backend.plan_model,
                                config.pools.llm_select)
        judge = config.quality.judge  # the LLM judge, when the recipe has one: on its own endpoint or the backend's
        self.quality = QualityJudge(judge, config.backend.model, config.generation.step_attempts) if judge else None
        self._judge_send = judge_send or send
        self.summary = BuildSummary()
        self.accepted_seqs = [seq for seq, status in state.status.items() if status == "accepted"]
        self._outputs: NearDuplicates | None = None  # built when the first sample is judged: see _output_index
        processes = config.engine.judge_processes
        if processes is None:
            processes = 2 if config.engine.max_jobs >= 64 else 0
        self._judges = _judge_processes(processes) if processes else None
        self.in_flight: dict[int, asyncio.Task] = {}  # every unfinished job, judged or not
        self.stop = Drain(self.in_flight)  # Ctrl-C: build's handler calls self.stop.request_stop
        self.generating: set[int] = set()  # ... of which these still send requests: at most max_jobs
        self._finished: asyncio.Queue | None = None  # (seq, task) when a job ends; (seq, None) when it stops sending

    async def run(self, instructions: Iterator[Instruction]) -> BuildSummary:
        self._finished = finished = asyncio.Queue()
        target, max_jobs = self.config.target, self.config.engine.max_jobs
        resumed = self._resumed()
        resumed_jobs = iter(resumed.values())
        drawn = (inst for inst in instructions if inst.seq not in self.state.status and inst.seq not in resumed)
        upcoming: Instruction | None = None
        replayed = not (self.state.status or resumed)  # a resumed run's first draw replays every finished job's
        if self._judges:
            self._judges.submit(int)  # start a worker now: its imports overlap the first round of requests
        try:
            while True:
                # A job being judged sends nothing: its slot goes to a new job (up to max_jobs more waiting to be judged).
                while (not self.stop.requested and len(self.generating) < max_jobs
                       and len(self.in_flight) < 2 * max_jobs):
                    upcoming = upcoming or next(resumed_jobs, None)
                    if upcoming is None and not replayed:
                        # In a thread, so the resumed jobs' requests leave while this takes a second or more.
                        upcoming = await asyncio.to_thread(next, drawn, None)
                        replayed = True
                        continue
                    upcoming = upcoming or next(drawn, None)
                    if upcoming is None:
                        self.summary.exhausted = True
                        break
                    cutoff = self._cutoff(target)
                    if cutoff is not None and upcoming.seq > cutoff:
                        if upcoming.seq in resumed:  # out of draw order: later ones may still be needed
                            upcoming = None
                            continue
                        break  # the dataset is known: later jobs cannot enter it
                    task = asyncio.create_task(self._job(upcoming))
                    self.in_flight[upcoming.seq] = task
                    self.status.job_started()
                    self.generating.add(upcoming.seq)
                    task.add_done_callback(lambda t, seq=upcoming.seq: finished.put_nowait((seq, t)))
                    upcoming = None
                if not self.in_flight:
                    break
                seq, task = await finished.get()
                self.generating.discard(seq)
                if task is None:
                    continue
                del self.in_flight[seq]
                if task.cancelled():
                    self.status.job_ended()
                    continue
                error = task.exception()
                if error is not None:
                    raise error
                self._count(task.result())
                if len(self.accepted_seqs) >= target:
                    self._cancel_beyond_cutoff(target)
        finally:
            self.summary.interrupted = self.stop.requested
            await self.stop.close()
            if self._judges:
                self._judges.shutdown(wait=False, cancel_futures=True)  # not on the event loop: Ctrl-C stays live
        return self.summary

    def _resumed(self) -> dict[int, Instruction]:
        """Jobs a killed build left half done, from the instruction their first step stored: they are started
        before the draw is replayed, so a resumed build of thousands of samples sends requests at once."""
        resumed = {}
        for seq in sorted(self.state.steps):
            stored = next((s["instruction"] for s in self.state.steps[seq].values() if "instruction" in s), None)
            if stored is not None:
                resumed[seq] = Instruction.from_record(seq, stored)
        return resumed

    def _cutoff(self, target: int) -> int | None:
        """The draw position of the target-th accepted job, once there are that many: the dataset's last row.
        Jobs before it must still finish (they may displace it); jobs after it cannot matter."""
        if len(self.accepted_seqs) < target:
            return None
        return heapq.nsmallest(target, self.accepted_seqs)[-1]

    def _cancel_beyond_cutoff(self, target: int) -> None:
        cutoff = self._cutoff(target)
        for seq, task in self.in_flight.items():
            if seq > cutoff:
                task.cancel()

    def _count(self, record: dict) -> None:
        summary = self.summary
        status = record["status"]
        setattr(summary, status, getattr(summary, status) + 1)
        if status == "accepted":
            self.accepted_seqs.append(record["seq"])
        else:
            summary.reasons[record["reason"]] += 1
        summary.words += record.get("word_count", 0)
        usage = record.get("usage", {})
        summary.prompt_tokens += usage.get("prompt_tokens", 0)
        summary.completion_tokens += usage.get("completion_tokens", 0)
        summary.requests += usage.get("requests", 0)
        self.status.job_ended(status, record.get("word_count", 0))

    def _output_index(self) -> NearDuplicates:
        """The accepted outputs' MinHash index, built from the run directory's signatures on first use: a resumed
        run of thousands of samples sends its first requests before it pays for this."""
        if self._outputs is None:
            self._outputs = NearDuplicates(self.config.filters.near_duplicate_threshold)
            for encoded in self.state.signatures:
                self._outputs.add(decode(encoded))
        return self._outputs

    async def _judge(self, sample: Sample) -> tuple[Verdict, list[int], np.ndarray | None]:
        """Filters and MinHash cost ~10-100 ms of CPU per sample: off the event loop, so requests keep flowing."""
        sign = self.shingle_hash if self.config.filters.near_duplicate_threshold is not None else None
        work = (judge_and_sign, sample, self.config.filters, sign)
        if self._judges:
            try:
                return await asyncio.get_running_loop().run_in_executor(self._judges, *work)
            except BrokenProcessPool:  # the worker was killed (a signal to the whole group, the OOM killer)
                self._judges = None
        return await asyncio.to_thread(*work)

    def _deduplicate(self, verdict: Verdict, values: np.ndarray | None, record: dict) -> Verdict:
        """Near-duplicate outputs against everything accepted so far (on the event loop: one index, no races)."""
        if values is None:
            return verdict
        minhash = from_values(values)
        if self._output_index().check_and_add(minhash):
            return Verdict("rejected", "near_duplicate_output", "an accepted sample is nearly the same")
        record["minhash"] = encode(minhash)
        return verdict

    async def _job(self, instruction: Instruction) -> dict:
        """Run one job to its final record, which is on disk before the job counts."""
        done = self.state.steps.pop(instruction.seq, {})

        async def save_step(record: dict) -> None:
            if record["step"] <= 0:  # the selection question or the plan: the job's first step on disk
                record = {**record, "instruction": instruction.to_record()}
            await self.store.steps.append({"seq": instruction.seq, **record})

        record = {
            "seq": instruction.seq,
            "id": instruction.id,
            "status": "failed",
            "minhash": None,  # an accepted output's signature, set by _deduplicate: near the head, read on resume
            "reason": None,
            "prompt": instruction.prompt,
            "lang": instruction.lang,
            "type": instruction.type,
            "required_length": instruction.required.target if instruction.required else None,
            "required": instruction.required.as_record() if instruction.required else None,  # kind, target, bounds
            "length_injected": instruction.injected,
            "pool": instruction.pool,
            "model": self.config.backend.model,
            "plan_model": self.config.backend.plan_model or self.config.backend.model,
        }
        started = time.monotonic()
        try:
            try:
                result = await self.agent.run(instruction, done, save_step)
            finally:
                self._finished.put_nowait((instruction.seq, None))
        except JobFailed as exc:
            record["reason"] = exc.reason
            record["detail"] = str(exc)
        except NotSelected as exc:
            record.update(status="rejected", reason="llm_selector", detail=str(exc))
        else:
            sample = Sample(prompt=instruction.prompt, lang=instruction.lang, required=instruction.required,
                            paragraphs=result.paragraphs, planned_words=result.plan.total_words)
            verdict, paragraph_words, values = await self._judge(sample)
            judged = None
            if verdict.status == "accepted" and self.quality is not None:  # only what passed the cheap filters
                try:
                    judgement, judged = await self.quality.step(self._judge_send, instruction.prompt, sample.text,
                                                                done, save_step)
                except JudgeFailed as exc:
                    verdict = Verdict("failed", exc.reason, str(exc))
                else:
                    verdict = self.quality.verdict(judgement)
                    record.update(self.quality.fields(judgement, judged))
            verdict = self._deduplicate(verdict, values if verdict.status == "accepted" else None, record)
            usage = Usage()
            for step in result.steps:
                usage.add(step, requests=1)
            record.update(
                status=verdict.status,
                reason=verdict.reason,
                detail=verdict.detail,
                plan=[{"main_point": s.main_point, "words": s.words} for s in result.plan.steps],
                paragraphs=result.paragraphs,
                paragraph_words=paragraph_words,
                planned_words=result.plan.total_words,
                word_count=sum(paragraph_words),  # the joining blank lines hold no words
                usage=usage.as_dict(),
                seconds=round(sum(s["seconds"] for s in result.steps), 3),
            )
            if judged is not None:  # the judge's call is paid like the writing's
                for name in ("prompt_tokens", "completion_tokens", "cached_tokens"):
                    record["usage"][name] += judged.get(name, 0)
                record["usage"]["requests"] += 1
                record["seconds"] = round(record["seconds"] + judged["seconds"], 3)
        record["wall_seconds"] = round(time.monotonic() - started, 3)
        await self.store.jobs.append(record)
        return record


def _judge_processes(count: int) -> ProcessPoolExecutor:
    """Worker processes for judging samples: fresh interpreters (forking a process that runs threads is unsafe)
    that leave signals sent to the whole process group to the build, and die with it even when it is killed
    outright (SIGKILL: they ignore SIGTERM). A worker killed anyway is replaced by a thread (see _judge)."""
    return ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"), initializer=_judge_worker,
                               initargs=(os.getpid(),))


def _judge_worker(parent_pid: int) -> None:
    """Set up a judging worker. It runs below the build's priority: the event loop sends the requests, the
    critical path, and a sample that waits a moment to be judged holds no request slot."""
    die_with_parent(parent_pid, signal.SIGKILL, (signal.SIGINT, signal.SIGTERM))
    os.nice(10)
