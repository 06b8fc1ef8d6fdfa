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
