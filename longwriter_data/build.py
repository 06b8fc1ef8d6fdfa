"""`build`: validate the recipe, open (or resume) the run directory, synthesize instructions when the recipe asks
for them, run the engine, export the dataset."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from .backends.factory import check_backend, open_backend
from .config import BuildConfig, config_drift, load_config
from .quality.dedupe import SignatureCache
from .generate.engine import BuildSummary, Engine, EngineSettings
from .errors import UserError
from .generate.judging import judge_endpoint
from .backends.limits import Limits
from .backends.sending import guarded_send
from .publish.outdir import ExportSettings, check_replaceable, clean_stale_staging, previous_settings
from .pools.instructions import DrawSettings, PreparedPools, draw
from .generate.progress import Progress
from .generate.stop import Shutdown
from .generate.status import StatusTracker
from .redact import without_secrets
from .publish.report import RunReport, format_report, run_report
from .pools.sources import source_name
from .text import plural
from .records import RunSnapshot
from .store import RunState, RunStore, active_judge, read_judgements, synthesized_path
from .pools.synthesis import Synthesis


def _say(message: str) -> None:
    """A line on stderr that never lands on the progress bar's line: tqdm clears the bar, writes, redraws it."""
    tqdm.write(message, file=sys.stderr)
    sys.stderr.flush()


def build(config_path: str | Path, *, retry_failed: bool = False, force: bool = False, progress: bool = True,
          on_engine_done: Callable[[BuildSummary], None] | None = None) -> int:
    """Run a build to its end or to an interruption; returns the process exit status. `on_engine_done` is called
    once the engine has stopped, before the report and the export (scripts/bench_engine.py measures there)."""
    config = load_config(config_path)
    _check_before_creating(config)
    # A bad source row fails here, before anything is written to the run directory.
    with PreparedPools(config.pools) as pools:
        if not len(pools) and not config.pools.synthesize:
            dropped = ", ".join(f"{rule} {count}" for rule, count in pools.dropped.most_common())
            raise UserError(f"{config_path}: pools: no instruction is left to draw (dropped: {dropped}); "
                            "`pools --config` shows why, loosen pools.select or pools.languages.")
        for line in pools.warnings():
            _say(line)
        return _build(config, config_path, pools, retry_failed, force, progress, on_engine_done)


def _check_before_creating(config: BuildConfig) -> None:
    """Everything a build needs that can be checked without a request, checked before the run directory is
    created: a mistake found later would leave a run directory behind, recorded with the mistake in it."""
    check_backend(config.backend)
    if config.quality.judge and (endpoint := config.quality.judge.endpoint()):  # the judge's own: its key too
        check_backend(endpoint, where="quality.judge")
    store = RunStore(config.run_dir)
    store.check()
    store.saved_config()  # a damaged config.json is named now, not halfway through
    read_judgements(config.run_dir)  # ... and a damaged judgement, or quality.json, that export reads at the end
    active_judge(config.run_dir)


def _build(config: BuildConfig, config_path: str | Path, pools: PreparedPools, retry_failed: bool, force: bool,
           progress: bool, on_engine_done: Callable[[BuildSummary], None] | None) -> int:
    dataset = config.run_dir / "dataset"
    check_replaceable(dataset, config.run_dir)  # before any work: the export at the end must not be refused
    store = RunStore(config.run_dir)
    store.lock()
    try:
        clean_stale_staging(config.run_dir, dataset.name)
        # No secrets (a key written into the recipe by mistake is removed, as the dataset card removes it), and
        # the paths as the recipe wrote them.
        snapshot = RunSnapshot(recipe=without_secrets(config.as_written().model_dump(mode="json")),
                               pool_fingerprints=pools.fingerprints)
        saved = store.saved_config()
        _check_drift(store, config, saved, snapshot, force)
        minhashes = SignatureCache(store.minhash_cache_path)
        try:
            synthesis = None
            if config.pools.synthesize:  # what synthesized.jsonl already holds, derived without a request
                synthesis = Synthesis.of(config, pools, minhashes, saved)
                # fixed for the run: its instructions and draw order stay the same
                snapshot = replace(snapshot, synthesize_count=synthesis.count)
            store.save_config(snapshot)
            state = store.load_state(retry_failed=retry_failed, samples=EngineSettings.of(config).samples)
            _announce(config, state)
            skipped: Counter = Counter()
            if not state.complete(config.target):
                store.open_logs()
                with _fewer_collections(), _event_loop() as runner:
                    summary = runner.run(_run(config, store, state, pools, synthesis, skipped, minhashes, progress))
                    if on_engine_done is not None:
                        on_engine_done(summary)
            else:
                summary = BuildSummary()  # nothing to do: this run finishes no job
        finally:
            minhashes.close()
        report = run_report(store.jobs_path)
        report.skipped_instructions = dict(skipped)
        if pools.dropped["prompt_too_long"]:  # never drawn: longer than pools.max_prompt_chars or select's limit
            report.skipped_instructions["prompt_too_long"] = pools.dropped["prompt_too_long"]
        if synthesis is not None:
            report.synthesis = synthesis.report()
        store.save_report(report.as_record())
    finally:
        store.close()
    if summary.interrupted:
        _say(f"Interrupted: everything finished so far is saved. Resume with:\n"
             f"  python -m longwriter_data build --config {config_path}")
        return 130
    from .publish.export import export_run  # imports `datasets` (150 MB, 1.5 s): only once the build is done

    settings = previous_settings(dataset)  # a user's `export --format sharegpt --test-size 0.1` stays so
    rows = 0
    if report.status["accepted"] and settings is not None:
        rows = export_run(config.run_dir, dataset, fmt=settings.format, target=config.target,
                          test_size=settings.test_size, seed=config.seed)
    _print_summary(config, summary, report, rows, settings)
    status = report.status
    if status["failed"] and not status["accepted"] and not status["rejected"]:
        _say("error: every job failed (reasons above), so the run has nothing to show; fix the cause, then re-run "
             "with --retry-failed.")
        return 1
    if rows and config.export.hub_repo:  # publish the dataset just exported
        from .publish.hub import push_and_say

        push_and_say(config.run_dir, config.export.hub_repo, private=config.export.private)
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


