"""The run directory: every byte a build writes, durable before it counts, readable after any crash.

Layout:
  config.json   the run-directory format version, the recipe the run was started with (no secrets: keys live in
                the environment) and the pools' fingerprints
  steps.jsonl   one line per completed LLM call of a job (plan = step 0, paragraph n = step n)
  jobs.jsonl    one line per finished job: accepted, rejected or failed, with its reason
  report.json   counts per status and reason, rewritten at the end of each build
  synthesized.jsonl   one line per answered instruction-synthesis request (pools.synthesize), with what it paid
  instruction_minhashes.bin   a cache of the drawn instructions' MinHashes, so a resume re-hashes none
  judgements.jsonl  the `judge` command's quality scores (JudgementRecord), one line per sample and judge
  quality.json  the judge the `judge` command applied last: whose scores inspect and export show
  lock          held (flock) by the build using the directory
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import mmap
import os
import re
from collections import Counter
from collections.abc import Awaitable, Container, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from .errors import UserError
from .records import RUN_FORMAT, JobKey, JobRecord, JudgementRecord, RunSnapshot, StepRecord, SynthesisRecord

# Step and job records begin with their job's key, {"seq":N,"sample":N,...}, as append_step and append_job write
# them; patterns are matched at a line's start (match(map, start, end)).
_KEY = re.compile(rb'\{"seq":\s*(\d+),\s*"sample":\s*(\d+)')
# A job record begins {"seq":N,"sample":N,"id":"...","status":"...","minhash":...} (JobRecord.as_record writes those
# keys first); resume needs only that, so it reads line heads instead of parsing 60 KB records. Inside JSON strings
# quotes are escaped, so this pattern can only match the keys themselves.
_JOB_HEAD = re.compile(rb'\{"seq":(\d+),"sample":(\d+),"id":"(?:[^"\\]|\\.)*","status":"(\w+)",'
                       rb'"minhash":(?:"([A-Za-z0-9+/=]+)"|null)')
# Names a build writes into a run directory: a folder holding only these is taken for one, even without config.json
# (a build killed before writing it leaves its lock; config.json.tmp is a snapshot being written).
SYNTHESIZED = "synthesized.jsonl"
_RUN_FILES = {"lock", "config.json.tmp", "steps.jsonl", "jobs.jsonl", "report.json", "report.json.tmp",
              SYNTHESIZED, "instruction_minhashes.bin", "dataset"}


def _observed(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class GroupCommitLog:
    """An append-only JSONL file where each append returns only after its line is fsync'd.

    Appends that arrive while a write is in progress are batched into the next write: one fsync serves many
    records (group commit), so durability costs one disk flush per batch, not per record.
    """

    def __init__(self, path: Path):
        self.path = path
        self._fh = path.open("ab", buffering=0)  # unbuffered: a failed write leaves nothing queued to retry later
        self._pending: list[tuple[bytes, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def append(self, record: dict) -> None:
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        future = asyncio.get_running_loop().create_future()
        # Its awaiter may be cancelled meanwhile (the build stopping on a full disk): the error is then noted here,
        # not printed later as "Future exception was never retrieved" with a traceback.
        future.add_done_callback(_observed)
        self._pending.append((line, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await asyncio.to_thread(self._write, b"".join(line for line, _ in batch))
            except OSError as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _write(self, data: bytes) -> None:
        """All of `data`, synced, or nothing: a write cut short (disk full) is cut off the file again, so records
        written after space is freed never follow a partial line."""
        fd = self._fh.fileno()
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[self._fh.write(view):]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise

    def close(self) -> None:
        self._fh.close()


def _lines(path: Path) -> Iterator[tuple[mmap.mmap, int, int, int]]:
    """(map, start, end, line number) of each complete line of a file, found by memchr in a memory map: a
    resume matches the heads of gigabytes of records without copying them. A torn last line is left out."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        start, number = 0, 1
        while (end := mm.find(b"\n", start)) != -1:
            yield mm, start, end, number
            start, number = end + 1, number + 1


def read_jsonl(path: Path, skip: Container[JobKey] = ()) -> Iterator[dict]:
    """Records of a log; a torn last line (the process died mid-write) is skipped, never an error
    (repair_tail() cuts it before anything is appended).

    Lines of jobs in `skip` are not parsed at all: resuming a large run reads only what it needs.
    """
    for _, record in _numbered(path, skip):
        yield record


