"""``redraw serve --watch DIR``: a folder as the COS bucket (a local tool, never shipped).

A file that appears under DIR fires the event the bucket's COS trigger would send, once it is
completely written: when the writer closes it (inotify's IN_CLOSE_WRITE, watchdog's
``FileClosedEvent``) or when it is renamed or moved into place (``FileMovedEvent``), never while it
grows (plain modifications fire nothing). A deleted file (or one moved out) fires
``cos:ObjectRemove:Delete``. The key is the path relative to DIR; the event is the one
``redraw.tools.samples.cos_record`` builds (the key percent-encoded as COS sends it, the size, the
MD5 as ETag, a new ``x-cos-request-id``, eventTime now). Hidden files and folders (any path segment
starting with ".") never fire: other tools keep their state under ``DIR/.cos/``. The trigger's
prefix and suffix filter apply (``trigger_filter``: serverless.yml's cos trigger, else the defaults
below, which a test keeps equal to it).

Files already in DIR when the server starts fire nothing, as an upload before the trigger existed.
A folder created (or moved) into DIR is scanned: a file found in it fires once no process holds it
open for writing (a read lease, ``F_SETLEASE``, is refused while a writer has the file open), so a
``cp -r`` that wrote a file before the folder's own watch existed is not missed; the same completed
file (inode, size, mtime) never fires twice.

Metadata: a sidecar ``<file>.meta.json`` beside a file holds the ``x-cos-meta-*`` headers its upload
carries (a JSON object, e.g. ``{"x-cos-meta-redraw-style": "watercolor"}``), as an uploader sets them
with ``coscli --meta`` (docs/rules.md). Write the sidecar first: it is read when the file fires.
Sidecars never fire themselves.

Close events are Linux's (inotify): ``--watch`` needs Linux.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import mimetypes
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Optional, Tuple

from . import samples

#: serverless.yml's cos trigger filter (tests/test_watch.py keeps these equal to the file)
DEFAULT_PREFIX = "uploads/"
DEFAULT_SUFFIX = ""
PUT = "cos:ObjectCreated:Put"
DELETE = "cos:ObjectRemove:Delete"
SIDECAR = ".meta.json"
_F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)
_CHUNK = 1024 * 1024


class WatchError(Exception):
    """The folder cannot be watched (one line for the CLI)."""


def trigger_filter(path: str = "serverless.yml") -> Tuple[str, str, str]:
    """``(prefix, suffix, source)`` of the cos trigger in ``path`` (read from the current folder, as
    ``sls`` reads it), else the defaults. ``${env:NAME}`` values are read from the environment."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return DEFAULT_PREFIX, DEFAULT_SUFFIX, "defaults"
    try:
        import yaml
    except ImportError:
        return DEFAULT_PREFIX, DEFAULT_SUFFIX, "defaults (pyyaml is not installed: pip install 'redraw[tools]')"
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return DEFAULT_PREFIX, DEFAULT_SUFFIX, f"defaults ({path} is not valid YAML)"
    inputs = document.get("inputs") if isinstance(document, dict) else None
    events = inputs.get("events") if isinstance(inputs, dict) else None
    for item in events if isinstance(events, list) else []:
        cos = item.get("cos") if isinstance(item, dict) else None
        parameters = cos.get("parameters") if isinstance(cos, dict) else None
        if isinstance(parameters, dict):
            found = parameters.get("filter")
            found = found if isinstance(found, dict) else {}
            return _resolve(found.get("prefix")), _resolve(found.get("suffix")), path
    return DEFAULT_PREFIX, DEFAULT_SUFFIX, "defaults"


def _resolve(value: Any) -> str:
    import re

    text = "" if value is None else str(value)
    return re.sub(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: os.environ.get(m.group(1), ""), text)


def is_hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/"))


def object_key(relative: str) -> str:
    """The object key for a path relative to DIR; UnicodeError when the name is not valid UTF-8."""
    relative.encode("utf-8")  # names that are not UTF-8 arrive surrogate-escaped (os.fsdecode): COS keys are UTF-8
    return relative


