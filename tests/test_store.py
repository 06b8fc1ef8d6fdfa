"""The run directory's store: job heads read without parsing whole records, when a run is complete."""

from __future__ import annotations

import json

import pytest


@pytest.mark.parametrize(
    "status, target, complete",
    [
        ({0: "accepted", 1: "accepted"}, 2, True),
        ({0: "accepted"}, 2, False),
        ({0: "accepted", 2: "accepted"}, 2, False),  # job 1 was in flight when the run died: it may displace job 2
        ({0: "accepted", 1: "rejected", 2: "accepted", 5: "accepted"}, 2, True),  # later jobs do not matter
        ({1: "accepted", 2: "accepted", 3: "failed"}, 2, False),
    ],
)
def test_a_run_is_complete_only_when_no_earlier_job_can_change_the_dataset(status, target, complete):
    from longwriter_data.store import RunState

    assert RunState(status=status).complete(target) is complete


def test_job_heads_read_the_minhash_at_the_head_and_in_records_of_older_versions(tmp_path):
    from longwriter_data.store import job_heads

    path = tmp_path / "jobs.jsonl"
    lines = [
        {"seq": 0, "id": "a", "status": "accepted", "minhash": "AAAA", "paragraphs": ["x" * 100]},
        {"seq": 1, "id": 'b"q', "status": "rejected", "minhash": None, "reason": "too_short"},
        {"seq": 2, "id": "c", "status": "accepted", "paragraphs": ['"minhash":"fake"'], "minhash": "BBBB"},  # older
        {"status": "failed", "seq": 3, "id": "d"},  # keys in another order: parsed whole
    ]
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in lines))
    assert list(job_heads(path)) == [(0, "accepted", "AAAA"), (1, "rejected", None), (2, "accepted", "BBBB"),
                                     (3, "failed", None)]
