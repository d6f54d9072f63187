"""The webhook secret and signature (Standard Webhooks v1), with the standard library only."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"
MIN_KEY_BYTES = 24


def secret_problem(value: str) -> str:
    """What is wrong with a ``REDRAW_WEBHOOK_SECRET`` ('' when nothing); never quotes it."""
    if not value.startswith(PREFIX):
        return f"must start with {PREFIX} followed by base64 of at least {MIN_KEY_BYTES} random bytes"
    try:
        key = base64.b64decode(value[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return f"must be {PREFIX} followed by valid base64"
    if len(key) < MIN_KEY_BYTES:
        return f"must carry at least {MIN_KEY_BYTES} random bytes after {PREFIX} (base64)"
    return ""


def key_of(secret: str) -> bytes:
    return base64.b64decode(secret[len(PREFIX):])


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` + base64 of HMAC-SHA256 over ``id.timestamp.body``."""
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def new_secret() -> str:
    """A fresh secret (local runs, docs): 32 random bytes."""
    import secrets

    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")
