"""The follow-up (``REDRAW_FOLLOW_UP=true``): every task redraw creates is followed to its end.

- ``records``: the layout of the state bucket, and the record written when a task is created;
- ``sweep``: the timer trigger's sweep, which checks pending tasks with DescribeTaskDetail on a
  schedule by their age and finishes the ones that ended, exactly once (COS create-only claims);
- ``delivery``: the succeeded task's output streamed into COS in parts.

COS requests leave through ``redraw.cosclient``. Nothing here is imported while the follow-up is off.
"""
from __future__ import annotations

from typing import Any

from ..cosclient import CosStore


def store_for(rt: Any) -> CosStore:
    """The container's COS store, built on first use and kept on the Runtime."""
    if rt.store is None:
        rt.store = CosStore(rt.settings)
    return rt.store
