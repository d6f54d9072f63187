"""What the command line's commands share (``cli``, ``serve``, ``loop``): exit codes, the one-line
error, where VOD calls go, the environment a local run sets, and an invocation's context."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping, MutableMapping, Optional

from ..errors import ConfigError
from .loopback import is_loopback

DEMO_SUB_APP_ID = "1500000001"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: the checkout (or site-packages) that holds handler.py and redraw/
ROOT = Path(__file__).resolve().parents[2]
BUCKET_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]{5,}$")
REGION_RE = re.compile(r"^[a-z]{2,}(?:-[a-z0-9]+)+$")


class CliError(Exception):
    """One line for stderr, and the exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message, self.code = message, code


def note(message: str) -> None:
    """One ``redraw:`` line on stderr."""
    print(f"redraw: {message}", file=sys.stderr, flush=True)


def dump(value: Any) -> str:
    """JSON as the CLI prints it: indented, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, indent=2)


def _apply(env: MutableMapping[str, str], updates: Mapping[str, Optional[str]]) -> None:
    """Set each variable of ``updates`` in ``env``, or remove it where its value is None."""
    for name, value in updates.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value


@contextlib.contextmanager
def environ(updates: Dict[str, Optional[str]]) -> Iterator[None]:
    """Set (or, with None, remove) environment variables; restore them afterwards."""
    saved = {name: os.environ.get(name) for name in updates}
    try:
        _apply(os.environ, updates)
        yield
    finally:
        _apply(os.environ, saved)


def merged_env(updates: Dict[str, Optional[str]]) -> Dict[str, str]:
    """The environment a subprocess gets: this one's with ``updates`` applied."""
    env = dict(os.environ)
    _apply(env, updates)
    return env


# --- where VOD calls go ---------------------------------------------------------------------

def refuse_real(host: str) -> CliError:
    return CliError(f"refusing to call the real, billed VOD API at {host}: add --real to do that, "
                    "or use --endpoint http://127.0.0.1:PORT with an emulator (redraw emulator)")


@contextlib.contextmanager
def vod_target(args: argparse.Namespace, *, embedded_ok: bool, emulator_options: Optional[dict] = None,
               quiet: bool = False, on_emulator: Optional[Callable[[Any], None]] = None) -> Iterator[Dict[str, Optional[str]]]:
    """Decide where VOD calls go; yields the environment changes that point there.

    Raises CliError (before any call) when that would be the real API without ``--real``.
    With ``embedded_ok`` and no VOD_ENDPOINT at all, runs an in-process emulator meanwhile (and says
    so on stderr, unless ``quiet``: the caller says it itself).
    """
    from ..config import DEFAULT_ENDPOINT, parse_endpoint

    endpoint = getattr(args, "endpoint", None)
    if endpoint:
        try:
            parse_endpoint(endpoint)
        except ConfigError:
            raise CliError("--endpoint must be a host name or an http(s)://host[:port] URL") from None
        yield {"VOD_ENDPOINT": endpoint}
        return
    raw = (os.environ.get("VOD_ENDPOINT") or "").strip()
    if getattr(args, "real", False) or (raw and is_loopback(parse_endpoint(raw).host)):
        yield {}
        return
    if raw:
        raise refuse_real(parse_endpoint(raw).host)
    if not embedded_ok:
        raise refuse_real(DEFAULT_ENDPOINT)
    from .emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, VodEmulator

    emulator = VodEmulator(**(emulator_options or {})).start()
    if on_emulator is not None:  # redraw serve's console asks it for Progress
        on_emulator(emulator)
    try:
        if not quiet:
            note(f"note: VOD_ENDPOINT is not set, so calls go to an in-process VOD emulator at "
                  f"{emulator.url}; nothing is sent to Tencent Cloud (--endpoint URL or --real to change)")
        yield {"VOD_ENDPOINT": emulator.url, "TENCENTCLOUD_SECRETID": DEFAULT_SECRET_ID,
               "TENCENTCLOUD_SECRETKEY": DEFAULT_SECRET_KEY, "TENCENTCLOUD_SESSIONTOKEN": None,
               "VOD_SUB_APP_ID": os.environ.get("VOD_SUB_APP_ID") or DEMO_SUB_APP_ID}
    finally:
        emulator.stop()


def invocation_context(time_limit_ms: int) -> dict:
    """An SCF-like ``context`` for one local invocation."""
    return {"request_id": str(uuid.uuid4()), "function_name": "redraw-local",
            "function_version": "$LATEST", "namespace": "default", "memory_limit_in_mb": 64,
            "time_limit_in_ms": time_limit_ms, "tencentcloud_region": os.environ.get("TENCENTCLOUD_REGION", "ap-guangzhou")}


def load_settings_from(updates: Dict[str, Optional[str]]) -> Any:
    """The function's Settings as they would load with ``updates`` applied to the environment."""
    from ..config import load_settings

    return load_settings(merged_env(updates))
