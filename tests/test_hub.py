"""`push` through the real huggingface_hub client against a loopback fake Hub (HF_ENDPOINT): what it uploads, that
a retry uploads nothing twice, and one clear line for each way it can fail."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi

from longwriter_data.cli import main
from longwriter_data.testing.fake_hub import FakeHubThread
from longwriter_data.testing.synthetic_run import SyntheticJob, write_run
from tests.conftest import write_config, write_pool

ESSAYS = [  # distinct enough that none is skipped as a near-duplicate instruction
    "Write a 2400-word essay on how river deltas form and why cities grow on them.",
    "Compose a 2400-word history of mechanical clocks in medieval European monasteries.",
    "Draft a 2400-word guide to keeping bees on a city rooftop through the winter.",
]

TOKEN = "hf_fake_token_for_tests_0123456789"
UPLOADED = ["README.md", "data/train-00000-of-00001.parquet", "length_histogram.png", "recipe.json"]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fresh fake Hub where TOKEN is alice's, who may also write to the `lab` org; the environment points at it."""
    with FakeHubThread({TOKEN: "alice", "hf_reader_token_0123456789": "bob"}, {"alice": ["lab"]}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        # huggingface_hub reads these once, at import: the fake Hub speaks LFS, not Xet, and no saved login counts
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-saved-token"))
        yield server


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run directory with its dataset exported (messages), copied fresh into each test that pushes it."""
    run = write_run(tmp_path_factory.mktemp("exported") / "run",
                    [SyntheticJob(words=2200, required=(2000, 2000)), SyntheticJob(words=2500, lang="zh")])
    assert main(["export", str(run)]) == 0
    return run


@pytest.fixture
def run(exported, tmp_path):
    return Path(shutil.copytree(exported, tmp_path / "run"))


def push(*args) -> int:
    return main(["push", *map(str, args)])


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_push_uploads_the_card_image_recipe_and_parquet_and_nothing_else(hub, run, capsys):
    assert push(run, "--repo-id", "lab/essays") == 0
    assert f"Pushed 4 files to {hub.endpoint}/datasets/lab/essays" in capsys.readouterr().out
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    assert api.list_repo_files("lab/essays", repo_type="dataset") == [".gitattributes", *UPLOADED]
    remote = hub.call(hub.hub.files, "lab/essays")
    folder = run / "dataset"
    for name in UPLOADED:
        assert remote[name] == (folder / name).read_bytes()
    assert 'load_dataset("lab/essays")' in remote["README.md"].decode()  # the card names where it now lives
    commits = hub.call(lambda: list(hub.hub.record.commits))
    assert [c["summary"] for c in commits] == ["initial commit", "Upload dataset with longwriter-data"]
    assert len(hub.hub.record.lfs_uploads) == 2  # the Parquet shard and the image went through LFS
    assert not api.dataset_info("lab/essays").private


def test_a_retried_push_uploads_nothing_twice(hub, run, capfd):
    assert push(run, "--repo-id", "alice/essays") == 0
    capfd.readouterr()
    assert push(run, "--repo-id", "alice/essays") == 0
    out, err = capfd.readouterr()
    url = f"{hub.endpoint}/datasets/alice/essays"
    assert out == f"{url} (revision main) already holds this export: nothing to upload.\n"
    assert err == ""  # none of huggingface_hub's own chatter ("No files have been modified...")
    commits = hub.call(lambda: [c["summary"] for c in hub.hub.record.commits])
    assert commits == ["initial commit", "Upload dataset with longwriter-data"]
    assert len(hub.hub.record.lfs_uploads) == 2


def test_a_push_whose_commit_failed_resends_no_lfs_file(hub, run, capsys):
    hub.call(setattr, hub.hub, "fail_next_commit", True)
    assert push(run, "--repo-id", "alice/essays") == 2
    assert "the Hub answered 500 while pushing to alice/essays" in error_line(capsys)
    assert list(hub.call(hub.hub.files, "alice/essays")) == [".gitattributes"]  # nothing committed
    uploaded = list(hub.hub.record.lfs_uploads)
    assert push(run, "--repo-id", "alice/essays") == 0
    assert hub.hub.record.lfs_uploads == uploaded  # the objects were already there: only the commit was redone
    assert sorted(hub.call(hub.hub.files, "alice/essays")) == [".gitattributes", *UPLOADED]


def test_a_repository_holding_other_columns_is_refused(hub, run, capsys):
    assert push(run, "--repo-id", "alice/essays") == 0
    assert main(["export", str(run), "--format", "alpaca"]) == 0
    before = hub.call(hub.hub.files, "alice/essays")
    assert push(run, "--repo-id", "alice/essays") == 2
    line = error_line(capsys)
    assert "alice/essays already holds a dataset with other columns (messages, id," in line
    assert "than this export (instruction, input, output, id," in line and "another --repo-id" in line
    assert hub.call(hub.hub.files, "alice/essays") == before


def test_a_dropped_test_split_is_deleted_from_the_repository(hub, run):
    assert main(["export", str(run), "--test-size", "0.5"]) == 0
    assert push(run, "--repo-id", "alice/essays") == 0
    assert "data/test-00000-of-00001.parquet" in hub.call(hub.hub.files, "alice/essays")
    assert main(["export", str(run)]) == 0
    assert push(run, "--repo-id", "alice/essays") == 0
    assert sorted(hub.call(hub.hub.files, "alice/essays")) == [".gitattributes", *UPLOADED]


def test_private_and_revision(hub, run):
    assert push(run, "--repo-id", "alice/essays", "--private", "--revision", "v1") == 0
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    assert api.dataset_info("alice/essays").private
    assert api.list_repo_files("alice/essays", repo_type="dataset", revision="v1") == [".gitattributes", *UPLOADED]
    assert api.list_repo_files("alice/essays", repo_type="dataset") == [".gitattributes"]


def test_a_build_with_export_hub_repo_pushes_when_it_ends(hub, server, tmp_path, capsys):
    pool = write_pool(tmp_path / "pool.jsonl", ESSAYS[:2])
    config = write_config(tmp_path, server.base_url, pool, target=2, export={"hub_repo": "lab/built", "private": True})
    assert main(["build", "--config", str(config), "--no-progress"]) == 0
    assert f"Pushed 4 files to {hub.endpoint}/datasets/lab/built" in capsys.readouterr().out
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    assert api.dataset_info("lab/built").private
    assert "data/train-00000-of-00001.parquet" in api.list_repo_files("lab/built", repo_type="dataset")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "change, message",
    [
        ("no_token", "no Hugging Face token: set HF_TOKEN or run `hf auth login`, then push again."),
        ("bad_token", "the Hub refused the token (401 Unauthorized): check HF_TOKEN"),
        ("no_rights", "the token may not write to lab/essays (403 Forbidden"),
        ("no_network", "cannot reach the Hugging Face Hub at http://127.0.0.1:"),
        ("bad_repo_id", "--repo-id 'lab/bad name!' is not a repository id; write it as ORG/NAME."),
        ("no_export", "has no exported dataset with a card yet; run `python -m longwriter_data export"),
    ],
)
def test_failures_are_one_clear_line_and_status_2(hub, run, monkeypatch, capsys, change, message):
    repo_id = "lab/essays"
    if change == "no_token":
        monkeypatch.delenv("HF_TOKEN")
    elif change == "bad_token":
        monkeypatch.setenv("HF_TOKEN", "hf_not_a_known_token_0123456789")
    elif change == "no_rights":
        monkeypatch.setenv("HF_TOKEN", "hf_reader_token_0123456789")
    elif change == "no_network":
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    elif change == "bad_repo_id":
        repo_id = "lab/bad name!"
    elif change == "no_export":
        shutil.rmtree(run / "dataset")
    assert push(run, "--repo-id", repo_id) == 2
    line = error_line(capsys)
    assert message in line
    assert "hf_" not in line.replace("hf auth", "")  # no token in what is printed
    assert hub.call(lambda: [c for c in hub.hub.record.commits if c["repo"] == repo_id]) == []


def test_the_cli_in_a_fresh_process_reads_hf_endpoint_and_hf_token_from_the_environment(hub, run, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    done = subprocess.run([sys.executable, "-m", "longwriter_data", "push", str(run), "--repo-id", "alice/cli"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"Pushed 4 files to {hub.endpoint}/datasets/alice/cli" in done.stdout
    assert sorted(hub.call(hub.hub.files, "alice/cli")) == [".gitattributes", *UPLOADED]
    written = [p for p in (run / "dataset").rglob("*") if p.is_file()] + [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(TOKEN.encode() in p.read_bytes() for p in written)  # the token is never written anywhere


def test_push_rewrites_the_card_only_of_a_folder_export_made(hub, run, tmp_path, capsys):
    """push rewrites README.md in the folder it pushes: a folder export did not write is refused, untouched."""
    folder = tmp_path / "hand-made"
    shutil.copytree(run / "dataset", folder)
    (folder / ".longwriter-export.json").unlink(missing_ok=True)
    (folder / "recipe.json").write_text(json.dumps({"format": "messages", "note": "my own recipe"}))
    (folder / "README.md").write_text("my own card")
    assert push(folder, "--repo-id", "lab/essays") == 2
    assert "neither a run directory nor a folder written by export" in error_line(capsys)
    assert (folder / "README.md").read_text() == "my own card"
    assert hub.call(lambda: [c for c in hub.hub.record.commits if c["repo"] == "lab/essays"]) == []


LOAD = """
import json, sys
import datasets
loaded = datasets.load_dataset(sys.argv[1], revision=sys.argv[2] if len(sys.argv) > 2 else None)
print(json.dumps({name: split.to_list() for name, split in loaded.items()}))
"""


def test_the_try_it_hub_round_trip_push_then_load_dataset(tmp_path, run):
    """As the README tells a user: start the fake Hub, push to it, load the dataset back by name (and by commit)
    in fresh processes with a fresh cache; every request stays on the loopback (proxies that go nowhere)."""
    hub = subprocess.Popen([sys.executable, "-m", "longwriter_data.testing.fake_hub", "--user", "me"],
                           stdout=subprocess.PIPE, text=True)
    try:
        said = [hub.stdout.readline() for _ in range(4)]
        endpoint = said[0].split(" at ")[1].split()[0]
        exports = dict(item.split("=", 1) for item in said[1].split()[1:])
        assert exports == {"HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_local_test_token"}
        assert HfApi(endpoint=endpoint, token="hf_local_test_token").whoami(cache=False)["name"] == "me"
        dead = f"http://127.0.0.1:{_closed_port()}"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}, **exports,
               "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1",
               "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "ALL_PROXY": dead, "NO_PROXY": "127.0.0.1,localhost"}
        pushed = subprocess.run([sys.executable, "-m", "longwriter_data", "push", str(run), "--repo-id", "me/essays"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert pushed.returncode == 0, pushed.stderr
        commit = HfApi(endpoint=endpoint).dataset_info("me/essays").sha
        assert pushed.stdout.split("commit ")[1].startswith(commit[:10])
        del env["HF_TOKEN"]  # a public dataset reads without a token
        local = {p.name.split("-")[0]: pq.read_table(p).to_pylist()
                 for p in (run / "dataset" / "data").glob("*.parquet")}
        for revision in ([], [commit]):
            loaded = subprocess.run([sys.executable, "-c", LOAD, "me/essays", *revision], env=env,
                                    capture_output=True, text=True, timeout=180)
            assert loaded.returncode == 0, loaded.stderr
            assert json.loads(loaded.stdout) == local
            assert "malformed" not in loaded.stderr and "Warning" not in loaded.stderr, loaded.stderr
    finally:
        hub.terminate()
        hub.wait(timeout=30)