def _check_drift(store: RunStore, config: BuildConfig, saved: RunSnapshot | None, snapshot: RunSnapshot,
                 force: bool) -> None:
    if saved is None or not _generated_anything(store, config):
        return
    old = saved.build_config().generative_view()
    new = config.generative_view()
    differences = config_drift(old, new)
    names = [source_name(source) for source in config.pools.sources]  # per source: the message names the one
    differences += [f"pools[{index}] ({names[index]}): its instructions changed"
                    for index, (before, now) in enumerate(zip(saved.pool_fingerprints, snapshot.pool_fingerprints))
                    if before != now]
    if differences and not force:
        listing = "\n  ".join(differences)
        raise UserError(
            f"{config.run_dir} was started with a different recipe; these settings change what is generated:\n"
            f"  {listing}\nUse another run_dir, restore the settings, or pass --force to continue anyway."
        )
    if differences:
        _say("--force: continuing despite recipe changes: " + "; ".join(differences))


def _generated_anything(store: RunStore, config: BuildConfig) -> bool:
    """Whether the run directory holds any answer: a build stopped by a wrong model name made none, so the
    corrected recipe is no drift."""
    paths = (store.jobs_path, store.steps_path, synthesized_path(config.run_dir))
    return any(path.is_file() and path.stat().st_size for path in paths)


def _announce(config: BuildConfig, state: RunState) -> None:
    counts = state.counts
    if state.torn:
        _say(f"Ignored a torn last record in {', '.join(state.torn)} (the previous build was killed mid-write).")
    if state.status or state.steps:
        remaining = max(0, config.target - counts["accepted"])
        _say(f"Resuming {config.run_dir}: {counts['accepted']} accepted, {counts['rejected']} rejected, "
             f"{counts['failed']} failed, {state.pending(config.target)} in progress, {remaining} remaining.")


async def _run(config: BuildConfig, store: RunStore, state: RunState, pools: PreparedPools,
               synthesis: Synthesis | None, skipped: Counter, minhashes: SignatureCache, show: bool) -> BuildSummary:
    """Inside one backend session: synthesize instructions when the recipe asks for them, then draw and write."""
    engine_config = config.engine
    shutdown = Shutdown(engine_config.shutdown_grace_s, _say)  # before the backend starts: Ctrl-C caught from here
    bar = None
    try:
        backend = open_backend(config.backend, engine_config.max_jobs, engine_config.request_timeout_s)
        async with backend, judge_endpoint(config) as judge_send:
            limits = Limits(config.engine)
            send = guarded_send(backend, engine_config, limits)
            # Synthesis's requests, the jobs' and the judge's all count in the bar's figures (cost so far included).
            status = StatusTracker(config.target, state.counts, config.prices, limits.concurrency)
            send = status.counted(send)
            judge_send = judge_send and status.counted(judge_send)
            if synthesis is not None:
                shutdown.attach(synthesis.stop)
                await synthesis.run(send)  # the same retries and budgets as the jobs' requests
                _say(synthesis.summary_line())
                if synthesis.interrupted:
                    return BuildSummary(interrupted=True)
                synthesis.add_to_pools()
            # Drawn only now: the draw order depends on every instruction, the synthesized ones included.
            instructions = draw(pools, DrawSettings.of(config), skipped=skipped, minhashes=minhashes,
                                done=state.finished_instructions())
            bar = Progress(status, enabled=show)
            engine = Engine(EngineSettings.of(config), store, state, send, status, judge_send)
            shutdown.attach(engine.stop)
            return await engine.run(instructions)
    finally:
        if bar is not None:
            bar.close()


def _print_summary(config: BuildConfig, summary: BuildSummary, report: RunReport, rows: int,
                   settings: ExportSettings | None) -> None:
    finished = summary.accepted + summary.rejected + summary.failed
    done = (f"{summary.accepted} accepted, {summary.rejected} rejected, {summary.failed} failed in this run"
            if finished else "no jobs to run in this run")
    lines = [f"Build {config.name}: {done}. Whole run directory (also in report.json):", format_report(report)]
    if summary.exhausted and report.status["accepted"] < config.target:
        lines.append(f"The pools ran dry before the target of {config.target}.")
    dataset = config.run_dir / "dataset"
    if rows:
        how = f", as {settings.describe()} like its last export" if settings != ExportSettings() else ""
        lines.append(f"Dataset ({plural(rows, 'sample')}{how}): {dataset}")
    elif settings is None:
        lines.append(f"{dataset} was left as it is: its export did not record its settings (an earlier version's, "
                     f"with a test split); export it again with `python -m longwriter_data export {config.run_dir} "
                     "--format ... --test-size ...`.")
    print("\n".join(lines), flush=True)
