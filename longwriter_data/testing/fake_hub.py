"""A Hugging Face Hub on your own machine, to try `push` and `load_dataset` without an account or network.

It serves the endpoints `huggingface_hub` and `datasets` use to create a dataset repository, upload a folder to it
(preupload, Git LFS batch and PUT, NDJSON commit), read its info, list and download its files (tree, paths-info,
resolve, by branch or by commit) and tell who a token belongs to (whoami-v2). Repositories live in memory: they are
gone when the server stops. Tests use it too, and read what a push sent from its record.

LFS uploads use the basic transfer; huggingface_hub must be told not to use Xet (HF_HUB_DISABLE_XET=1), which this
server does not speak. Files named like the Hub's default .gitattributes (Parquet, Arrow, images) and files over
10 MB go through LFS, the others inline in the commit, as on the Hub.

Run: python -m longwriter_data.testing.fake_hub [--port 0] [--token TOKEN] [--user NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field

import yaml
from aiohttp import web

_LFS_SUFFIXES = (".parquet", ".arrow", ".png", ".jpg", ".bin", ".safetensors", ".zip", ".gz")
_LFS_SIZE = 10 * 1024 * 1024
_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"


def git_oid(data: bytes) -> str:
    """The git blob id the Hub reports for a regular file (and huggingface_hub compares against)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Blob:
    data: bytes
    lfs: bool

    @property
    def oid(self) -> str:
        return hashlib.sha256(self.data).hexdigest() if self.lfs else git_oid(self.data)


@dataclass
class Repo:
    owner: str
    private: bool
    branches: dict[str, dict[str, Blob]] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, Blob]] = field(default_factory=dict)  # every commit's files: reads by commit id


