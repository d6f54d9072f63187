"""The VOD emulator's processing of a task: fetch the input, then make the redrawn output.

``Processing`` runs each task's work on a small thread pool (``WORKERS`` at a time; VOD answers
CreateAigcVideoRedrawTask with a TaskId first and fetches afterwards), in a temporary folder that
``close()`` removes. A ``Job`` says how it went: still running, failed (the input could not be read:
``error`` is VOD's ErrCode/ErrCodeExt/Message), or done, with the made output file when there is
one (else the emulator serves its sample clip, and ``note`` says why).
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Tuple

from .redraw_output import MediaError, find_ffmpeg, make_redrawn
from .vod_input import FETCH_MODES, FetchFailed, InputRoutes, Target, fetch_input, resolve

__all__ = ["INPUT_ERR_CODE", "INPUT_ERR_CODE_EXT", "WORKERS", "FileContent", "Job", "Processing"]

WORKERS = 2                                           # fetches and ffmpeg runs at once (2 cores)
INPUT_ERR_CODE = 60000                                # VOD's task ErrCode class "source file error"
INPUT_ERR_CODE_EXT = "SourceFileError.DownloadNotAccessible"  # VOD error codes (266/39145)
_CHUNK = 64 * 1024


class Job:
    """One task's processing; its fields are written once, by the worker, before ``finished`` is set."""

    __slots__ = ("error", "fetched_bytes", "finished", "note", "output")

    def __init__(self) -> None:
        self.finished = threading.Event()
        self.error: Optional[Tuple[int, str, str]] = None   # (ErrCode, ErrCodeExt, Message)
        self.output: Optional[Path] = None                  # the made MP4; None: the sample stands in
        self.note = ""
        self.fetched_bytes: Optional[int] = None

    @property
    def pending(self) -> bool:
        return not self.finished.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self.finished.wait(timeout)


class Processing:
    """Fetch inputs per ``mode`` (see ``vod_input``) and make outputs with ``ffmpeg`` (a path, None to look
    for one, "" for none: the sample clip is every output)."""

    def __init__(self, mode: str = "local", routes: Optional[InputRoutes] = None,
                 ffmpeg: Optional[str] = None) -> None:
        if mode not in FETCH_MODES:
            raise ValueError(f"fetch_inputs must be one of {', '.join(FETCH_MODES)}")
        self.mode = mode
        self.routes = routes if routes is not None else InputRoutes()
        self._ffmpeg = ffmpeg
        self._lock = threading.Lock()
        self._pool: Optional[ThreadPoolExecutor] = None
        self._folder: Optional[Path] = None
        self._closing = threading.Event()

    @property
    def ffmpeg(self) -> Optional[str]:
        if self._ffmpeg is None:
            self._ffmpeg = find_ffmpeg() or ""
        return self._ffmpeg or None

    def start(self, job: Job, task_id: str, url: Optional[str], on_failure: Callable[[Job], None]) -> Job:
        """Begin ``job``, the work of one task (``url`` None: a FileId input, which the emulator holds no
        media for). Call it without holding the emulator's lock: ``on_failure(job)`` may run before it returns."""
        try:
            target = None if url is None else resolve(url, self.mode, self.routes)
        except FetchFailed as exc:
            self._fail(job, on_failure, f"The source file could not be downloaded: {exc}.")
            return job
        if target is None:
            job.note = ("input not fetched: fetch_inputs is off" if self.mode == "off" else
                        "input not fetched: a FileId, which this emulator holds no media for" if url is None else
                        "input not fetched: its host is not served on this machine (the sample stands in)")
            job.finished.set()
            return job
        with self._lock:
            if self._pool is None or self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="vod-emulator-"))
                self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="vod-emulator-work")
                self._closing = threading.Event()
            pool, folder, closing = self._pool, self._folder, self._closing
        pool.submit(self._run, job, task_id, target, folder, closing, on_failure)
        return job

    @staticmethod
    def _fail(job: Job, on_failure: Callable[[Job], None], message: str) -> None:
        job.error = (INPUT_ERR_CODE, INPUT_ERR_CODE_EXT, message)
        on_failure(job)
        job.finished.set()

    def _run(self, job: Job, task_id: str, target: Target, folder: Path, closing: threading.Event,
             on_failure: Callable[[Job], None]) -> None:
        source = folder / f"{task_id}.input"
        try:
            if closing.is_set():
                job.note = "input not fetched: the emulator was stopping"
                return
            job.fetched_bytes = fetch_input(target, source)
            ffmpeg = self.ffmpeg
            if not ffmpeg:
                job.note = "input fetched; no ffmpeg here, so the output is the sample clip"
                return
            try:
                job.output = make_redrawn(source, folder / f"{task_id}.mp4", ffmpeg=ffmpeg)
                job.note = "input fetched and redrawn by ffmpeg"
            except MediaError as exc:
                job.note = f"input fetched, but not redrawn ({exc}): the output is the sample clip"
        except FetchFailed as exc:
            self._fail(job, on_failure, f"The source file could not be downloaded: {exc}.")
        except Exception as exc:  # noqa: BLE001 - a bug here must still end the task, not hang it
            self._fail(job, on_failure, f"The source file could not be read ({type(exc).__name__}).")
        finally:
            source.unlink(missing_ok=True)
            job.finished.set()

    def close(self) -> None:
        """Wait for running work, then remove the folder of made outputs."""
        with self._lock:
            pool, folder, closing = self._pool, self._folder, self._closing
            self._pool = self._folder = None
        closing.set()  # queued work ends at once; running work finishes
        if pool is not None:
            pool.shutdown(wait=True)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


class FileContent:
    """A made output file served as the emulator serves outputs: ``size``, ``etag``, ``chunks(start, stop)``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        st = path.stat()
        self.size = st.st_size
        tag = hashlib.sha256(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:32]
        self.etag = f'"{tag}"'

    def chunks(self, start: int, stop: int):
        """The bytes [start, stop), in pieces of at most 64 KiB."""
        with open(self.path, "rb") as handle:
            handle.seek(start)
            left = stop - start
            while left > 0:
                piece = handle.read(min(_CHUNK, left))
                if not piece:
                    return
                left -= len(piece)
                yield piece
