"""The scheduler: many AgentWrite jobs at once on one event loop, each strictly sequential inside.

Instructions are drawn as slots free up (memory does not grow with the pool or the target). The run stops when
`target` samples are accepted or the pools run dry. The dataset is the first `target` accepted jobs in draw
order; once that set is known, in-flight jobs that can no longer enter it are cancelled (their finished steps
stay on disk), so an interrupted-and-resumed run ends with exactly the samples of an uninterrupted one.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

import numpy as np

from .agentwrite import AgentWrite, JobFailed, NotSelected
from ..child_processes import die_with_parent
from ..config import BuildConfig, FiltersConfig, GenerationConfig, JudgeConfig, LlmSelect
from ..quality.dedupe import SHINGLE_HASH, NearDuplicates, decode, encode, from_values
from ..quality.filters import Sample, Verdict, judge_and_sign
from .judging import JudgeFailed, QualityJudge
from ..pools.instructions import Instruction
from .status import StatusTracker
from .stop import Drain
from ..records import JobKey, JobRecord, StepRecord, Usage
from ..store import RunState, RunStore
from .replay import Steps


@dataclass
class BuildSummary:
    """How the engine ended, and the jobs this run finished per status: the status tracker's own counter, read
    through here (the whole run directory's counts are in the tracker and report.json)."""

    finished: Mapping[str, int] = field(default_factory=Counter)
    interrupted: bool = False
    exhausted: bool = False  # the pools ran dry

    @property
    def accepted(self) -> int:
        return self.finished.get("accepted", 0)

    @property
    def rejected(self) -> int:
        return self.finished.get("rejected", 0)

    @property
    def failed(self) -> int:
        return self.finished.get("failed", 0)


@dataclass(frozen=True)
class EngineSettings:
    """What the engine uses of a recipe: how many samples, how many jobs at once, what to write and how to judge."""

    target: int
    max_jobs: int
    model: str
    generation: GenerationConfig
    filters: FiltersConfig
    plan_model: str | None = None
    selector: LlmSelect | None = None  # pools.llm_select
    judge: JudgeConfig | None = None  # quality.judge
    judge_processes: int | None = None  # None: 2 from 64 jobs at once on, else judging runs in a thread
    samples: int = 1  # jobs per instruction: generation.samples_per_instruction

    @classmethod
    def of(cls, config: BuildConfig) -> EngineSettings:
        return cls(target=config.target, max_jobs=config.engine.max_jobs, model=config.backend.model,
                   generation=config.generation, filters=config.filters, plan_model=config.backend.plan_model,
                   selector=config.pools.llm_select, judge=config.quality.judge,
                   judge_processes=config.engine.judge_processes,
                   samples=config.generation.samples_per_instruction)


class Engine:
    def __init__(self, settings: EngineSettings, store: RunStore, state: RunState, send, status: StatusTracker,
                 judge_send=None):
        self.settings = settings
        self.samples = settings.samples
        self.store = store
        self.state = state
        self.status = status  # the live figures: this engine reports its jobs there (requests are counted by `send`)
        self._send = send
        self.agent = AgentWrite(settings.generation, settings.model, settings.plan_model, settings.selector)
        judge = settings.judge  # the LLM judge, when the recipe has one: on its own endpoint or the backend's
        self.quality = QualityJudge(judge, settings.model, settings.generation.step_attempts) if judge else None
        self._judge_send = judge_send or send
        self.summary = BuildSummary(finished=status.run)
        self.accepted = [key for key, status in state.status.items() if status == "accepted"]
        self._outputs: NearDuplicates | None = None  # built when the first sample is judged: see _output_index
        processes = settings.judge_processes
        if processes is None:
            processes = 2 if settings.max_jobs >= 64 else 0
        self._judges = _judge_processes(processes) if processes else None
        self.in_flight: dict[JobKey, asyncio.Task] = {}  # every unfinished job, judged or not
        self.stop = Drain(self.in_flight)  # Ctrl-C: build's handler calls self.stop.request_stop
        self.generating: set[JobKey] = set()  # ... of which these still send requests: at most max_jobs
        self._finished: asyncio.Queue | None = None  # (job, task) when a job ends; (job, None) when it stops sending
        self._writing: set[asyncio.Future] = set()  # job records being written

    async def run(self, instructions: Iterator[Instruction]) -> BuildSummary:
        self._finished = finished = asyncio.Queue()
        target, max_jobs = self.settings.target, self.settings.max_jobs
        resumed = self._resumed()
        resumed_jobs = iter(resumed.items())
        drawn = self._jobs(instructions, resumed)
        upcoming: tuple[JobKey, Instruction] | None = None
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
                    key, instruction = upcoming
                    cutoff = self._cutoff(target)
                    if cutoff is not None and key > cutoff:
                        if key in resumed:  # out of draw order: later ones may still be needed
                            upcoming = None
                            continue
                        break  # the dataset is known: later jobs cannot enter it
                    task = asyncio.create_task(self._job(key, instruction))
                    self.in_flight[key] = task
                    self.status.job_started()
                    self.generating.add(key)
                    task.add_done_callback(lambda t, key=key: finished.put_nowait((key, t)))
                    upcoming = None
                if not self.in_flight:
                    break
                key, task = await finished.get()
                self.generating.discard(key)
                if task is None:
                    continue
                del self.in_flight[key]
                self.status.job_ended()
                if task.cancelled():  # its record, if it was being written, is counted all the same (_recorded)
                    continue
                error = task.exception()
                if error is not None:
                    raise error
                if len(self.accepted) >= target:
                    self._cancel_beyond_cutoff(target)
        finally:
            self.summary.interrupted = self.stop.requested
            await self.stop.close()
            # Records of jobs cancelled while they were being written: on disk, and counted, before the run ends.
            await asyncio.gather(*self._writing, return_exceptions=True)
            if self._judges:
                self._judges.shutdown(wait=False, cancel_futures=True)  # not on the event loop: Ctrl-C stays live
        return self.summary

    def _jobs(self, instructions: Iterator[Instruction],
              resumed: dict[JobKey, Instruction]) -> Iterator[tuple[JobKey, Instruction]]:
        """The jobs of the drawn instructions, in draw order: each sample of each instruction, less those finished
        or resumed."""
        done = self.state.status
        for instruction in instructions:
            for sample in range(self.samples):
                key = JobKey(instruction.seq, sample)
                if key not in done and key not in resumed:
                    yield key, instruction

    def _resumed(self) -> dict[JobKey, Instruction]:
        """Jobs a killed build left half done, from the instruction their first step stored: they are started
        before the draw is replayed, so a resumed build of thousands of samples sends requests at once."""
        stored = self.state.instructions
        return {key: Instruction.from_record(key.seq, stored[key]) for key in sorted(self.state.steps) if key in stored}

    def _cutoff(self, target: int) -> JobKey | None:
        """The target-th accepted job in draw order, once there are that many: the dataset's last row. Jobs
        before it must still finish (they may displace it); jobs after it cannot matter."""
        if len(self.accepted) < target:
            return None
        return heapq.nsmallest(target, self.accepted)[-1]

    def _cancel_beyond_cutoff(self, target: int) -> None:
        cutoff = self._cutoff(target)
        for key, task in self.in_flight.items():
            if key > cutoff:
                task.cancel()

    def _recorded(self, record: JobRecord, written: asyncio.Future) -> None:
        """Count a job once its record is on disk: also when the job was cancelled (beyond the dataset's cutoff)
        while the record was being written, as the record counts on resume and in report.json."""
        if written.cancelled() or written.exception() is not None:
            return
        if record.status == "accepted":
            self.accepted.append(record.key)
        self.status.job_recorded(record.status, record.word_count or 0)

    def _output_index(self) -> NearDuplicates:
        """The accepted outputs' MinHash index, built from the run directory's signatures on first use: a resumed
        run of thousands of samples sends its first requests before it pays for this."""
        if self._outputs is None:
            self._outputs = NearDuplicates(self.settings.filters.near_duplicate_threshold)
            for encoded in self.state.signatures:
                self._outputs.add(decode(encoded))
        return self._outputs

    async def _judge(self, sample: Sample) -> tuple[Verdict, list[int], np.ndarray | None]:
        """Filters and MinHash cost ~10-100 ms of CPU per sample: off the event loop, so requests keep flowing."""
        sign = SHINGLE_HASH if self.settings.filters.near_duplicate_threshold is not None else None
        work = (judge_and_sign, sample, self.settings.filters, sign)
        if self._judges:
            try:
                return await asyncio.get_running_loop().run_in_executor(self._judges, *work)
            except BrokenProcessPool:  # the worker was killed (a signal to the whole group, the OOM killer)
                self._judges = None
        return await asyncio.to_thread(*work)

    def _deduplicate(self, verdict: Verdict, values: np.ndarray | None, record: JobRecord) -> Verdict:
        """Near-duplicate outputs against everything accepted so far (on the event loop: one index, no races)."""
        if values is None:
            return verdict
        minhash = from_values(values)
        if self._output_index().check_and_add(minhash):
            return Verdict("rejected", "near_duplicate_output", "an accepted sample is nearly the same")
        record.minhash = encode(minhash)
        return verdict

    async def _job(self, key: JobKey, instruction: Instruction) -> JobRecord:
        """Run one job (one sample of an instruction) to its final record, which is on disk before the job counts."""
        def save(step: StepRecord) -> Awaitable[None]:  # the selection question or the plan: the job's first step
            return self.store.append_step(key, step, instruction.to_record() if step.step <= 0 else None)

        stored = self.state.steps.pop(key, {})
        ask = Steps(self._send, self.settings.generation.step_attempts, stored, save, key.sample)
        record = JobRecord(
            seq=instruction.seq, sample=key.sample, id=instruction.id, status="failed", prompt=instruction.prompt,
            lang=instruction.lang, type=instruction.type, required=instruction.required,
            length_injected=instruction.injected, pool=instruction.pool, model=self.settings.model,
            plan_model=self.settings.plan_model or self.settings.model)
        started = time.monotonic()
        try:
            try:
                result = await self.agent.run(instruction, ask)
            finally:
                self._finished.put_nowait((key, None))
        except JobFailed as exc:
            record.reason, record.detail, record.usage = exc.reason, str(exc), ask.paid
        except NotSelected as exc:
            record.status, record.reason, record.detail = "rejected", "llm_selector", str(exc)
            record.usage = ask.paid
        else:
            written = Sample(prompt=instruction.prompt, lang=instruction.lang, required=instruction.required,
                             paragraphs=result.paragraphs, planned_words=result.plan.total_words)
            verdict, paragraph_words, values = await self._judge(written)
            judged = None
            judge_ask = Steps(self._judge_send, ask.attempts, stored, save, key.sample)
            if verdict.status == "accepted" and self.quality is not None:  # only what passed the cheap filters
                try:
                    judgement, judged = await self.quality.step(judge_ask, instruction.prompt, written.text)
                except JudgeFailed as exc:
                    verdict = Verdict("failed", exc.reason, str(exc))
                else:
                    verdict = self.quality.verdict(judgement)
                    record = record.judged(self.quality.record(key, record.id, judgement, judged))
            verdict = self._deduplicate(verdict, values if verdict.status == "accepted" else None, record)
            # Every call the job asked (answers asked again, the selection, the judge's: its thinking too) is paid.
            usage = Usage()
            usage += ask.paid
            usage += judge_ask.paid
            steps = [*result.steps, *([judged] if judged is not None else [])]
            record = replace(
                record,
                status=verdict.status,
                reason=verdict.reason,
                detail=verdict.detail,
                plan=[{"main_point": s.main_point, "words": s.words} for s in result.plan.steps],
                paragraphs=result.paragraphs,
                paragraph_words=paragraph_words,
                planned_words=result.plan.total_words,
                word_count=sum(paragraph_words),  # the joining blank lines hold no words
                usage=usage,
                seconds=round(sum(s.seconds for s in steps), 3),
            )
        record.wall_seconds = round(time.monotonic() - started, 3)
        written = asyncio.ensure_future(self.store.append_job(record))
        written.add_done_callback(functools.partial(self._recorded, record))
        self._writing.add(written)
        written.add_done_callback(self._writing.discard)
        await asyncio.shield(written)  # cancelling the job now leaves its record to be written, and counted
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
