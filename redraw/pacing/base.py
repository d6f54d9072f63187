"""The interface every pacer offers to the retry loop."""
from __future__ import annotations

from typing import Protocol

#: Seconds added to every window: a request reaches VOD a little later than it leaves,
#: and two that left one window apart must not land inside one of VOD's seconds.
JITTER_MARGIN = 0.02


class Pacer(Protocol):
    def acquire(self, budget: float) -> bool:
        """Wait for a send slot; False (and no slot taken) if it would take longer than ``budget``."""

    def on_throttle(self) -> None:
        """VOD answered RequestLimitExceeded."""

    def on_success(self) -> None:
        """VOD answered something other than RequestLimitExceeded."""
