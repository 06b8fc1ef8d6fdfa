"""The engine's scheduling: how many jobs and requests it keeps in flight."""

from longwriter_data.cli import main
from longwriter_data.testing.fake_server import FakeServerProcess
from tests.conftest import write_config, write_pool


def build(config) -> int:
    return main(["build", "--config", str(config), "--no-progress"])


def test_engine_keeps_max_jobs_requests_in_flight_and_never_more(tmp_path):
    pool = write_pool(tmp_path / "pool.jsonl", [f"Write about item {i}. [[words=200]]" for i in range(500)])
    with FakeServerProcess(latency=0.3) as server:
        config = write_config(tmp_path, server.base_url, pool, target=500, engine={"max_jobs": 200},
                              filters={"min_words": 0})
        assert build(config) == 0
        stats = server.stats()
    assert stats["requests"] == 1000  # a plan and one paragraph per job
    assert stats["max_in_flight"] == 200


def test_jobs_cancelled_beyond_the_cutoff_while_their_record_was_written_count_in_this_run(tmp_path, server, capsys):
    """With many jobs finishing at once, the target is met while later jobs' records are being written; those jobs
    are cancelled, but their records are on disk (they count on resume and in report.json), so they count in this
    run's summary and the progress figures too."""
    import json

    from longwriter_data.build import build as run_build

    pool = write_pool(tmp_path / "pool.jsonl", [f"Write a 2400-word essay about topic {i}." for i in range(400)])
    config = write_config(tmp_path, server.base_url, pool, target=6, engine={"max_jobs": 200, "max_retries": 1})
    seen = {}
    assert run_build(config, progress=False, on_engine_done=lambda summary: seen.update(summary.finished)) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "jobs.jsonl").read_text().splitlines()]
    assert len(records) >= 6
    assert sum(seen.values()) == len(records) and seen["accepted"] == sum(r["status"] == "accepted" for r in records)
    out = capsys.readouterr().out
    assert f"{seen['accepted']} accepted, 0 rejected, 0 failed in this run" in out
