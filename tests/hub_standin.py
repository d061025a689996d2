"""A local stand-in for the Hugging Face Hub: the HTTP endpoints that ``huggingface_hub`` uses to create a model
repository or a Space, upload a folder in one commit, and download a snapshot, served from memory on 127.0.0.1.
Space repositories are keyed ``spaces/owner/name``.

The real client talks to it unchanged (``endpoint=standin.url``), so the tests exercise our upload and download code
and the library's own requests, without the network. Large binary files take the Hub's LFS route (a batch request,
then a PUT of the bytes), as the real Hub answers for safetensors. Requests it does not know are answered 404 and
recorded in ``unknown`` so that a test can show them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml

LFS_SUFFIXES = (".safetensors", ".png", ".jpg", ".wav", ".bin")
API = r"/api/(?P<kind>models|spaces)/(?P<repo>[^/]+/[^/]+)"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repository:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit sha -> path -> content
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit sha

    def resolve(self, revision: str) -> str | None:
        return self.refs.get(revision) or (revision if revision in self.commits else None)


class HubStandIn:
    def __init__(self) -> None:
        self.repos: dict[str, Repository] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content
        self.requests: list[str] = []
        self.unknown: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output clean
                pass

            def do_HEAD(self) -> None:
                standin.handle(self, "HEAD")

            def do_GET(self) -> None:
                standin.handle(self, "GET")

            def do_POST(self) -> None:
                standin.handle(self, "POST")

            def do_PUT(self) -> None:
                standin.handle(self, "PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- routing ------------------------------------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = unquote(urlparse(request.path).path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        self.requests.append(f"{method} {path}")
        routes = [
            ("POST", r"/api/repos/create", self.create_repo),
            ("POST", r"/api/validate-yaml", self.validate_yaml),
            # The `hf` command line asks which AI-agent harnesses exist (a user-agent detail); none here.
            ("GET", r"/api/agent-harnesses", lambda **_: (200, {}, {"standardEnvVars": [], "harnesses": {}})),
            ("POST", rf"{API}/preupload/(?P<rev>.+)", self.preupload),
            ("POST", rf"{API}/commit/(?P<rev>.+)", self.commit),
            ("GET", rf"{API}/revision/(?P<rev>.+)", self.revision_info),
            ("GET", rf"{API}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", self.tree),
            ("POST", r"/(?P<repo>(?:spaces/)?[^/]+/[^/]+)\.git/info/lfs/objects/batch", self.lfs_batch),
            ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", self.lfs_upload),
            ("HEAD", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self.resolve),
            ("GET", r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)", self.resolve),
        ]
        for verb, pattern, route in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                groups = match.groupdict()
                if groups.pop("kind", None) == "spaces":  # Space repositories are named as in their URLs
                    groups["repo"] = f"spaces/{groups['repo']}"
                status, headers, payload = route(body=body, method=method, **groups)
                break
        else:
            self.unknown.append(f"{method} {request.path}")
            status, headers, payload = 404, {}, {"error": f"the stand-in does not serve {method} {path}"}
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", **headers}
        request.send_response(status)
        for name, value in {"Content-Length": str(len(payload)), **headers}.items():
            request.send_header(name, value)
        request.end_headers()
        if method != "HEAD":
            request.wfile.write(payload)

    def missing(self, what: str, code: str = "RepoNotFound"):
        return 404, {"X-Error-Code": code, "X-Error-Message": what}, {"error": what}

    # -- upload -------------------------------------------------------------------------------------------------

    def create_repo(self, body: bytes, **_):
        spec = json.loads(body)
        repo_id = f"{spec['organization']}/{spec['name']}" if spec.get("organization") else spec["name"]
        if spec.get("type") == "space":
            if spec.get("sdk") not in ("gradio", "docker", "static"):
                return 400, {}, {"error": "a Space needs an sdk"}
            repo_id = f"spaces/{repo_id}"
        self.repos.setdefault(repo_id, Repository())
        return 200, {}, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id}

    def validate_yaml(self, body: bytes, **_):
        """The checks the Hub makes on a model card's metadata that our cards could get wrong."""
        text = json.loads(body)["content"]
        errors = []
        if not text.startswith("---\n") or "\n---\n" not in text[4:]:
            errors.append("README.md has no YAML metadata block")
        else:
            metadata = yaml.safe_load(text[4 : text.index("\n---\n", 4)]) or {}
            if not isinstance(metadata.get("license"), str):
                errors.append('"license" must be a string')
            for index in metadata.get("model-index", []):
                if not index.get("name"):
                    errors.append('"model-index[0].name" is required')
                for result in index.get("results", []):
                    if not result.get("task", {}).get("type") or not result.get("dataset", {}).get("type"):
                        errors.append('"model-index[0].results[].task.type" and "dataset.type" are required')
                    if not all({"type", "value"} <= set(metric) for metric in result.get("metrics", [None])):
                        errors.append('"model-index[0].results[].metrics" need a type and a value')
        if errors:
            return 400, {}, {"errors": [{"message": message} for message in errors]}
        return 200, {}, {"errors": [], "warnings": []}

    def preupload(self, repo: str, body: bytes, **_):
        if repo not in self.repos:
            return self.missing(f"Repository {repo} not found")
        files = json.loads(body)["files"]
        modes = [
            {"path": f["path"], "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular"} for f in files
        ]
        return 200, {}, {"files": [{**m, "shouldIgnore": False} for m in modes], "commitOid": None}

    def lfs_batch(self, repo: str, body: bytes, **_):
        spec = json.loads(body)
        objects = []
        for item in spec["objects"]:
            entry = {"oid": item["oid"], "size": item["size"]}
            if item["oid"] not in self.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{item['oid']}", "header": {}}}
            objects.append(entry)
        return 200, {"Content-Type": "application/vnd.git-lfs+json"}, {"transfer": "basic", "objects": objects}

    def lfs_upload(self, oid: str, body: bytes, **_):
        if hashlib.sha256(body).hexdigest() != oid:
            return 400, {}, {"error": "sha256 mismatch"}
        self.lfs_objects[oid] = body
        return 200, {}, b""

    def commit(self, repo: str, rev: str, body: bytes, **_):
        repository = self.repos.get(repo)
        if repository is None:
            return self.missing(f"Repository {repo} not found")
        parent = repository.refs.get(rev)
        files = dict(repository.commits[parent]) if parent else {}
        for line in body.decode().splitlines():
            entry = json.loads(line)
            value = entry["value"]
            if entry["key"] == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif entry["key"] == "lfsFile":
                if value["oid"] not in self.lfs_objects:
                    return 400, {}, {"error": f"LFS object {value['oid']} was never uploaded"}
                files[value["path"]] = self.lfs_objects[value["oid"]]
            elif entry["key"] == "deletedFile":
                files.pop(value["path"], None)
        sha = hashlib.sha1(json.dumps({p: git_blob_id(c) for p, c in sorted(files.items())}).encode()).hexdigest()
        repository.commits[sha] = files
        repository.refs[rev] = sha
        return 200, {}, {"commitUrl": f"{self.url}/{repo}/commit/{sha}", "commitOid": sha}

    # -- download -----------------------------------------------------------------------------------------------

    def revision_info(self, repo: str, rev: str, **_):
        repository = self.repos.get(repo)
        if repository is None:
            return self.missing(f"Repository {repo} not found")
        sha = repository.resolve(rev)
        if sha is None:
            return self.missing(f"Invalid rev id: {rev}", "RevisionNotFound")
        siblings = [{"rfilename": p} for p in sorted(repository.commits[sha])]
        return 200, {}, {"id": repo, "modelId": repo, "sha": sha, "siblings": siblings, "private": False}

    def tree(self, repo: str, rev: str, path: str | None = None, **_):
        repository = self.repos.get(repo)
        sha = repository.resolve(rev) if repository else None
        if sha is None:
            return self.missing(f"{repo}@{rev} not found")
        entries = []
        for name, content in sorted(repository.commits[sha].items()):
            entry = {"type": "file", "path": name, "size": len(content), "oid": git_blob_id(content)}
            if name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
            entries.append(entry)
        return 200, {}, entries

    def resolve(self, repo: str, rev: str, path: str, **_):
        repository = self.repos.get(repo)
        sha = repository.resolve(rev) if repository else None
        if sha is None:
            return self.missing(f"{repo}@{rev} not found")
        content = repository.commits[sha].get(path)
        if content is None:
            return self.missing(f"{path} not found in {repo}@{rev}", "EntryNotFound")
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_id(content)}"'}
        if path.endswith(LFS_SUFFIXES):
            headers |= {"X-Linked-Etag": f'"{hashlib.sha256(content).hexdigest()}"', "X-Linked-Size": str(len(content))}
        return 200, headers, content
