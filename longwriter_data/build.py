"""`build`: validate the recipe, open (or resume) the run directory, synthesize instructions when the recipe asks
for them, run the engine, export the dataset."""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from .backend import open_backend
from .commands import push_command
from .config import BuildConfig, config_drift, load_config
from .dedupe import SignatureCache
from .engine import BuildSummary, Engine
from .errors import UserError
from .limits import Limits
from .pools import PreparedPools, draw
from .progress import Progress
from .report import format_report, plural, run_report
from .retry import RetryPolicy, complete_with_retries
from .store import RunState, RunStore
from .synthesis import Synthesis


def _say(message: str) -> None:
    """A line on stderr that never lands on the progress bar's line: tqdm clears the bar, writes, redraws it."""
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()


def build(config_path: str | Path, *, retry_failed: bool = False, force: bool = False, progress: bool = True) -> int:
    """Run a build to its end or to an interruption; returns the process exit status."""
    config = load_config(config_path)
    # A bad source row fails here, before anything is written to the run directory.
    with PreparedPools(config.pools) as pools:
        return _build(config, config_path, pools, retry_failed, force, progress)


def _build(config: BuildConfig, config_path: str | Path, pools: PreparedPools, retry_failed: bool, force: bool,
           progress: bool) -> int:
    store = RunStore(config.run_dir)
    store.lock()
    try:
        snapshot = {"config": config.model_dump(mode="json"), "pools_fingerprint": pools.fingerprint,
                    "shingle_hash": store.shingle_hash()}
        _check_drift(store, config, snapshot, force)
        store.save_config(snapshot)
        state = store.load_state(retry_failed=retry_failed)
        _announce(config, state)
        counts = state.counts
        skipped: Counter = Counter()
        minhashes = SignatureCache(store.minhash_cache_path, snapshot["shingle_hash"])
        try:
            # What synthesized.jsonl already holds, derived without a request.
            synthesis = Synthesis(config, pools, minhashes) if config.pools.synthesize else None
            if not state.complete(config.target):
                store.open_logs()
                with _fewer_collections(), _event_loop() as runner:
                    summary = runner.run(_run(config, store, state, pools, synthesis, skipped, minhashes, progress))
            else:
                summary = BuildSummary(accepted=counts["accepted"], rejected=counts["rejected"],
                                       failed=counts["failed"])
        finally:
            minhashes.close()
        report = run_report(store.jobs_path)
        report["skipped_instructions"] = dict(skipped)
        if synthesis is not None:
            report["synthesis"] = synthesis.report()
        store.save_report(report)
    finally:
        store.close()
    if summary.interrupted:
        _say(f"Interrupted: everything finished so far is saved. Resume with:\n"
             f"  python -m longwriter_data build --config {config_path}")
        return 130
    from .export import export_run  # imports `datasets` (150 MB, 1.5 s): only once the build is done

    rows = export_run(config.run_dir, config.run_dir / "dataset", target=config.target) if summary.accepted else 0
    _print_summary(config, summary, report, rows)
    if rows and config.export.hub_repo:  # publish the dataset just exported
        return push_command(config.run_dir, config.export.hub_repo, private=config.export.private)
    return 0