def _md5(path: str) -> Tuple[str, int]:
    digest, size = hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(_CHUNK)
            if not chunk:
                return digest.hexdigest(), size
            digest.update(chunk)
            size += len(chunk)


class SidecarError(ValueError):
    """A metadata sidecar that cannot be used (one line for the watcher's note)."""


def sidecar_meta(path: str) -> dict:
    """The metadata of ``<path>.meta.json`` ({} without one): header names lower-cased as COS keeps them,
    values as written (COS carries text: anything else reaches the function as it is, and fails there)."""
    try:
        with open(path + SIDECAR, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SidecarError(f"its sidecar {os.path.basename(path)}{SIDECAR} is not readable JSON "
                           f"({type(exc).__name__})") from None
    if not isinstance(data, dict) or not all(str(k).lower().startswith("x-cos-meta-") for k in data):
        raise SidecarError(f"its sidecar {os.path.basename(path)}{SIDECAR} must be a JSON object of "
                           "x-cos-meta-* headers")
    return {str(k).lower(): v for k, v in data.items()}


def put_event(path: str, key: str, *, bucket: str, region: str) -> dict:
    """The COS event of an upload of the file at ``path`` as ``key`` (reads it: OSError when it cannot;
    SidecarError when its metadata sidecar is not usable)."""
    meta = sidecar_meta(path)
    etag, size = _md5(path)
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return {"Records": [samples.cos_record(key, bucket=bucket, region=region, size=size, event_name=PUT,
                                           etag=etag, content_type=content_type, source_ip="127.0.0.1",
                                           meta=meta)]}


def delete_event(key: str, *, bucket: str, region: str) -> dict:
    return {"Records": [samples.cos_record(key, bucket=bucket, region=region, size=0, event_name=DELETE,
                                           content_type="", source_ip="127.0.0.1")]}


def _has_writer(path: str) -> bool:
    """True while some process holds the file open for writing (a read lease is then refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False  # reading it will say what is wrong
    try:
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
        return False
    except OSError as exc:
        # EAGAIN/EBUSY: open for writing. Anything else (leases disabled, not the owner): assume complete.
        return exc.errno in (errno.EAGAIN, errno.EBUSY)
    finally:
        os.close(fd)


class FolderWatcher:
    """Turns files under ``root`` into COS events; ``deliver(event, label)`` gets each one.

    ``note(line)`` gets one line for what is not delivered and why (unreadable files, names that are
    not UTF-8, keys outside the filter). Events are built on one thread of their own (the file is read
    for its MD5), in the order the file system reported them.
    """

    def __init__(self, root: str, *, bucket: str, region: str, prefix: str, suffix: str,
                 deliver: Callable[[dict, str], None], note: Callable[[str], None],
                 own_prefixes: Tuple[str, ...] = ()) -> None:
        self.root = os.path.realpath(root)
        self.bucket, self.region, self.prefix, self.suffix = bucket, region, prefix, suffix
        self.own_prefixes = own_prefixes  # the function's own objects (records, deliveries): no note
        self.deliver, self.note = deliver, note
        self._fired: Dict[str, Tuple[int, int, int]] = {}   # path -> (inode, size, mtime_ns) of its last Put
        self._jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watch")
        self._observer: Any = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "FolderWatcher":
        if not os.path.isdir(self.root):
            raise WatchError(f"--watch {self.root}: not a folder")
        try:
            from watchdog.observers.inotify import InotifyObserver
        except ImportError as exc:
            if getattr(exc, "name", "") and str(exc.name).startswith("watchdog.observers"):
                raise WatchError("--watch needs Linux: it fires on inotify's close events") from None
            raise
        from watchdog.events import FileSystemEventHandler

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_closed(self, event: Any) -> None:          # IN_CLOSE_WRITE: a writer finished
                if not event.is_directory:
                    watcher._submit(watcher._put, event.src_path)

            def on_moved(self, event: Any) -> None:           # renamed into place, or moved in/out
                watcher._submit(watcher._moved, event.src_path, event.dest_path, event.is_directory)

            def on_deleted(self, event: Any) -> None:
                if not event.is_directory:
                    watcher._submit(watcher._delete, event.src_path)

            def on_created(self, event: Any) -> None:         # a file: wait for its close; a folder: scan it
                if event.is_directory:
                    watcher._submit(watcher._scan, event.src_path, True)

        # generate_full_events: a file moved in from outside DIR is a move (complete), not a creation
        observer = InotifyObserver(generate_full_events=True)
        try:
            observer.schedule(Handler(), self.root, recursive=True)
        except OSError as exc:
            raise WatchError(f"cannot watch {self.root}: {exc.strerror or exc} "
                             "(inotify limits: fs.inotify.max_user_watches)") from None
        observer.daemon = True
        observer.start()
        self._observer = observer
        return self

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        self._jobs.shutdown(wait=False, cancel_futures=True)

    # --- events -------------------------------------------------------------------------------

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._jobs.submit(self._guarded, fn, *args)
        except RuntimeError:  # stopping
            pass

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the watcher
            self.note(f"watch: {type(exc).__name__} while handling a file event; still watching")

    def _relative(self, path: str) -> Optional[str]:
        if not path:
            return None
        rel = os.path.relpath(path, self.root)
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            return None
        return rel.replace(os.sep, "/")

    def _key(self, path: str, *, tell: bool) -> Optional[str]:
        """The object key, or None for files that fire nothing (hidden, not UTF-8, outside the filter)."""
        rel = self._relative(path)
        if rel is None or is_hidden(rel) or rel.endswith(SIDECAR):
            return None
        try:
            key = object_key(rel)
        except UnicodeError:
            if tell:
                shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
                self.note(f"watch: skipped {shown}: its name is not valid UTF-8 (COS keys are UTF-8); no event sent")
            return None
        if not (key.startswith(self.prefix) and key.endswith(self.suffix)):
            if tell and not key.startswith(self.own_prefixes):
                self.note(f"watch: {key} is outside the trigger's filter (prefix {self.prefix!r}, "
                          f"suffix {self.suffix!r}); no event, as COS would send none")
            return None
        return key

    def _put(self, path: str) -> None:
        key = self._key(path, tell=True)
        if key is None:
            return
        try:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode):
                return
            identity = (info.st_ino, info.st_size, info.st_mtime_ns)
            if self._fired.get(path) == identity:
                return  # this completed file already fired (a folder scan and its close event)
            event = put_event(path, key, bucket=self.bucket, region=self.region)
        except OSError as exc:
            self.note(f"watch: cannot read {key}: {exc.strerror or type(exc).__name__}; no event sent, still watching")
            return
        except SidecarError as exc:
            self.note(f"watch: {key}: {exc}; no event sent: fix it and write the file again")
            return
        self._fired[path] = identity
        self.deliver(event, f"{PUT} {key}")

    def _delete(self, path: str) -> None:
        self._fired.pop(path, None)
        key = self._key(path, tell=False)
        if key is not None:
            self.deliver(delete_event(key, bucket=self.bucket, region=self.region), f"{DELETE} {key}")

    def _moved(self, src: str, dest: str, is_directory: bool) -> None:
        if not is_directory:
            if src:
                self._delete(src)
            if dest:
                self._put(dest)
            return
        if src:  # the files of a folder moved away: the ones this watcher fired are gone from the bucket
            inside = src.rstrip(os.sep) + os.sep
            for path in sorted(p for p in self._fired if p.startswith(inside)):
                self._delete(path)
        if dest:
            self._scan(dest, False)

    def _scan(self, folder: str, check_writers: bool) -> None:
        """Fire for the files of a folder that appeared (created: those no process is still writing)."""
        rel = self._relative(folder)
        if rel is None or is_hidden(rel):
            return
        for base, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = os.path.join(base, name)
                if check_writers and _has_writer(path):
                    continue  # its close event will fire it
                self._put(path)
