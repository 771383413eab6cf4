"""A local stand-in for the Hugging Face Hub: the few HTTP routes that huggingface_hub's create_repo / upload_folder /
hf_hub_download / HfFileSystem (and so datasets.load_dataset and transformers' from_pretrained) call, files kept in
a folder. For tests only: the real hub cannot be reached from them.

Usage:
    with HubStandIn(tmp_path / "hub") as hub:      # serves http://127.0.0.1:<port> from a thread
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "stand-in"}   # for a subprocess

Routes (those huggingface_hub 2.4 calls for a push, a load_dataset and a from_pretrained): POST /api/repos/create,
POST /api/validate-yaml, GET /api/{models,datasets}/<id>[/revision/<rev>], GET .../tree/<rev>[/<path>],
POST .../preupload/<rev>, POST .../commit/<rev> (ndjson), HEAD/GET /[datasets/]<id>/resolve/<rev>/<path>.
What differs from the hub: every file is uploaded inline as a "regular" file (the hub sends large ones and model
weights through LFS/Xet, a storage protocol of its own), one branch (main), no pull requests, no auth beyond
"writes need a token" (401 otherwise). Every commit is a full copy of the repo under its sha, so old revisions
stay readable. Unknown routes answer 404 and are recorded in `unknown`, so a test can say which call is missing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO = r"(?P<type>model|dataset)s/(?P<id>[\w.-]+/[\w.-]+)"
API = re.compile(rf"/api/{REPO}(?:/revision/(?P<rev>[^/]+))?")
TREE = re.compile(rf"/api/{REPO}/(?P<op>tree|preupload|commit)/(?P<rev>[^/]+)(?:/(?P<path>.*))?")
# Calls whose answer does not matter to the caller: huggingface_hub's user-agent lookup, libraries' telemetry pings.
IGNORED = ("/api/agent-harnesses", "/api/telemetry/")
RESOLVE = re.compile(r"/(?:(?P<type>dataset)s/)?(?P<id>[\w.-]+/[\w.-]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)")


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubStandIn:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.unknown: list[str] = []  # "METHOD path" of every request no route answered
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> HubStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- storage: <root>/<type>s/<id>/refs.json (main -> sha) and <root>/<type>s/<id>/<sha>/<files>
    def repo(self, kind: str, repo_id: str) -> Path:
        return self.root / f"{kind}s" / repo_id

    def head(self, kind: str, repo_id: str, rev: str) -> str | None:
        """The commit sha a revision names (main or a sha of this repo), None when the repo or revision is unknown."""
        refs = self.repo(kind, repo_id) / "refs.json"
        if not refs.is_file():
            return None
        rev = unquote(rev)
        main = json.loads(refs.read_text())["main"]
        return main if rev == "main" else rev if (self.repo(kind, repo_id) / rev).is_dir() else None

    def files(self, kind: str, repo_id: str, sha: str) -> dict[str, Path]:
        base = self.repo(kind, repo_id) / sha
        return {p.relative_to(base).as_posix(): p for p in sorted(base.rglob("*")) if p.is_file()}

    def commit(self, kind: str, repo_id: str, lines: list[dict]) -> str:
        """Apply an ndjson commit (header, file, deletedFile, deletedFolder) on top of main; returns the new sha."""
        with self.lock:
            old = self.head(kind, repo_id, "main")
            sha = hashlib.sha1(json.dumps([old, lines], sort_keys=True).encode()).hexdigest()
            new = self.repo(kind, repo_id) / sha
            shutil.copytree(self.repo(kind, repo_id) / old, new) if old else new.mkdir(parents=True)
            for line in lines:
                value = line["value"]
                target = new / value.get("path", "")
                if line["key"] == "file":
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(base64.b64decode(value["content"]))
                elif line["key"] == "deletedFile":
                    target.unlink(missing_ok=True)
                elif line["key"] == "deletedFolder":
                    shutil.rmtree(target, ignore_errors=True)
                elif line["key"] != "header":
                    raise ValueError(f"commit operation {line['key']!r} is not supported by the stand-in")
            (self.repo(kind, repo_id) / "refs.json").write_text(json.dumps({"main": sha}))
            return sha


def _entry(path: str, file: Path | None) -> dict:
    if file is None:
        return {"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0}
    data = file.read_bytes()
    return {"type": "file", "path": path, "oid": git_oid(data), "size": len(data)}


def _tree(files: dict[str, Path], prefix: str, recursive: bool) -> list[dict]:
    """Entries under `prefix` (folders first), as the hub's tree listing: direct children, or all with recursive."""
    start = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    dirs, out = set(), []
    for path, file in files.items():
        if not path.startswith(start):
            continue
        parts = path[len(start):].split("/")
        for depth in range(1, len(parts)):
            if recursive or depth == 1:
                dirs.add(start + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            out.append(_entry(path, file))
    return [_entry(d, None) for d in sorted(dirs)] + out


def _handler(hub: HubStandIn):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def send(self, status: int, body: bytes | dict | list = b"", headers: dict | None = None,
                 head_only: bool = False) -> None:
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
                headers = {"Content-Type": "application/json", **(headers or {})}
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head_only:
                self.wfile.write(body)

        def error(self, status: int, code: str, message: str, head_only: bool = False, headers=None) -> None:
            self.send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message,
                                                   **(headers or {})}, head_only)

        def body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_HEAD(self) -> None:
            self.do_GET(head_only=True)

        def do_GET(self, head_only: bool = False) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if m := RESOLVE.fullmatch(url.path):
                return self.resolve(m["type"] or "model", m["id"], m["rev"], unquote(m["path"]), head_only)
            if (m := TREE.fullmatch(url.path)) and m["op"] == "tree":
                if sha := self.sha(m["type"], m["id"], m["rev"]):
                    files = hub.files(m["type"], m["id"], sha)
                    prefix = unquote(m["path"] or "")
                    if prefix and not any(p.startswith(prefix.rstrip("/") + "/") for p in files):
                        return self.error(404, "EntryNotFound", f"{prefix} does not exist on {m['rev']}")
                    self.send(200, _tree(files, prefix, query.get("recursive", ["False"])[0].lower() == "true"))
                return
            if m := API.fullmatch(url.path):
                if sha := self.sha(m["type"], m["id"], m["rev"] or "main"):
                    files = hub.files(m["type"], m["id"], sha)
                    self.send(200, {"id": m["id"], "sha": sha, "private": False, "tags": [],
                                    "siblings": [{"rfilename": p} for p in files]})
                return
            self.unknown_route()

        def do_POST(self) -> None:
            url, body = urlsplit(self.path), self.body()  # read the body always: the connection is kept alive
            if url.path == "/api/validate-yaml":
                return self.send(200, {"errors": [], "warnings": []})
            if not self.headers.get("Authorization", "").startswith("Bearer "):
                return self.error(401, "Unauthorized", "Invalid username or password.")
            if url.path == "/api/repos/create":
                spec = json.loads(body)
                kind, repo_id = spec.get("type") or "model", f"{spec['organization']}/{spec['name']}"
                url = f"{hub.url}/{'' if kind == 'model' else kind + 's/'}{repo_id}"
                if hub.head(kind, repo_id, "main"):  # create_repo(exist_ok=True) reads the url of a 409 too
                    return self.send(409, {"error": "You already created this repo", "url": url})
                hub.commit(kind, repo_id, [{"key": "header", "value": {"summary": "initial commit"}}])
                return self.send(200, {"url": url, "name": repo_id})
            m = TREE.fullmatch(url.path)
            if not m or m["op"] == "tree":
                return self.unknown_route()
            if not (sha := self.sha(m["type"], m["id"], m["rev"])):
                return
            if m["op"] == "preupload":
                files = hub.files(m["type"], m["id"], sha)
                return self.send(200, {"files": [
                    {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                     "oid": git_oid(files[f["path"]].read_bytes()) if f["path"] in files else None}
                    for f in json.loads(body)["files"]]})
            new = hub.commit(m["type"], m["id"], [json.loads(line) for line in body.splitlines() if line.strip()])
            prefix = "" if m["type"] == "model" else f"{m['type']}s/"
            self.send(200, {"commitUrl": f"{hub.url}/{prefix}{m['id']}/commit/{new}", "commitOid": new,
                            "pullRequestUrl": None})

        def sha(self, kind: str, repo_id: str, rev: str) -> str | None:
            """The commit a revision names; else answers 404 (repo or revision not found) and returns None."""
            sha = hub.head(kind, repo_id, rev)
            if sha is None:
                exists = (hub.repo(kind, repo_id) / "refs.json").is_file()
                self.error(404, "RevisionNotFound" if exists else "RepoNotFound", f"{repo_id}@{unquote(rev)}",
                           head_only=self.command == "HEAD")
            return sha

        def resolve(self, kind: str, repo_id: str, rev: str, path: str, head_only: bool) -> None:
            if not (sha := self.sha(kind, repo_id, rev)):
                return
            file = hub.files(kind, repo_id, sha).get(path)
            if file is None:
                return self.error(404, "EntryNotFound", f"{path} does not exist", head_only, {"X-Repo-Commit": sha})
            data = file.read_bytes()
            headers = {"X-Repo-Commit": sha, "ETag": f'"{git_oid(data)}"', "Content-Type": "application/octet-stream"}
            self.send(200, data, headers, head_only)

        def unknown_route(self) -> None:
            if not self.path.startswith(IGNORED):
                hub.unknown.append(f"{self.command} {self.path}")
            self.error(404, "NotFound", f"the hub stand-in has no route for {self.command} {self.path}")

    return Handler
