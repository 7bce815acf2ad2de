"""A fake Hugging Face hub for tests: a threaded HTTP server on 127.0.0.1 serving files from memory.

It answers what ``huggingface_hub.get_hf_file_metadata`` and our downloader ask for::

    HEAD/GET /{repo}/resolve/{revision}/{path}

with ``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag`` / ``X-Linked-Size`` (LFS files only; the
etag is the sha256 of the file, in quotes), ``Content-Length``, ``Range: bytes=N-`` (206) and
404 with ``X-Error-Code`` for unknown repos and files. Knobs let a test throttle a file (so a
download can be cancelled mid-file), corrupt it (serve other bytes than the advertised sha256),
drop the connection midway, ignore ``Range`` (answer 200), or answer an HTTP error.

Usage::

    with FakeHub({"test/tiny-clip": {"tokenizer.json": b"{}"}}) as hub:
        hub.throttle("test/tiny-clip", "onnx/vision_model.onnx", 200_000)   # bytes/s
        download_model(spec, dest, endpoint=hub.url)
        assert hub.bytes_sent() < 2 * size
        assert any(r.range for r in hub.requests)

Also here: :class:`SilentServer` (accepts connections, never answers), :func:`closed_port_url`
(a URL whose port refuses connections) and :func:`fake_model` (a small ModelSpec and its files).
Everything is shut down and closed on exit so tests don't leak ResourceWarnings.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

import pytest

from vector_studio_gui.core.catalog import ModelSpec

DEFAULT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
_CHUNK = 8192


@dataclass
class HubFile:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_sha1(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass(frozen=True)
class HubRequest:
    """One request the fake hub answered (``bytes_sent`` counts body bytes only)."""

    method: str
    repo: str
    revision: str
    path: str
    range: str | None
    status: int
    bytes_sent: int


@dataclass
class _Knobs:
    throttle: dict[tuple[str, str], float] = field(default_factory=dict)
    corrupt: set[tuple[str, str]] = field(default_factory=set)
    drop: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # (after, times)
    ignore_range: set[tuple[str, str]] = field(default_factory=set)
    fail: dict[tuple[str, str], int] = field(default_factory=dict)


def _is_lfs_default(path: str) -> bool:
    return not path.endswith((".json", ".txt", ".md"))


class FakeHub:
    """A fake hub serving ``repos`` = ``{repo: {path: bytes}}``; start with ``with`` or start().

    Files whose name does not end in .json/.txt/.md are served as LFS files (sha256 advertised
    in ``X-Linked-Etag``); pass ``lfs=`` to :meth:`add_file` to choose. Any revision in
    ``revisions`` (default: ``main`` and the commit hash) resolves to the same files.
    ``redirect_lfs=True`` answers LFS resolves with a 302 to a "CDN" on http://localhost:PORT
    (another host name, like the real hub's CDN), carrying the X-Linked-* headers.
    """

    def __init__(self, repos: dict[str, dict[str, bytes]] | None = None, *,
                 commit: str = DEFAULT_COMMIT, revisions: tuple[str, ...] = ("main",),
                 redirect_lfs: bool = False) -> None:
        self.commit = commit
        self.revisions = {*revisions, commit}
        self.redirect_lfs = redirect_lfs
        self._files: dict[str, dict[str, HubFile]] = {}
        self._knobs = _Knobs()
        self._lock = threading.Lock()
        self._log: list[HubRequest] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for repo, files in (repos or {}).items():
            for path, data in files.items():
                self.add_file(repo, path, data)

    # -- content -------------------------------------------------------------------------------
    def add_file(self, repo: str, path: str, data: bytes, *, lfs: bool | None = None) -> None:
        with self._lock:
            lfs = _is_lfs_default(path) if lfs is None else lfs
            self._files.setdefault(repo, {})[path] = HubFile(bytes(data), lfs)

    def remove_file(self, repo: str, path: str) -> None:
        with self._lock:
            self._files.get(repo, {}).pop(path, None)

    def file(self, repo: str, path: str) -> HubFile:
        return self._files[repo][path]

    # -- knobs ---------------------------------------------------------------------------------
    def throttle(self, repo: str, path: str, bytes_per_second: float | None) -> None:
        """Send the body of ``repo/path`` at about ``bytes_per_second`` (None: full speed)."""
        with self._lock:
            if bytes_per_second is None:
                self._knobs.throttle.pop((repo, path), None)
            else:
                self._knobs.throttle[(repo, path)] = float(bytes_per_second)

    def corrupt(self, repo: str, path: str, enabled: bool = True) -> None:
        """Serve other bytes (same length) than the advertised sha256 / git sha1."""
        with self._lock:
            if enabled:
                self._knobs.corrupt.add((repo, path))
            else:
                self._knobs.corrupt.discard((repo, path))

    def drop_after(self, repo: str, path: str, nbytes: int, times: int = 1) -> None:
        """For the next ``times`` GETs of the file, close the connection after ``nbytes`` of body
        (the response still announces the full Content-Length)."""
        with self._lock:
            self._knobs.drop[(repo, path)] = (int(nbytes), int(times))

    def ignore_range(self, repo: str, path: str, enabled: bool = True) -> None:
        """Answer 200 with the whole file even when a Range is asked for."""
        with self._lock:
            if enabled:
                self._knobs.ignore_range.add((repo, path))
            else:
                self._knobs.ignore_range.discard((repo, path))

    def fail(self, repo: str, path: str, status: int | None) -> None:
        """Answer HEAD and GET of the file with HTTP ``status`` (None: back to normal)."""
        with self._lock:
            if status is None:
                self._knobs.fail.pop((repo, path), None)
            else:
                self._knobs.fail[(repo, path)] = int(status)

    # -- log -----------------------------------------------------------------------------------
    @property
    def requests(self) -> list[HubRequest]:
        with self._lock:
            return list(self._log)

    def gets(self, path: str | None = None) -> list[HubRequest]:
        return [r for r in self.requests if r.method == "GET" and (path is None or r.path == path)]

    def bytes_sent(self, path: str | None = None) -> int:
        """Body bytes sent by GETs (of ``path`` only, if given)."""
        return sum(r.bytes_sent for r in self.gets(path))

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, entry: HubRequest) -> None:
        with self._lock:
            self._log.append(entry)

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "FakeHub is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The endpoint to pass as ``endpoint=`` / HF_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHub:
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- answering (called from handler threads) -----------------------------------------------
    def _lookup(self, repo: str, path: str) -> HubFile | None:
        with self._lock:
            return self._files.get(repo, {}).get(path)

    def _repo_exists(self, repo: str) -> bool:
        with self._lock:
            return repo in self._files


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[no-untyped-def]
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: FakeHub  # set on the bound subclass
    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # keep test output clean

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self._answer(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(head=False)

    def _error(self, method: str, parts: tuple[str, str, str], status: int, code: str,
               head: bool) -> None:
        body = json.dumps({"error": f"{code}: {parts[0]}/{parts[2]}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.hub._record(HubRequest(method, *parts, self.headers.get("Range"), status, 0))

    def _parse(self) -> tuple[str, str, str] | None:
        raw = unquote(self.path.split("?", 1)[0]).lstrip("/")
        if raw.startswith("cdn/"):  # /cdn/{repo}/{path} after a redirect
            rest = raw[len("cdn/"):]
            with self.hub._lock:
                repos = list(self.hub._files)
            for repo in repos:
                if rest.startswith(repo + "/"):
                    return repo, self.hub.commit, rest[len(repo) + 1:]
            return None
        if "/resolve/" not in raw:
            return None
        repo, _, tail = raw.partition("/resolve/")
        revision, _, path = tail.partition("/")
        return repo, revision, path

    def _answer(self, head: bool) -> None:
        hub = self.hub
        method = "HEAD" if head else "GET"
        self.close_connection = True
        parts = self._parse()
        if parts is None:
            self._error(method, ("", "", self.path), 404, "EntryNotFound", head)
            return
        repo, revision, path = parts
        if not hub._repo_exists(repo):
            self._error(method, parts, 404, "RepoNotFound", head)
            return
        if revision not in hub.revisions:
            self._error(method, parts, 404, "RevisionNotFound", head)
            return
        entry = hub._lookup(repo, path)
        if entry is None:
            self._error(method, parts, 404, "EntryNotFound", head)
            return
        with hub._lock:
            key = (repo, path)
            fail = hub._knobs.fail.get(key)
            rate = hub._knobs.throttle.get(key)
            corrupt = key in hub._knobs.corrupt
            ignore_range = key in hub._knobs.ignore_range
            drop_after = None
            if not head and key in hub._knobs.drop:
                after, times = hub._knobs.drop[key]
                drop_after = after
                if times <= 1:
                    del hub._knobs.drop[key]
                else:
                    hub._knobs.drop[key] = (after, times - 1)
        if fail is not None:
            code = {401: "RepoNotFound", 403: "GatedRepo"}.get(fail, "Error")
            self._error(method, parts, fail, code, head)
            return

        data = entry.data
        size = len(data)
        etag = f'"{entry.sha256}"' if entry.lfs else f'"{entry.git_sha1}"'
        if corrupt:
            data = bytes(b ^ 0x5A for b in data[:64]) + data[64:]

        on_cdn = self.path.lstrip("/").startswith("cdn/")
        if entry.lfs and hub.redirect_lfs and not on_cdn:
            self.send_response(302)
            self.send_header("Location",
                             f"http://localhost:{hub.port}/cdn/{repo}/{path}")
            self._common_headers(entry, etag, size)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            hub._record(HubRequest(method, repo, revision, path, self.headers.get("Range"),
                                   302, 0))
            return

        range_header = self.headers.get("Range")
        start, end = 0, size - 1
        status = 200
        if range_header and not ignore_range:
            try:
                unit, _, spec = range_header.partition("=")
                first, _, last = spec.strip().partition("-")
                if unit.strip() != "bytes" or "," in spec:
                    raise ValueError(range_header)
                start = int(first)
                end = min(int(last), size - 1) if last else size - 1
            except ValueError:
                start, end = 0, size - 1
            else:
                if start >= size or start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    hub._record(HubRequest(method, repo, revision, path, range_header, 416, 0))
                    return
                status = 206
        body = data[start:end + 1]
        self.send_response(status)
        if not on_cdn:
            self._common_headers(entry, etag, size)
        else:
            self.send_header("ETag", f'"{entry.sha256}"')
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        if not head:
            sent = self._send_body(body, rate, drop_after)
        hub._record(HubRequest(method, repo, revision, path, range_header, status, sent))

    def _common_headers(self, entry: HubFile, etag: str, size: int) -> None:
        self.send_header("X-Repo-Commit", self.hub.commit)
        self.send_header("ETag", etag)
        if entry.lfs:
            self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
            self.send_header("X-Linked-Size", str(size))

    def _send_body(self, body: bytes, rate: float | None, drop_after: int | None) -> int:
        sent = 0
        limit = len(body) if drop_after is None else min(drop_after, len(body))
        began = time.monotonic()
        try:
            while sent < limit and not self.hub._stopping.is_set():
                chunk = body[sent:min(sent + _CHUNK, limit)]
                self.wfile.write(chunk)
                sent += len(chunk)
                if rate:
                    wait = began + sent / rate - time.monotonic()
                    if wait > 0:
                        self.hub._stopping.wait(wait)
            self.wfile.flush()
        except OSError:  # the client went away (cancelled download)
            pass
        if drop_after is not None:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        return sent


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (a hub behind a dead proxy)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    @property
    def connections(self) -> int:
        return len(self._conns)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._conns.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._conns:
            conn.close()
        self._sock.close()


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 whose port refuses connections (nothing listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def fake_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d:%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:size])


def fake_model(name: str = "tiny-clip", *, role: str = "clip", repo: str | None = None,
               size: int = 300_000, dim: int = 8) -> tuple[ModelSpec, dict[str, bytes]]:
    """A small ModelSpec (a catalog look-alike) and the repo files to serve for it.

    ``clip`` models have vision/text/tokenizer parts (and int8 variants); ``text`` models have
    model/tokenizer. ONNX files are ``size`` bytes of filler (not real models), the tokenizer a
    small JSON document.
    """
    repo = repo or f"test/{name}"
    if role == "clip":
        files = {"vision": "onnx/vision_model.onnx", "text": "onnx/text_model.onnx",
                 "tokenizer": "tokenizer.json"}
        quantized = {"vision": "onnx/vision_model_quantized.onnx",
                     "text": "onnx/text_model_quantized.onnx"}
    else:
        files = {"model": "onnx/model.onnx", "tokenizer": "tokenizer.json"}
        quantized = {"model": "onnx/model_quantized.onnx"}
    spec = ModelSpec(name=name, role=role, repo=repo, files=files,  # type: ignore[arg-type]
                     quantized_files=quantized, dim=dim, max_tokens=77, size_mb=1,
                     quantized_size_mb=1)
    blobs: dict[str, bytes] = {}
    for seed, path in enumerate(sorted({*files.values(), *quantized.values()})):
        if path.endswith(".json"):
            blobs[path] = json.dumps({"version": "1.0", "model": {"type": "fake"},
                                      "pad": "x" * 2000}).encode()
        else:
            blobs[path] = fake_bytes(size if "quantized" not in path else size // 4, seed)
    return spec, blobs


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """An empty, started FakeHub; add files with ``fake_hub.add_file`` (import into conftest)."""
    with FakeHub() as hub:
        yield hub


LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def isolate_from_real_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real hub: clear HF_* variables and refuse to resolve any non-local host name.

    huggingface_hub also reads HF_HUB_OFFLINE once at import, so its constant is reset too.
    """
    for name in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in LOCAL_HOSTS:
            raise socket.gaierror(socket.EAI_NONAME, f"test blocked DNS lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