def _numbered(path: Path, skip: Container[JobKey] = ()) -> Iterator[tuple[int, dict]]:
    """(line number, record) of read_jsonl's records."""
    for mm, start, end, number in _lines(path):
        if skip:
            match = _KEY.match(mm, start, end)
            if match and (int(match.group(1)), int(match.group(2))) in skip:
                continue
        yield number, _parse(path, number, mm[start:end])


def _corrupt(path: Path, number: int, what: str) -> UserError:
    """The one error for a line of a log that is not what it should be."""
    return UserError(f"{path}:{number}: corrupt {what}; move the run directory aside or repair that line.")


def _parse(path: Path, number: int, line: bytes) -> dict:
    """One record; a line that is not a UTF-8 JSON object (bytes cut mid-character, binary garbage, another
    program's output) is one clear error, never a traceback."""
    try:
        record = json.loads(line)  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise _corrupt(path, number, "record in the middle of the log")
    return record


def parse_job(path: Path, number: int, line: bytes) -> JobRecord:
    """One jobs.jsonl record: an object with an integer `seq` and `sample`, an `id` and a `status`, or the
    corrupt-record error."""
    record = _parse(path, number, line)
    if not (isinstance(record.get("seq"), int) and isinstance(record.get("sample"), int)
            and isinstance(record.get("status"), str) and isinstance(record.get("id"), str)):
        raise _corrupt(path, number, "record (no seq, sample, id or status)")
    try:
        return JobRecord.from_record(record)
    except (TypeError, ValueError, KeyError) as exc:
        raise _corrupt(path, number, f"record ({exc})") from None


def read_steps(path: Path, skip: Container[JobKey] = ()) -> Iterator[tuple[JobKey, StepRecord, dict | None]]:
    """(job, step, the job's instruction where this step carries it) of every steps.jsonl line, less the lines of
    jobs in `skip` (not even parsed)."""
    for number, record in _numbered(path, skip):
        try:
            step = StepRecord.from_record(record)
            key = JobKey(record["seq"], record["sample"])
        except (KeyError, TypeError):
            step = None
        if step is None or not all(isinstance(value, int) for value in (*key, step.step, step.prompt_tokens,
                                                                       step.completion_tokens, step.cached_tokens,
                                                                       step.reasoning_tokens, step.requests)):
            raise _corrupt(path, number, "step record (no seq, sample, step or key, or a token count that is not a "
                                         "number)")
        yield key, step, record.get("instruction")


def job_heads(path: Path) -> Iterator[tuple[JobKey, str, str | None]]:
    """(job, status, MinHash or None) of every job record, without parsing whole records."""
    for mm, start, end, number in _lines(path):
        head = _JOB_HEAD.match(mm, start, end)
        if head is None:  # written some other way: parse it properly
            record = parse_job(path, number, mm[start:end])
            yield record.key, record.status, record.minhash
            continue
        minhash = head.group(4)
        yield (JobKey(int(head.group(1)), int(head.group(2))), head.group(3).decode(),
               minhash.decode() if minhash else None)


def repair_tail(path: Path) -> bool:
    """Cut a torn last line so that new records start on a line of their own. True if something was cut."""
    if not path.exists():
        return False
    with path.open("r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return False
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return False
        block, end = 1 << 16, size
        keep = 0
        while end > 0:
            start = max(0, end - block)
            fh.seek(start)
            chunk = fh.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            end = start
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
        return True


@dataclass
class RunState:
    """What a run directory says has been done: finished jobs by status, and steps of unfinished jobs."""

    status: dict[JobKey, str] = field(default_factory=dict)
    steps: dict[JobKey, dict[int, StepRecord]] = field(default_factory=dict)  # by step number
    instructions: dict[JobKey, dict] = field(default_factory=dict)  # of those jobs, as their first step stored it
    torn: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)  # MinHash of accepted outputs, for near-duplicate checks
    samples: int = 1  # jobs per instruction

    @property
    def counts(self) -> Counter:
        return Counter(self.status.values())

    def complete(self, target: int) -> bool:
        """True when the dataset is settled: `target` accepted jobs, and every job drawn before the last of them
        finished (a run killed after reaching the target may still owe earlier jobs that could displace it)."""
        accepted = sorted(key for key, status in self.status.items() if status == "accepted")
        if len(accepted) < target:
            return False
        cutoff = accepted[target - 1]
        return sum(1 for key in self.status if key < cutoff) == cutoff.seq * self.samples + cutoff.sample

    def pending(self, target: int) -> int:
        """Half-done jobs that a build will continue: those drawn before the dataset's last row, once `target` jobs
        are accepted (the steps of jobs cancelled beyond it stay on disk, but those jobs are not in progress)."""
        accepted = sorted(key for key, status in self.status.items() if status == "accepted")
        if len(accepted) < target:
            return len(self.steps)
        return sum(1 for key in self.steps if key < accepted[target - 1])

    def finished_instructions(self) -> set[int]:
        """Draw positions whose every sample has finished: the draw need not yield them again."""
        if self.samples == 1:
            return {key.seq for key in self.status}
        per_seq = Counter(key.seq for key in self.status)
        return {seq for seq, count in per_seq.items() if count == self.samples}


