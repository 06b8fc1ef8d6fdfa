"""`push`: upload an exported dataset (Parquet shards, card, histogram, recipe) to the Hugging Face Hub.

The token comes from HF_TOKEN or the usual `hf auth login`; it goes to huggingface_hub and is never written or
printed. The Hub says which files it already has, and unchanged ones are not sent again, so a failed push is simply
run again. A repository that already holds a dataset with other columns is refused, never overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from .card import CARD, IMAGE, RECIPE, features_yaml, write_card
from ..errors import UserError
from .outdir import exported_from_bytes, written_by_export

# What the Hub gets: the card, its image, the recipe and the Parquet shards (save_to_disk's Arrow copy stays local).
UPLOAD = [CARD, IMAGE, RECIPE, "data/*.parquet"]
# Shards of an earlier push that this export no longer has (say, a test split dropped) are deleted in the same commit.
STALE = ["data/*"]
_DATA_FILES = (".parquet", ".arrow", ".jsonl", ".json", ".csv")


@dataclass
class PushResult:
    url: str
    revision: str
    commit: str
    files: int
    changed: bool  # False when the repository already held exactly these files


def dataset_folder(path: Path) -> Path:
    """The exported folder to push: `path` itself, or a run directory's `dataset/`."""
    for folder in (path, path / "dataset"):
        if (folder / RECIPE).is_file() and (folder / "data").is_dir() and written_by_export(folder):
            if folder != path:  # a run directory's own export: not older than the run's last decision
                made_from, jobs = exported_from_bytes(folder), path / "jobs.jsonl"
                if made_from is not None and jobs.is_file() and jobs.stat().st_size != made_from:
                    raise UserError(f"{folder} was exported before the run last changed (a build or `judge` "
                                    f"decided more since): run `python -m longwriter_data export {path}` first, "
                                    "then push again.")
            return folder
    if (path / "jobs.jsonl").is_file() or (path / "config.json").is_file():
        raise UserError(f"{path} has no exported dataset with a card yet; run "
                        f"`python -m longwriter_data export {path}` first, then push again.")
    raise UserError(f"{path} is neither a run directory nor a folder written by export.")


def push_dataset(path: Path, repo_id: str, *, private: bool | None = None, revision: str | None = None) -> PushResult:
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    folder = dataset_folder(path)
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise UserError(f"--repo-id {repo_id!r} is not a repository id; write it as ORG/NAME.") from None
    if "/" not in repo_id:
        raise UserError(f"--repo-id {repo_id!r} names no owner; write it as ORG/NAME (your user name or an org).")
    token = get_token()
    if not token:
        raise UserError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then push again.")
    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)
    branch = revision or "main"
    write_card(folder, repo_id, image=False)  # its loading example names the repository it now lives in
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files = [name for name in files if any(fnmatch(name, pattern) for pattern in UPLOAD)]
    with _hub_errors(api.endpoint, repo_id), _quiet_hub():
        head = _check_remote(api, repo_id, branch, features_yaml(folder))
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, repo_type="dataset", branch=branch, exist_ok=True)
        commit = api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset", revision=branch,
                                   allow_patterns=UPLOAD, delete_patterns=STALE,
                                   commit_message="Upload dataset with longwriter-data")
    url = f"{api.endpoint}/datasets/{repo_id}" + (f"/tree/{branch}" if branch != "main" else "")
    return PushResult(url=url, revision=branch, commit=commit.oid, files=len(files), changed=commit.oid != head)



def push_and_say(path: Path, repo_id: str, *, private: bool | None = None, revision: str | None = None) -> PushResult:
    """Push, and say on stdout what changed: the `push` command and a build with export.hub_repo both end so."""
    result = push_dataset(path, repo_id, private=private, revision=revision)
    if result.changed:
        print(f"Pushed {result.files} files to {result.url} (revision {result.revision}, commit {result.commit[:10]})")
    else:
        print(f"{result.url} (revision {result.revision}) already holds this export: nothing to upload.")
    return result

def _check_remote(api, repo_id: str, branch: str, features: list) -> str | None:
    """Refuse a repository whose data has other columns; return the branch's head commit (None if it is new)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    head = None
    try:
        info = api.dataset_info(repo_id, revision=branch)
        head = info.sha
    except RevisionNotFoundError:  # a new branch starts from main: main's columns must match
        info = api.dataset_info(repo_id)
    except RepositoryNotFoundError:
        return None
    card = info.card_data.to_dict() if info.card_data is not None else {}
    remote = card.get("dataset_info")
    if isinstance(remote, list):  # one entry per config
        remote = next((entry for entry in remote if entry.get("config_name", "default") == "default"), None)
    theirs = remote.get("features") if isinstance(remote, dict) else None
    if theirs is not None and theirs != features:
        raise UserError(f"{repo_id} already holds a dataset with other columns ({_columns(theirs)}) than this export "
                        f"({_columns(features)}); push to another --repo-id, or export in the format it uses.")
    data = [s.rfilename for s in info.siblings or [] if s.rfilename.endswith(_DATA_FILES) and s.rfilename != RECIPE]
    if theirs is None and data:
        raise UserError(f"{repo_id} already holds data files ({data[0]}, ...) whose card names no columns; "
                        "push to another --repo-id rather than mix two datasets.")
    return head


def _columns(features: list) -> str:
    return ", ".join(str(feature.get("name")) for feature in features)


@contextmanager
def _quiet_hub() -> Iterator[None]:
    """Keep huggingface_hub's own progress bars and log lines ("Upload 0 LFS files", "No files have been
    modified...") off the terminal: push prints one line that says what was uploaded, or that nothing was."""
    from huggingface_hub.utils import disable_progress_bars
    from huggingface_hub.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with disable_progress_bars():
            yield
    finally:
        hf_logging.set_verbosity(level)


@contextmanager
def _hub_errors(endpoint: str, repo_id: str) -> Iterator[None]:
    """Turn what huggingface_hub raises into one line that says what to do."""
    from httpx2 import TransportError  # the HTTP client huggingface_hub uses
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - mapped below, re-raised when not a Hub or network error
        cause = exc
        while cause is not None and not isinstance(cause, (HfHubHTTPError, TransportError, OfflineModeIsEnabled)):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, HfHubHTTPError):
            raise UserError(_http_message(cause, repo_id)) from None
        if isinstance(cause, (TransportError, OfflineModeIsEnabled)):
            raise UserError(f"cannot reach the Hugging Face Hub at {endpoint} ({type(cause).__name__}); check the "
                            "network (or HF_ENDPOINT, HF_HUB_OFFLINE) and push again.") from None
        if isinstance(exc, ValueError) and "Invalid metadata in README.md" in str(exc):
            raise UserError(f"the Hub refused the dataset card's metadata: {' '.join(str(exc).split())}") from None
        raise


def _http_message(error, repo_id: str) -> str:
    status = error.response.status_code if error.response is not None else None
    said = " ".join((error.server_message or "").split())[:200]
    if status == 401:
        return "the Hub refused the token (401 Unauthorized): check HF_TOKEN, or log in again with `hf auth login`."
    if status == 403:
        return (f"the token may not write to {repo_id} (403 Forbidden{': ' + said if said else ''}); "
                "use a token with write access to that namespace.")
    if status == 404:
        return f"{repo_id} was not found (404); check the owner in --repo-id and that the token can write there."
    return (f"the Hub answered {status} while pushing to {repo_id}{': ' + said if said else ''}; push again "
            "(files already uploaded are not sent twice).")
