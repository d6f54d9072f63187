"""What one warm container keeps between invocations, shared by the create path (``core``) and the
sweep (``followup``): both import it from here, below them."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .accepted import AcceptedMemory
from .config import Settings
from .pacing import Pacer
from .vod import VodApi


@dataclass
class Runtime:
    """What one warm container keeps: settings, the VOD client, the pacer, the accepted SessionIds."""

    settings: Settings
    api: VodApi
    limiter: Pacer
    accepted: AcceptedMemory = field(default_factory=AcceptedMemory)
    store: Any = None  # the follow-up's COS store (redraw.followup.store_for), built on first use

def ms_since(started: float) -> int:
    """Milliseconds since a ``time.monotonic()`` reading."""
    return int((time.monotonic() - started) * 1000)