class RunStore:
    """Owns the run directory of one build: the lock, the config snapshot, the step and job logs."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.jobs_path = run_dir / "jobs.jsonl"
        self.steps_path = run_dir / "steps.jsonl"
        self.config_path = run_dir / "config.json"
        self.report_path = run_dir / "report.json"
        self.minhash_cache_path = run_dir / "instruction_minhashes.bin"
        self.judgements_path = run_dir / JUDGEMENTS
        self._lock_fh = None
        self.steps: GroupCommitLog | None = None
        self.jobs: GroupCommitLog | None = None
        self.judgements: GroupCommitLog | None = None

    def check(self) -> None:
        """Refuse, before anything is created, a run_dir that cannot be one: a file, a folder that cannot be
        written, or a folder of other files (a build writes its files there and must overwrite nothing)."""
        run_dir = self.run_dir
        if run_dir.exists() and not run_dir.is_dir():
            raise UserError(f"run_dir {run_dir} is a file, not a folder: set run_dir to a new folder.")
        existing = next(folder for folder in (run_dir, *run_dir.parents) if folder.exists())
        if not existing.is_dir():
            raise UserError(f"run_dir {run_dir}: cannot create it ({existing} is a file, not a folder).")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(f"run_dir {run_dir}: cannot create or write it ({existing} is not writable).")
        if existing == run_dir and not self.config_path.exists():
            others = sorted(p.name for p in run_dir.iterdir() if p.name not in _RUN_FILES)
            if others:
                raise UserError(f"run_dir {run_dir} is not a run directory (no config.json, and it holds "
                                f"{', '.join(others[:3])}{', ...' if len(others) > 3 else ''}): set run_dir to a "
                                "new or empty folder.")

    def lock(self) -> None:
        """Refuse a second build on the same directory; the OS drops the lock if this process dies."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fh = (self.run_dir / "lock").open("a+")
        except OSError as exc:
            raise UserError(f"run_dir {self.run_dir}: cannot create or write it ({exc.strerror}).") from None
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise UserError(f"{self.run_dir} is in use by a running build (pid {holder}); "
                            "wait for it to finish or stop it first.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_fh = fh

    def load_state(self, retry_failed: bool = False, samples: int = 1) -> RunState:
        """Repair torn tails, then read finished jobs and the steps of unfinished ones."""
        state = RunState(samples=samples)
        for path in (self.jobs_path, self.steps_path):
            if repair_tail(path):
                state.torn.append(path.name)
        for key, status, minhash in job_heads(self.jobs_path):
            state.status[key] = status
            if status == "accepted" and minhash:
                state.signatures.append(minhash)
        if retry_failed:
            state.status = {key: status for key, status in state.status.items() if status != "failed"}
        for key, step, instruction in read_steps(self.steps_path, skip=state.status):
            state.steps.setdefault(key, {})[step.step] = step
            if instruction is not None:
                state.instructions[key] = instruction
        return state

    def append_step(self, job: JobKey, step: StepRecord, instruction: dict | None = None) -> Awaitable[None]:
        """A job's completed step, durable when awaited; the job's first step carries its instruction, so a
        resumed build restarts the job before it replays the draw. (The log's own awaitable: no extra frame.)"""
        record = {"seq": job.seq, "sample": job.sample, **step.as_record()}
        if instruction is not None:
            record["instruction"] = instruction
        return self.steps.append(record)

    def append_job(self, record: JobRecord) -> Awaitable[None]:
        """A finished job's record, durable when awaited."""
        return self.jobs.append(record.as_record())

    def open_logs(self) -> None:
        self.steps = GroupCommitLog(self.steps_path)
        self.jobs = GroupCommitLog(self.jobs_path)

    def open_judgements(self) -> None:
        """judgements.jsonl for appending (the `judge` command's; under the lock), a torn last line cut first."""
        repair_tail(self.judgements_path)
        self.judgements = GroupCommitLog(self.judgements_path)

    def append_judgement(self, record: JudgementRecord) -> Awaitable[None]:
        """A judgement, durable when awaited."""
        return self.judgements.append(record.as_record())

    def set_active_judge(self, judge: str, model: str, min_score: float | None, min_dimension: dict[str, int]) -> None:
        """quality.json: the judge (and its bar) the `judge` command applied last, whose scores are shown."""
        write_atomic(self.run_dir / ACTIVE_JUDGE, json.dumps({"judge": judge, "model": model, "min_score": min_score,
                                                              "min_dimension": min_dimension}, indent=2) + "\n")

    def saved_config(self) -> RunSnapshot | None:
        """config.json, whose recipe this version can read: a command on a run directory names a damaged snapshot,
        or one another version wrote, before it does anything."""
        snapshot = read_snapshot(self.run_dir)
        if snapshot is not None:
            snapshot.build_config()
        return snapshot

    def save_config(self, snapshot: RunSnapshot) -> None:
        """config.json: the snapshot, stamped with this version's run-directory format."""
        record = replace(snapshot, format=RUN_FORMAT).as_record()
        write_atomic(self.config_path, json.dumps(record, indent=2, ensure_ascii=False))

    def saved_report(self) -> dict:
        """report.json as the last build or judge wrote it ({} where there is none, or it cannot be read: it is
        rewritten whole, from jobs.jsonl, by whoever saves it next)."""
        try:
            report = json.loads(self.report_path.read_bytes())
        except (OSError, ValueError):
            return {}
        return report if isinstance(report, dict) else {}

    def save_report(self, report: dict) -> None:
        """report.json: publish/report.RunReport's record (the store, below publish, takes it as JSON)."""
        write_atomic(self.report_path, json.dumps(report, indent=2, ensure_ascii=False))

    def close(self) -> None:
        for log in (self.steps, self.jobs, self.judgements):
            if log is not None:
                log.close()
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None


def read_snapshot(run_dir: Path) -> RunSnapshot | None:
    """config.json of a run directory, or None where there is none; the one place that reads it, so a damaged one
    is reported the same way by every command (and a recipe this version cannot read, by its build_config())."""
    path = run_dir / "config.json"
    try:
        snapshot = json.loads(path.read_bytes())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as exc:  # ValueError: empty, truncated, or not UTF-8
        reason = getattr(exc, "strerror", None) or ("empty" if not path.stat().st_size else "not complete JSON")
        raise UserError(f"{path}: damaged run snapshot ({reason}); restore it from a copy, or move the run "
                        "directory aside and start again.") from None
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("config"), dict):
        raise UserError(f"{path}: damaged run snapshot (no recipe under \"config\"); restore it from a copy, or "
                        "move the run directory aside and start again.")
    count = snapshot.get("synthesize_count")
    if not isinstance(snapshot.get("pool_fingerprints", []), list) or not (count is None or isinstance(count, int)):
        raise UserError(f"{path}: damaged run snapshot (pool_fingerprints or synthesize_count of the wrong type); "
                        "restore it from a copy, or move the run directory aside and start again.")
    written = snapshot.get("format")
    if written != RUN_FORMAT:
        if "format" in snapshot and (type(written) is not int or written < 1):
            raise UserError(f"{path}: damaged run snapshot (\"format\": {json.dumps(written)} is no format "
                            "number); restore it from a copy, or move the run directory aside and start again.")
        if "format" in snapshot and written > RUN_FORMAT:
            raise UserError(f"{path}: this run directory was written by a newer version (run-directory format "
                            f"{written}; this one reads format {RUN_FORMAT}): use that version, or upgrade.")
        by = f"format {written}" if "format" in snapshot else "an earlier development version"
        raise UserError(f"{path}: this run directory was written by {by}; this version reads run-directory "
                        f"format {RUN_FORMAT} only: build into a new run_dir.")
    return RunSnapshot.from_record(snapshot, path)


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing: a crash leaves either the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RecordCache:
    """A cache file of fixed-size binary records (instruction_minhashes.bin: see quality/dedupe.SignatureCache).
    Only a cache: a torn last record (a killed build) is cut before appending, and nothing is fsync'd."""

    def __init__(self, path: Path, size: int):
        self.path = path
        self.size = size
        self._end = path.stat().st_size // size * size if path.exists() else 0
        self._fh: BinaryIO | None = None

    def read(self) -> bytes:
        """Its whole records."""
        if not self._end:
            return b""
        with self.path.open("rb") as fh:
            return fh.read(self._end)

    def append(self, record: bytes) -> None:
        if self._fh is None:  # opened on the first new record: a resume that hashes nothing writes nothing
            self._fh = self.path.open("r+b" if self.path.exists() else "wb")
            self._fh.truncate(self._end)
            self._fh.seek(self._end)
        self._fh.write(record)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def synthesized_path(run_dir: Path) -> Path:
    return run_dir / SYNTHESIZED