def _event_loop() -> asyncio.Runner:
    """uvloop's event loop where it is installed (Linux, macOS): its loop and sockets are written in C, and the
    build spends ~10% less CPU a request than on asyncio's own loop, which stays the fallback."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """The engine holds many objects for the whole build (jobs in flight, their text, indexes) and makes many
    short-lived ones per request. With CPython's default thresholds the garbage collector took ~7% of the event
    loop's time at 500 jobs in flight, in pauses of up to 0.17 s: objects alive at the start (modules, config,
    pools) are frozen out of collection, and young collections run 70 times less often (a few MB more garbage
    waits). The settings are restored when the engine ends; a caller that froze objects itself keeps them frozen."""
    thresholds, freezing = gc.get_threshold(), gc.get_freeze_count() == 0
    if freezing:
        gc.freeze()
    gc.set_threshold(50_000, 20, 10)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freezing:
            gc.unfreeze()


def _check_drift(store: RunStore, config: BuildConfig, snapshot: dict, force: bool) -> None:
    saved = store.saved_config()
    if saved is None:
        return
    old = BuildConfig.model_validate(saved["config"]).generative_view()
    old["pools_fingerprint"] = saved.get("pools_fingerprint")
    new = config.generative_view()
    new["pools_fingerprint"] = snapshot["pools_fingerprint"]
    differences = config_drift(old, new)
    if differences and not force:
        listing = "\n  ".join(differences)
        raise UserError(
            f"{config.run_dir} was started with a different recipe; these settings change what is generated:\n"
            f"  {listing}\nUse another run_dir, restore the settings, or pass --force to continue anyway."
        )
    if differences:
        _say("--force: continuing despite recipe changes: " + "; ".join(differences))


def _announce(config: BuildConfig, state: RunState) -> None:
    counts = state.counts
    if state.torn:
        _say(f"Ignored a torn last record in {', '.join(state.torn)} (the previous build was killed mid-write).")
    if state.status or state.steps:
        remaining = max(0, config.target - counts["accepted"])
        _say(f"Resuming {config.run_dir}: {counts['accepted']} accepted, {counts['rejected']} rejected, "
             f"{counts['failed']} failed, {len(state.steps)} in progress, {remaining} remaining.")


async def _run(config: BuildConfig, store: RunStore, state: RunState, pools: PreparedPools,
               synthesis: Synthesis | None, skipped: Counter, minhashes: SignatureCache, show: bool) -> BuildSummary:
    """Inside one backend session: synthesize instructions when the recipe asks for them, then draw and write."""
    engine_config = config.engine
    policy = RetryPolicy(max_retries=engine_config.max_retries, timeout_s=engine_config.request_timeout_s,
                         base_delay_s=engine_config.retry_base_delay_s, max_delay_s=engine_config.retry_max_delay_s)
    shutdown = _Shutdown(engine_config.shutdown_grace_s)  # before the backend starts: Ctrl-C is caught from here on
    bar = None
    try:
        async with open_backend(config) as backend:
            limits = Limits(config.engine)
            attempt = functools.partial(limits.call, backend.complete)
            send = functools.partial(complete_with_retries, attempt, policy=policy)
            if synthesis is not None:
                shutdown.attach(synthesis)
                await synthesis.run(send)  # the same retries and budgets as the jobs' requests
                _say(synthesis.summary_line())
                if synthesis.interrupted:
                    return BuildSummary(interrupted=True)
                synthesis.add_to_pools()
            # Drawn only now: the draw order depends on every instruction, the synthesized ones included.
            instructions = draw(pools, config.seed, config.pools.inject_length,
                                config.filters.near_duplicate_threshold, skipped, minhashes, done=state.status)
            bar = Progress(config.target, state.counts["accepted"], enabled=show, prices=config.prices)
            engine = Engine(config, store, state, send, bar, limits, minhashes.shingle_hash)
            shutdown.attach(engine)
            return await engine.run(instructions)
    finally:
        if bar is not None:
            bar.close()


class _Stoppable(Protocol):
    def request_stop(self, grace_s: float) -> None: ...


class _Shutdown:
    """First Ctrl-C (or SIGTERM) drains gracefully; a second one exits at once (everything on disk stays valid).

    It stops what runs at the time: synthesis, then the engine. A signal that arrives while the backend is still
    starting is remembered: what is attached next then starts drained."""

    def __init__(self, grace_s: float):
        self.grace_s = grace_s
        self.running: _Stoppable | None = None
        self.requested = False
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.on_signal)

    def on_signal(self) -> None:
        if self.requested:
            _say("Second interrupt: exiting now. The run stays resumable.")
            os._exit(130)
        self.requested = True
        _say(f"Stopping: no new jobs; waiting up to {self.grace_s:g}s for requests in flight "
             "(Ctrl-C again to quit now).")
        if self.running is not None:
            self.running.request_stop(self.grace_s)

    def attach(self, running: _Stoppable) -> None:
        self.running = running
        if self.requested:
            running.request_stop(self.grace_s)


def _print_summary(config: BuildConfig, summary: BuildSummary, report: dict, rows: int) -> None:
    lines = [f"Build {config.name}: {summary.accepted} accepted, {summary.rejected} rejected, {summary.failed} failed "
             f"in this run. Whole run directory (also in report.json):", format_report(report)]
    if summary.exhausted and summary.accepted < config.target:
        lines.append(f"The pools ran dry before the target of {config.target}.")
    if rows:
        lines.append(f"Dataset ({plural(rows, 'sample')}): {config.run_dir / 'dataset'}")
    print("\n".join(lines), flush=True)