@dataclass
class Record:
    """What the server saw, for tests: commits made, LFS objects received, every request line."""

    commits: list[dict] = field(default_factory=list)
    lfs_uploads: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class _Refused(Exception):
    """Raised by a handler; the middleware answers with a Hub-style error (JSON body, X-Error-* headers)."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        headers = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {})}
        self.response = web.json_response({"error": message}, status=status, headers=headers)


def _front_matter(text: str) -> dict | None:
    if not text.startswith("---\n"):
        return None
    end = text.find("\n---", 4)
    return yaml.safe_load(text[4:end]) if end > 0 else None


class FakeHub:
    """The app and its state; `tokens` maps each accepted token to the user it belongs to."""

    def __init__(self, tokens: dict[str, str], orgs: dict[str, list[str]] | None = None):
        self.tokens = tokens
        self.orgs = orgs or {}  # user -> organisations they may write to
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.record = Record()
        self.fail_next_commit = False
        self.endpoint = ""

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 31, middlewares=[self._log])
        repo = "/api/datasets/{owner}/{name}"
        app.add_routes([
            web.post("/api/repos/create", self.create_repo),
            web.post("/api/validate-yaml", self.validate_yaml),
            web.get(repo, self.info),
            web.get(repo + "/revision/{rev}", self.info),
            web.post(repo + "/preupload/{rev}", self.preupload),
            web.post(repo + "/commit/{rev}", self.commit),
            web.post(repo + "/branch/{branch}", self.create_branch),
            web.get(repo + "/tree/{rev}", self.tree),
            web.get(repo + "/tree/{rev}/{path:.*}", self.tree),
            web.post(repo + "/paths-info/{rev}", self.paths_info),
            web.get("/datasets/{owner}/{name}/resolve/{rev}/{path:.*}", self.resolve),  # and HEAD
            web.get("/api/whoami-v2", self.whoami),
            web.post("/datasets/{owner}/{name}.git/info/lfs/objects/batch", self.lfs_batch),
            web.put("/lfs/{oid}", self.lfs_put),
        ])
        return app

    @web.middleware
    async def _log(self, request: web.Request, handler):
        self.record.requests.append(f"{request.method} {request.path}")
        try:
            return await handler(request)
        except _Refused as refusal:
            return refusal.response

    # --- who is asking, and may they

    def _user(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return self.tokens.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None

    def _may_write(self, user: str | None, owner: str) -> bool:
        return user is not None and (owner == user or owner in self.orgs.get(user, []))

    def _repo(self, request: web.Request, write: bool = False) -> Repo:
        """The repository the path names, if this request may see it (and, with `write`, change it)."""
        user = self._user(request)
        if request.headers.get("Authorization") and user is None:
            raise _Refused(401, "Invalid credentials in Authorization header")
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and not self._may_write(user, repo.owner)):
            raise _Refused(404, "Repository not found", "RepoNotFound")
        if write and not self._may_write(user, repo.owner):
            raise _Refused(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def _revision(self, request: web.Request, write: bool = False) -> tuple[Repo, str]:
        """The repository and the existing branch the path names."""
        repo = self._repo(request, write)
        rev = request.match_info.get("rev", "main")
        if rev not in repo.branches:
            raise _Refused(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo, rev

    def _snapshot(self, request: web.Request) -> tuple[Repo, dict[str, Blob], str]:
        """For reads: the repository, the files and the commit id of the branch or commit the path names."""
        repo = self._repo(request)
        rev = request.match_info.get("rev", "main")
        if rev in repo.branches:
            return repo, repo.branches[rev], repo.heads[rev]
        if rev in repo.commits:
            return repo, repo.commits[rev], rev
        raise _Refused(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    # --- endpoints

    async def create_repo(self, request: web.Request) -> web.Response:
        user = self._user(request)
        if user is None:
            raise _Refused(401, "Invalid credentials in Authorization header")
        body = await request.json()
        owner = body.get("organization") or user
        repo_id = f"{owner}/{body['name']}"
        if body.get("type") != "dataset":
            raise _Refused(400, "this fake Hub only holds dataset repositories")
        if not self._may_write(user, owner):
            raise _Refused(403, f'You don\'t have the rights to create a dataset under the namespace "{owner}"')
        url = f"{self.endpoint}/datasets/{repo_id}"
        if repo_id in self.repos:
            return web.json_response({"error": "You already created this dataset repo", "url": url}, status=409)
        private = body.get("visibility") == "private" or bool(body.get("private"))
        repo = self.repos[repo_id] = Repo(owner=owner, private=private)
        self._apply(repo_id, repo, "main", {".gitattributes": Blob(_GITATTRIBUTES, lfs=False)}, set(), "initial commit")
        return web.json_response({"url": url, "name": repo_id, "id": repo_id})

    async def validate_yaml(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            meta = _front_matter(body.get("content", ""))
        except yaml.YAMLError as exc:
            return web.json_response({"errors": [{"message": f"invalid YAML: {exc}"}]}, status=400)
        errors = []
        if meta is not None and not isinstance(meta, dict):
            errors.append({"message": "metadata must be a mapping"})
        elif meta:
            if not isinstance(meta.get("license", ""), str):
                errors.append({"message": '"license" must be a string'})
            for key in ("language", "task_categories", "size_categories", "configs"):
                if key in meta and not isinstance(meta[key], list):
                    errors.append({"message": f'"{key}" must be a list'})
        return web.json_response({"errors": errors, "warnings": []}, status=400 if errors else 200)

    async def info(self, request: web.Request) -> web.Response:
        repo, files, sha = self._snapshot(request)
        card = files.get("README.md")
        return web.json_response({
            "id": f"{request.match_info['owner']}/{request.match_info['name']}",
            "author": repo.owner, "sha": sha, "private": repo.private, "disabled": False, "gated": False,
            "downloads": 0, "likes": 0, "tags": [], "lastModified": "2024-01-01T00:00:00.000Z",
            "cardData": _front_matter(card.data.decode()) if card else None,
            "siblings": [{"rfilename": path} for path in sorted(files)],
        })

    async def preupload(self, request: web.Request) -> web.Response:
        repo, rev = self._revision(request, write=True)
        current = repo.branches[rev]
        answer = []
        for item in (await request.json())["files"]:
            path = item["path"]
            lfs = path.endswith(_LFS_SUFFIXES) or item["size"] > _LFS_SIZE
            existing = current.get(path)
            answer.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                           "oid": existing.oid if existing else None})
        return web.json_response({"files": answer, "commitOid": repo.heads[rev]})

    async def lfs_batch(self, request: web.Request) -> web.Response:
        self._repo(request, write=True)
        body = await request.json()
        objects = []
        for item in body["objects"]:
            entry = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.lfs:  # only what the server lacks is sent
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/lfs/{item['oid']}"}}
            objects.append(entry)
        return web.json_response({"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    async def lfs_put(self, request: web.Request) -> web.Response:
        oid = request.match_info["oid"]
        data = await request.read()
        if hashlib.sha256(data).hexdigest() != oid:
            raise _Refused(400, "content does not match its oid")
        self.lfs[oid] = data
        self.record.lfs_uploads.append(oid)
        return web.Response(status=200)

    async def commit(self, request: web.Request) -> web.Response:
        repo, rev = self._revision(request, write=True)
        if self.fail_next_commit:
            self.fail_next_commit = False
            raise _Refused(500, "Internal Error - the commit was not made")
        lines = [json.loads(line) for line in (await request.read()).splitlines() if line.strip()]
        header = next(line["value"] for line in lines if line["key"] == "header")
        added, deleted = {}, set()
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                added[value["path"]] = Blob(base64.b64decode(value["content"]), lfs=False)
            elif key == "lfsFile":
                if value["oid"] not in self.lfs:
                    raise _Refused(422, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                added[value["path"]] = Blob(self.lfs[value["oid"]], lfs=True)
            elif key == "deletedFile":
                deleted.add(value["path"])
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                deleted.update(path for path in repo.branches[rev] if path.startswith(prefix))
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        oid = self._apply(repo_id, repo, rev, added, deleted, header["summary"])
        return web.json_response({"success": True, "commitOid": oid,
                                  "commitUrl": f"{self.endpoint}/datasets/{repo_id}/commit/{oid}"})

    def _apply(self, repo_id: str, repo: Repo, rev: str, added: dict, deleted: set, summary: str) -> str:
        files = {path: blob for path, blob in repo.branches.get(rev, {}).items() if path not in deleted}
        files.update(added)
        repo.branches[rev] = files
        parent = repo.heads.get(rev, "")
        oid = hashlib.sha1(f"{parent}{summary}{sorted((p, b.oid) for p, b in files.items())}".encode()).hexdigest()
        repo.heads[rev] = oid
        repo.commits[oid] = files
        self.record.commits.append({"repo": repo_id, "revision": rev, "oid": oid, "summary": summary,
                                    "added": sorted(added), "deleted": sorted(deleted)})
        return oid

    async def create_branch(self, request: web.Request) -> web.Response:
        repo = self._repo(request, write=True)
        branch = request.match_info["branch"]
        if branch in repo.branches:
            raise _Refused(409, f"Branch {branch} already exists")
        start = (await request.json()).get("startingPoint") or "main"
        repo.branches[branch] = dict(repo.branches[start])
        repo.heads[branch] = repo.heads[start]
        return web.json_response({})

    async def tree(self, request: web.Request) -> web.Response:
        _, files, _ = self._snapshot(request)
        prefix = request.match_info.get("path", "").strip("/")
        recursive = request.query.get("recursive", "false").lower() in ("1", "true")
        entries, folders = [], set()
        for path, blob in sorted(files.items()):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1:] if prefix else path
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(([prefix] if prefix else []) + parts[:depth])
                if (recursive or depth == 1) and folder not in folders:
                    folders.add(folder)
                    entries.append({"type": "directory", "path": folder, "oid": "0" * 40, "size": 0})
            if recursive or len(parts) == 1:
                entries.append(_file_entry(path, blob))
        return web.json_response(entries)

    async def paths_info(self, request: web.Request) -> web.Response:
        _, files, _ = self._snapshot(request)
        entries = []
        for path in (await request.post()).getall("paths", []):
            path = path.strip("/")
            if path in files:
                entries.append(_file_entry(path, files[path]))
            elif any(name.startswith(path + "/") for name in files):
                entries.append({"type": "directory", "path": path, "oid": "0" * 40, "size": 0})
        return web.json_response(entries)

    async def resolve(self, request: web.Request) -> web.Response:
        """A file's bytes (GET, whole or one `Range: bytes=` span) or just its headers (HEAD), with the commit id
        and ETag huggingface_hub caches it by."""
        _, files, sha = self._snapshot(request)
        blob = files.get(request.match_info["path"])
        if blob is None:
            raise _Refused(404, f"Entry not found: {request.match_info['path']}", "EntryNotFound")
        headers = {"X-Repo-Commit": sha, "ETag": f'"{blob.oid}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers.update({"X-Linked-Etag": f'"{blob.oid}"', "X-Linked-Size": str(len(blob.data))})
        span = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", ""))
        if span is None:
            return web.Response(body=blob.data, headers=headers, content_type="application/octet-stream")
        start = int(span[1])
        end = min(int(span[2]) if span[2] else len(blob.data) - 1, len(blob.data) - 1)
        if start >= len(blob.data):
            return web.Response(status=416, headers={"Content-Range": f"bytes */{len(blob.data)}"})
        headers["Content-Range"] = f"bytes {start}-{end}/{len(blob.data)}"
        return web.Response(status=206, body=blob.data[start:end + 1], headers=headers,
                            content_type="application/octet-stream")

    async def whoami(self, request: web.Request) -> web.Response:
        user = self._user(request)
        if user is None:
            raise _Refused(401, "Invalid credentials in Authorization header")
        orgs = [{"type": "org", "name": org} for org in self.orgs.get(user, [])]
        return web.json_response({"type": "user", "name": user, "fullname": user, "orgs": orgs,
                                  "auth": {"type": "access_token", "accessToken": {"role": "write"}}})

    # --- for tests

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return {path: blob.data for path, blob in self.repos[repo_id].branches[revision].items()}


def _file_entry(path: str, blob: Blob) -> dict:
    """A file as the tree and paths-info endpoints describe it."""
    entry = {"type": "file", "path": path, "size": len(blob.data), "oid": git_oid(blob.data)}
    if blob.lfs:
        entry["lfs"] = {"oid": blob.oid, "size": len(blob.data), "pointerSize": 134}
    return entry


class FakeHubThread:
    """The fake Hub served on a loopback port from a background thread, for tests in the same process (and for
    subprocesses they start: it is real HTTP)."""

    def __init__(self, tokens: dict[str, str], orgs: dict[str, list[str]] | None = None, port: int = 0):
        self.hub = FakeHub(tokens, orgs)
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None
        self.endpoint = ""

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.hub.app(), access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.endpoint = self.hub.endpoint = f"http://127.0.0.1:{port}"
        self._ready.set()
        self._loop.run_forever()

    def call(self, function, *args):
        """Run `function(*args)` on the server's loop, so tests read or change state between requests safely."""
        async def run():
            return function(*args)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result()

    def __enter__(self) -> FakeHubThread:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