def read_synthesis(run_dir: Path) -> Iterator[SynthesisRecord]:
    """Every answered synthesis request of a run directory, in file order (a torn last line left out)."""
    path = synthesized_path(run_dir)
    for mm, start, end, number in _lines(path):
        record = _parse(path, number, mm[start:end])
        try:
            synthesis = SynthesisRecord.from_record(record)
        except (KeyError, TypeError, ValueError):
            synthesis = None
        if synthesis is None or not (isinstance(synthesis.k, int) and isinstance(synthesis.instructions, list)):
            raise _corrupt(path, number, "record (no k, lang, type or instructions)")
        yield synthesis


class SynthesisLog:
    """synthesized.jsonl opened for appending (a line torn by a kill cut first); each record durable when awaited."""

    def __init__(self, run_dir: Path):
        path = synthesized_path(run_dir)
        repair_tail(path)
        self._log = GroupCommitLog(path)

    def append(self, record: SynthesisRecord) -> Awaitable[None]:
        return self._log.append(record.as_record())

    def close(self) -> None:
        self._log.close()


JUDGEMENTS = "judgements.jsonl"
ACTIVE_JUDGE = "quality.json"


def judgement_records(run_dir: Path) -> Iterator[JudgementRecord]:
    """Every judgements.jsonl line, in file order (a torn last line left out, see read_jsonl); one that is not a
    judgement is one error naming its file and line."""
    path = run_dir / JUDGEMENTS
    for mm, start, end, number in _lines(path):
        try:
            yield JudgementRecord.from_record(_parse(path, number, mm[start:end]))
        except KeyError as exc:
            raise _corrupt(path, number, f"judgement (no {exc.args[0]})") from None
        except (TypeError, ValueError) as exc:
            raise _corrupt(path, number, f"judgement ({exc})") from None


