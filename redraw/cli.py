"""Command line: ``python -m redraw`` (console script ``redraw``).

Importing this module validates nothing and starts nothing; each command
imports what it needs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from typing import Any, List, Optional

DEMO_SUB_APP_ID = "1500000001"


def _context(time_limit_ms: int) -> dict:
    return {"request_id": str(uuid.uuid4()), "function_name": "redraw-local",
            "function_version": "$LATEST", "namespace": "default", "memory_limit_in_mb": 64,
            "time_limit_in_ms": time_limit_ms, "tencentcloud_region": os.environ.get("TENCENTCLOUD_REGION", "ap-guangzhou")}


def _read_event(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    return json.loads(text)


def _has_failures(result: Any) -> bool:
    if isinstance(result, dict) and isinstance(result.get("results"), list):
        return any(r.get("status") == "failed" for r in result["results"])
    if isinstance(result, dict) and "statusCode" in result:
        return int(result["statusCode"]) >= 400
    return False


def cmd_invoke(args: argparse.Namespace) -> int:
    from . import app
    from .errors import RedrawError

    try:
        event = _read_event(args.event)
    except (OSError, ValueError) as exc:
        print(f"redraw: cannot read event {args.event}: {exc}", file=sys.stderr)
        return 2
    emulator = None
    if args.endpoint is None and not args.real:
        from .emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, VodEmulator

        emulator = VodEmulator(latency=args.latency).start()
        os.environ.update(VOD_ENDPOINT=emulator.url, TENCENTCLOUD_SECRETID=DEFAULT_SECRET_ID,
                          TENCENTCLOUD_SECRETKEY=DEFAULT_SECRET_KEY)
        os.environ.pop("TENCENTCLOUD_SESSIONTOKEN", None)
        os.environ.setdefault("VOD_SUB_APP_ID", DEMO_SUB_APP_ID)
        print(f"# VOD emulator on {emulator.url} (in-process)", file=sys.stderr)
    elif args.endpoint is not None:
        os.environ["VOD_ENDPOINT"] = args.endpoint
    app.reset()
    try:
        result = app.handle(event, _context(args.time_limit_ms))
    except RedrawError as exc:
        print(json.dumps({"error": exc.to_dict()}, ensure_ascii=False, indent=2))
        return 1
    finally:
        if emulator is not None:
            emulator.stop()
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if _has_failures(result) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="redraw", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("invoke", help="run main_handler locally on an event file",
                       description="Run main_handler on an event (file or - for stdin). By default "
                                   "against an in-process VOD emulator.",
                       epilog="example: redraw invoke events/cos-put.json")
    p.add_argument("event", help="event JSON file, or - for stdin")
    p.add_argument("--endpoint", help="VOD endpoint to call instead of the embedded emulator")
    p.add_argument("--real", action="store_true",
                   help="call the real, billed VOD API with credentials from the environment")
    p.add_argument("--latency", type=float, default=0.0, help="emulator answer delay in seconds")
    p.add_argument("--time-limit-ms", type=int, default=30000, help="the context's time_limit_in_ms")
    p.set_defaults(func=cmd_invoke)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))