DEFAULT_TOKEN = "hf_local_test_token"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m longwriter_data.testing.fake_hub", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="A Hugging Face Hub on your own machine, kept in memory until you stop it (Ctrl-C): push a "
                    "dataset to it and load it back with `datasets.load_dataset`, with no account and no network. "
                    "It prints the environment variables that point huggingface_hub and datasets at it.")
    parser.add_argument("--port", type=int, default=0, help="loopback port to listen on; 0 picks a free one")
    parser.add_argument("--token", default=DEFAULT_TOKEN,
                        help="the token it accepts for writing (set it as HF_TOKEN); reading needs none")
    parser.add_argument("--user", default="me", help="the user that token belongs to: it may push to USER/NAME")
    args = parser.parse_args(argv)
    try:
        with FakeHubThread({args.token: args.user}, port=args.port) as server:
            print(f"Fake Hugging Face Hub at {server.endpoint} (in memory; Ctrl-C stops it). In another shell:\n"
                  f"  export HF_ENDPOINT={server.endpoint} HF_HUB_DISABLE_XET=1 HF_TOKEN={args.token}\n"
                  f"  python -m longwriter_data push RUN_DIR --repo-id {args.user}/NAME\n"
                  f"  python -c \"import datasets; print(datasets.load_dataset('{args.user}/NAME'))\"",
                  flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