def read_judgements(run_dir: Path, judge: str | None = None) -> dict[JobKey, JudgementRecord]:
    """Judgements by job (instruction and sample), of one judge (or of any: the last line wins)."""
    return {record.key: record for record in judgement_records(run_dir) if judge is None or record.judge == judge}


def active_judge(run_dir: Path) -> str | None:
    """The judge the `judge` command applied last (None: only the build's own judge, if any, has scored)."""
    path = run_dir / ACTIVE_JUDGE
    if not path.is_file():
        return None
    try:
        judge = json.loads(path.read_bytes())["judge"]
    except (ValueError, KeyError, TypeError):
        judge = None
    if not isinstance(judge, str):
        raise UserError(f"{path}: damaged (no \"judge\"); delete it to show the build's own scores, or run `judge` "
                        "again to write it.")
    return judge


def read_jobs(path: Path) -> Iterator[JobRecord]:
    """Every job record of a jobs.jsonl, in file order (a torn last line left out, see read_jsonl)."""
    for _, record in job_records(path):
        yield record


def job_records(path: Path) -> Iterator[tuple[int, JobRecord]]:
    """(byte offset, record) of every job record, in file order: the one reader of jobs.jsonl, one record at a
    time (memory stays flat however big the run); job_at reads one again from its offset."""
    for mm, start, end, number in _lines(path):
        yield start, parse_job(path, number, mm[start:end])


def job_at(fh: BinaryIO, offset: int) -> JobRecord:
    """The job record at `offset` of an open jobs.jsonl: one that job_records read before, at that offset."""
    fh.seek(offset)
    return JobRecord.from_record(json.loads(fh.readline()))
