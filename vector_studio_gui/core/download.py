"""Download a catalog model from the Hugging Face hub into a folder, resumably and verified.

Qt-free: the GUI runs :func:`download_model` in a worker thread, passes a ``threading.Event``
to cancel and forwards :class:`DownloadProgress` through a signal.

A model folder keeps the repo paths (``onnx/vision_model.onnx``, ``tokenizer.json``) and counts
as installed only once ``manifest.json`` exists (written last, atomically) and every file it
lists exists with the recorded size. Partial downloads live in ``.partial/<path>.part`` and are
resumed with an HTTP ``Range`` request the next time.

Reachability is checked first, with a bounded wait: ``huggingface_hub`` on its own can take
~23 s (DNS failure) to ~400 s (a network that never answers) to give up; here the metadata
fetch runs in a daemon thread joined with ``offline_timeout``.

Nothing touches the network on import; ``huggingface_hub`` and ``httpx2`` are imported lazily.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from vector_studio_gui.core.catalog import ModelSpec
from vector_studio_gui.core.errors import Cancelled, DownloadError, OfflineError

DEFAULT_ENDPOINT = "https://huggingface.co"
MANIFEST = "manifest.json"
PARTIAL_DIR = ".partial"
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 30.0
PROGRESS_INTERVAL = 0.05  # seconds between progress reports within a file
_HASH_BLOCK = 1 << 20
_TRUE = {"1", "ON", "YES", "TRUE"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SHA1 = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report. ``file_index`` is 0-based (show ``file_index + 1`` of ``file_count``).

    ``total`` is known up-front once the hub's metadata arrived; it only grows if the hub did not
    announce a file's size. ``done`` never exceeds ``total``.
    """

    file: str  # repo path being downloaded
    file_done: int
    file_total: int
    done: int
    total: int
    file_index: int
    file_count: int

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass(frozen=True)
class _Remote:
    part: str
    path: str
    size: int | None
    sha256: str | None  # LFS files: the sha256 the hub advertises
    git_sha1: str | None  # plain git files: the blob id (ETag)
    commit: str | None


def hub_endpoint() -> str:
    """The hub to download from: ``HF_ENDPOINT`` if set, else https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _offline_env() -> bool:
    return any((os.environ.get(name) or "").upper() in _TRUE
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _offline_error(endpoint: str, reason: str) -> OfflineError:
    return OfflineError(
        f"Cannot reach the model hub ({endpoint}): {reason}. Check your connection, or import "
        "a model folder with 'vector-studio models import'."
    )


# --------------------------------------------------------------------------------------------
# Manifest and installed state
# --------------------------------------------------------------------------------------------

def _safe_relpath(path: str) -> PurePosixPath:
    """A repo path as a relative path that cannot leave the model folder."""
    rel = PurePosixPath(path.replace("\\", "/"))
    if not path or rel.is_absolute() or ".." in rel.parts or rel.parts[:1] == ("",):
        raise DownloadError(f"refusing unsafe file path {path!r} in the model description")
    return rel


def _local(dest: Path, path: str) -> Path:
    return dest.joinpath(*_safe_relpath(path).parts)


def read_manifest(dest: Path) -> dict[str, Any] | None:
    """The parsed ``manifest.json`` of a model folder, or None if missing or unreadable."""
    try:
        data = json.loads((Path(dest) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return None
    return data


def _manifest_entries(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    entries = []
    for part, entry in manifest["files"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ValueError(part)
        entries.append((part, entry))
    return entries


def is_installed(dest: Path) -> bool:
    """True when ``dest/manifest.json`` exists and all its files exist with the recorded sizes."""
    dest = Path(dest)
    manifest = read_manifest(dest)
    if manifest is None:
        return False
    try:
        entries = _manifest_entries(manifest)
        for _part, entry in entries:
            local = _local(dest, entry["path"])
            if not local.is_file():
                return False
            if entry.get("size") is not None and local.stat().st_size != int(entry["size"]):
                return False
    except (ValueError, TypeError, OSError, DownloadError):
        return False
    return bool(entries)


def _sha256_of(path: Path, cancel: threading.Event | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
            if cancel is not None and cancel.is_set():
                raise Cancelled("verification cancelled")
    return digest.hexdigest()


def verify_files(dest: Path) -> list[str]:
    """Check an installed model folder file by file (size and sha256); [] means all good.

    Each problem is one line naming the file, fit to show in a "Verify" report.
    """
    dest = Path(dest)
    manifest = read_manifest(dest)
    if manifest is None:
        return [f"{MANIFEST} is missing or unreadable in {dest}"]
    try:
        entries = _manifest_entries(manifest)
    except (ValueError, TypeError):
        return [f"{MANIFEST} in {dest} is malformed"]
    if not entries:
        return [f"{MANIFEST} in {dest} lists no files"]
    problems: list[str] = []
    for part, entry in entries:
        path = entry["path"]
        try:
            local = _local(dest, path)
        except DownloadError as exc:
            problems.append(str(exc))
            continue
        if not local.is_file():
            problems.append(f"{path} ({part}): missing")
            continue
        actual = local.stat().st_size
        expected = entry.get("size")
        if expected is not None and actual != int(expected):
            problems.append(f"{path} ({part}): size mismatch, {actual} bytes instead of "
                            f"{int(expected)}")
            continue
        sha = entry.get("sha256")
        if sha and _sha256_of(local) != sha:
            problems.append(f"{path} ({part}): sha256 mismatch, the file is corrupted")
    return problems


def _matches_spec(manifest: dict[str, Any], spec: ModelSpec, quantized: bool) -> bool:
    if manifest.get("repo") != spec.repo or bool(manifest.get("quantized")) != quantized:
        return False
    wanted = spec.files_for(quantized)
    files = manifest.get("files") or {}
    return all(isinstance(files.get(part), dict) and files[part].get("path") == path
               for part, path in wanted.items())


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_manifest(dest: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=dest)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest / MANIFEST)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(dest)


# --------------------------------------------------------------------------------------------
# Metadata (reachability) phase
# --------------------------------------------------------------------------------------------

def _http_error(status: int, repo: str, path: str) -> DownloadError:
    if status == 404:
        return DownloadError(f"{repo}/{path} not found on the hub (HTTP 404); the model or "
                             "revision may have been removed or renamed")
    if status in (401, 403):
        return DownloadError(f"access denied to {repo}/{path} on the hub (HTTP {status}); the "
                             "model may be private or gated")
    if status == 416:
        return DownloadError(f"the hub refused to resume {repo}/{path} (HTTP 416); try again")
    return DownloadError(f"the hub answered HTTP {status} for {repo}/{path}; try again later")


def _reason(exc: BaseException, timeout: float) -> str:
    text = str(exc) or type(exc).__name__
    low = text.lower()
    name = type(exc).__name__
    if "timeout" in name.lower() or isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if any(s in low for s in ("name or service not known", "name resolution",
                              "nodename nor servname", "getaddrinfo", "no address associated",
                              "errno -2", "errno -3", "errno -5", "errno 11001")):
        return f"the host name could not be resolved ({text})"
    if "refused" in low or "errno 111" in low or "errno 61" in low or "10061" in low:
        return "connection refused"
    if "unreachable" in low:
        return f"network unreachable ({text})"
    if "disconnected" in low or "closed" in low or "reset" in low:
        return f"the server closed the connection ({text})"
    return text


def _fetch_metadata(spec: ModelSpec, files: dict[str, str], endpoint: str, timeout: float,
                    cancel: threading.Event | None) -> list[_Remote]:
    """HEAD every file through huggingface_hub, within ``timeout`` seconds for all of them."""
    import httpx2
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if constants.HF_HUB_OFFLINE:
        raise _offline_error(endpoint, "offline mode is enabled (HF_HUB_OFFLINE)")

    deadline = time.monotonic() + timeout
    result: list[_Remote] = []
    failure: list[tuple[BaseException, str]] = []

    def url_of(path: str) -> str:
        url = hf_hub_url(spec.repo, path, revision=spec.revision, endpoint=endpoint)
        if not url.startswith(endpoint + "/"):  # endpoint substitution did not apply
            url = endpoint + url[url.index("/", url.index("//") + 2):]
        return url

    def work() -> None:
        path = ""
        try:
            for part, path in files.items():
                remaining = max(0.2, deadline - time.monotonic())
                meta = get_hf_file_metadata(url_of(path), timeout=remaining + 0.5,
                                            endpoint=endpoint)
                etag = (meta.etag or "").lower()
                result.append(_Remote(
                    part=part, path=path, size=meta.size,
                    sha256=etag if _SHA256.fullmatch(etag) else None,
                    git_sha1=etag if _SHA1.fullmatch(etag) else None,
                    commit=meta.commit_hash,
                ))
                if cancel is not None and cancel.is_set():
                    return
        except BaseException as exc:  # handed to the caller's thread
            failure.append((exc, path))

    thread = threading.Thread(target=work, name=f"hub-metadata-{spec.name}", daemon=True)
    thread.start()
    while thread.is_alive():
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"download of {spec.name} cancelled; run it again to resume")
        left = deadline - time.monotonic()
        if left <= 0:
            raise _offline_error(endpoint, f"no answer within {timeout:g} s")
        thread.join(min(0.05, left))
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"download of {spec.name} cancelled; run it again to resume")
    if failure:
        exc, path = failure[0]
        if isinstance(exc, OfflineModeIsEnabled):
            raise _offline_error(endpoint, "offline mode is enabled (HF_HUB_OFFLINE)") from exc
        if isinstance(exc, HfHubHTTPError) and getattr(exc, "response", None) is not None:
            raise _http_error(exc.response.status_code, spec.repo, path) from exc
        if isinstance(exc, (httpx2.TransportError, OSError)):
            raise _offline_error(endpoint, _reason(exc, timeout)) from exc
        raise DownloadError(f"cannot read the details of {spec.repo}/{path} from the hub "
                            f"({endpoint}): {exc}") from exc
    return result


# --------------------------------------------------------------------------------------------
# Byte transfer
# --------------------------------------------------------------------------------------------

class _Reporter:
    def __init__(self, callback: Callable[[DownloadProgress], None] | None, total: int,
                 count: int) -> None:
        self.callback = callback
        self.total = total
        self.count = count
        self.finished = 0  # bytes of files already complete
        self._last = 0.0

    def report(self, path: str, index: int, file_done: int, file_total: int,
               force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        done = self.finished + file_done
        self.total = max(self.total, done)
        self.callback(DownloadProgress(file=path, file_done=file_done,
                                       file_total=max(file_total, file_done), done=done,
                                       total=self.total, file_index=index,
                                       file_count=self.count))


def _existing_ok(local: Path, remote: _Remote) -> str | None:
    """sha256 of ``local`` if it already is the wanted file (from an interrupted run), else None."""
    if not local.is_file() or remote.size is None or local.stat().st_size != remote.size:
        return None
    if remote.sha256 is not None:
        sha = _sha256_of(local)
        return sha if sha == remote.sha256 else None
    if remote.git_sha1 is not None:
        sha1 = hashlib.sha1(b"blob %d\0" % remote.size)
        sha256 = hashlib.sha256()
        with open(local, "rb") as fh:
            while block := fh.read(_HASH_BLOCK):
                sha1.update(block)
                sha256.update(block)
        return sha256.hexdigest() if sha1.hexdigest() == remote.git_sha1 else None
    return None


def _transfer(client: Any, url: str, headers: dict[str, str], spec: ModelSpec, remote: _Remote,
              part_file: Path, index: int, reporter: _Reporter,
              cancel: threading.Event | None) -> str:
    """Stream one file into ``part_file`` (resuming it when possible); return its sha256."""
    import httpx2

    part_file.parent.mkdir(parents=True, exist_ok=True)
    resumable = remote.sha256 is not None  # only resume what we can verify end to end
    offset = part_file.stat().st_size if part_file.exists() else 0
    if offset and (not resumable or (remote.size is not None and offset > remote.size)):
        part_file.unlink()
        offset = 0
    file_total = remote.size if remote.size is not None else 0
    reporter.report(remote.path, index, offset, file_total, force=True)

    digest = hashlib.sha256()
    if offset:
        with open(part_file, "rb") as fh:
            while block := fh.read(_HASH_BLOCK):
                digest.update(block)

    cancelled = f"download of {spec.name} cancelled; run it again to resume"
    done = offset
    if remote.size is None or offset < remote.size:
        for attempt in range(2):
            req = dict(headers)
            if offset:
                req["Range"] = f"bytes={offset}-"
            try:
                with client.stream("GET", url, headers=req) as resp:
                    status = resp.status_code
                    if status == 416 and offset and attempt == 0:
                        part_file.unlink(missing_ok=True)  # stale partial file: start over
                        offset = done = 0
                        digest = hashlib.sha256()
                        continue
                    if status >= 400:
                        raise _http_error(status, spec.repo, remote.path)
                    if status == 206:
                        match = re.match(r"bytes (\d+)-",
                                         resp.headers.get("Content-Range", ""))
                        if not match or int(match.group(1)) != offset:
                            raise DownloadError(
                                f"the hub answered a resume of {spec.repo}/{remote.path} with "
                                "the wrong range; try again")
                        mode = "ab"
                    elif status == 200:
                        if offset:  # the server ignored Range: restart from zero
                            offset = done = 0
                            digest = hashlib.sha256()
                        mode = "wb"
                    else:
                        raise _http_error(status, spec.repo, remote.path)
                    length = resp.headers.get("Content-Length")
                    if remote.size is None and length is not None and length.isdigit():
                        file_total = offset + int(length)
                        reporter.total += file_total
                    last_flush = done
                    with open(part_file, mode) as fh:
                        for chunk in resp.iter_raw():
                            if not chunk:
                                continue
                            fh.write(chunk)
                            digest.update(chunk)
                            done += len(chunk)
                            if cancel is not None and cancel.is_set():
                                fh.flush()
                                raise Cancelled(cancelled)
                            if done - last_flush >= (1 << 22):
                                fh.flush()
                                last_flush = done
                            reporter.report(remote.path, index, done, file_total)
                        fh.flush()
                        os.fsync(fh.fileno())
                break
            except httpx2.TimeoutException as exc:
                raise DownloadError(
                    f"the hub stopped answering while downloading {spec.repo}/{remote.path} "
                    f"({done} of {file_total or '?'} bytes); run it again to resume") from exc
            except httpx2.TransportError as exc:
                what = "lost" if done > offset or isinstance(exc, httpx2.ProtocolError) \
                    else "refused"
                raise DownloadError(
                    f"the connection to the hub was {what} while downloading "
                    f"{spec.repo}/{remote.path} ({done} of {file_total or '?'} bytes): "
                    f"{_reason(exc, READ_TIMEOUT)}; run it again to resume") from exc

    actual = part_file.stat().st_size if part_file.exists() else 0
    if remote.size is not None and actual != remote.size:
        if actual < remote.size:
            raise DownloadError(
                f"the download of {spec.repo}/{remote.path} ended early ({actual} of "
                f"{remote.size} bytes); run it again to resume")
        part_file.unlink(missing_ok=True)
        raise DownloadError(
            f"{spec.repo}/{remote.path} failed verification (size mismatch: {actual} bytes "
            f"instead of {remote.size}); the partial file was deleted, try again")
    sha = digest.hexdigest()
    if remote.sha256 is not None and sha != remote.sha256:
        part_file.unlink(missing_ok=True)
        raise DownloadError(
            f"{spec.repo}/{remote.path} failed verification (sha256 mismatch); the partial "
            "file was deleted, try again")
    reporter.report(remote.path, index, actual, max(file_total, actual), force=True)
    return sha


def _prune_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)


def download_model(spec: ModelSpec, dest: Path, *, quantized: bool = False,
                   progress: Callable[[DownloadProgress], None] | None = None,
                   cancel: threading.Event | None = None,
                   endpoint: str | None = None,
                   offline_timeout: float = 8.0) -> Path:
    """Download ``spec`` (int8 files if ``quantized``) into ``dest``; return ``dest``.

    Returns at once, without network, if ``dest`` already holds this model. Raises
    :class:`OfflineError` when the hub cannot be reached within ``offline_timeout`` seconds (or
    HF_HUB_OFFLINE is set), :class:`Cancelled` when ``cancel`` is set (partial files are kept for
    resuming), :class:`DownloadError` for HTTP errors, dropped connections and files that fail
    verification.
    """
    dest = Path(dest)
    files = spec.files_for(quantized)
    for path in files.values():
        _safe_relpath(path)
    manifest = read_manifest(dest)
    if manifest is not None and _matches_spec(manifest, spec, quantized) and is_installed(dest):
        return dest

    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    if _offline_env():
        raise _offline_error(endpoint, "offline mode is enabled (HF_HUB_OFFLINE)")
    cancelled = f"download of {spec.name} cancelled; run it again to resume"
    if cancel is not None and cancel.is_set():
        raise Cancelled(cancelled)

    remotes = _fetch_metadata(spec, files, endpoint, offline_timeout, cancel)

    import httpx2
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    dest.mkdir(parents=True, exist_ok=True)
    # From here on the folder changes: it must not look installed until the new manifest lands.
    (dest / MANIFEST).unlink(missing_ok=True)

    headers = build_hf_headers()
    headers["Accept-Encoding"] = "identity"
    reporter = _Reporter(progress, sum(r.size or 0 for r in remotes), len(remotes))
    recorded: dict[str, dict[str, Any]] = {}
    commit = next((r.commit for r in remotes if r.commit), None)
    timeout = httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    with httpx2.Client(timeout=timeout, follow_redirects=True) as client:
        for index, remote in enumerate(remotes):
            if cancel is not None and cancel.is_set():
                raise Cancelled(cancelled)
            local = _local(dest, remote.path)
            sha = _existing_ok(local, remote)
            if sha is None:
                url = hf_hub_url(spec.repo, remote.path,
                                 revision=remote.commit or spec.revision, endpoint=endpoint)
                if not url.startswith(endpoint + "/"):
                    url = endpoint + url[url.index("/", url.index("//") + 2):]
                part_file = dest / PARTIAL_DIR / (str(_safe_relpath(remote.path)) + ".part")
                sha = _transfer(client, url, headers, spec, remote, part_file, index, reporter,
                                cancel)
                local.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part_file, local)
                _fsync_dir(local.parent)
            else:
                reporter.report(remote.path, index, local.stat().st_size,
                                local.stat().st_size, force=True)
            size = local.stat().st_size
            reporter.finished += size
            recorded[remote.part] = {"path": remote.path, "size": size, "sha256": sha}

    _write_manifest(dest, {
        "name": spec.name,
        "role": spec.role,
        "repo": spec.repo,
        "revision": spec.revision,
        "commit": commit,
        "quantized": bool(quantized),
        "dim": spec.dim,
        "files": recorded,
        "source": "hub",
        "installed": time.time(),
    })
    _prune_empty_dirs(dest / PARTIAL_DIR)
    return dest
