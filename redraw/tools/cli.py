"""Command line: ``python -m redraw.tools`` (console script ``redraw``; needs the ``tools`` extra: rich).

Importing this module validates nothing and starts nothing; each command
imports what it needs (no pydantic, structlog or SDK before a command runs).

Where VOD calls go (``invoke``, ``status``, ``submit``): ``--endpoint URL``, else the
environment's VOD_ENDPOINT when it is a loopback address (an emulator), else an
in-process emulator when VOD_ENDPOINT is unset (``invoke`` and ``submit`` only). The
real, billed API (VOD_ENDPOINT unset or not loopback) is called only with ``--real``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, List, Optional

from ..errors import ConfigError, InvalidRequestError, RedrawError, UpstreamError
from .common import (BUCKET_RE, DEMO_SUB_APP_ID, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, REGION_RE,
                     CliError, dump, environ, invocation_context, load_settings_from, note, vod_target)

EVENT_KINDS = ("cos", "cos-delete", "url", "apigw", "ckafka", "direct", "timer")
SERVE_TIMEOUT_S = 60      # serverless.yml's timeout (tests/test_serve.py keeps them equal)
DEFAULT_KEY = "uploads/clip.mp4"


# --- output helpers -------------------------------------------------------------------------

class _Progress:
    """Progress on stderr: rich's bar on a terminal; one plain line per change otherwise (pipes, CI logs)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._last = ""
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

            self._bar = Progress(BarColumn(), TaskProgressColumn(), TextColumn("{task.description}"),
                                 console=Console(stderr=True))
            self._task = self._bar.add_task("", total=1.0)
            self._bar.start()

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def draw(self, fraction: float, text: str) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if self._bar is not None:
            self._bar.update(self._task, completed=fraction, description=text)
            return
        line = f"{int(fraction * 100):3d}% {text}"
        if line != self._last:
            print(line, file=sys.stderr, flush=True)
            self._last = line

    def message(self, text: str) -> None:
        """A line of its own, above the bar."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=sys.stderr, flush=True)


# --- where VOD calls go ---------------------------------------------------------------------

# --- invoke ---------------------------------------------------------------------------------

def _read_event(path: str) -> Any:
    if path == "-":
        return json.loads(sys.stdin.read())
    with open(path, encoding="utf-8") as handle:
        return json.loads(handle.read())


def _has_failures(result: Any) -> bool:
    if isinstance(result, dict) and isinstance(result.get("results"), list):
        return any(r.get("status") == "failed" for r in result["results"])
    if isinstance(result, dict) and "statusCode" in result:
        return int(result["statusCode"]) >= 400
    return False


def cmd_invoke(args: argparse.Namespace) -> int:
    from .. import app

    try:
        event = _read_event(args.event)
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read event {args.event}: {exc}") from None
    if args.time_limit_ms <= 0:
        raise CliError("--time-limit-ms must be positive")
    rules = {"REDRAW_RULES_FILE": os.path.abspath(args.rules), "REDRAW_RULES": None} if args.rules else {}
    with vod_target(args, embedded_ok=True, emulator_options={"latency": args.latency}) as updates:
        with environ({**updates, **rules}):
            app.reset()
            try:
                result = app.handle(event, invocation_context(args.time_limit_ms))
            except ConfigError as exc:  # the function's configuration, not the event: exit 2
                raise CliError(exc.message) from None
            except RedrawError as exc:
                print(dump({"error": exc.to_dict()}), flush=True)
                return EXIT_FAILED
            finally:
                app.reset()
    print(dump(result), flush=True)
    return EXIT_FAILED if _has_failures(result) else EXIT_OK


# --- generate-event -------------------------------------------------------------------------

def _numbered(key: str, count: int) -> List[str]:
    """``clip.mp4`` × 3 → ``clip-001.mp4``, ``clip-002.mp4``, ``clip-003.mp4``."""
    import posixpath

    if count == 1:
        return [key]
    stem, ext = posixpath.splitext(key)
    width = max(3, len(str(count)))
    return [f"{stem}-{i:0{width}d}{ext}" for i in range(1, count + 1)]


def cmd_generate_event(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from . import samples

    if not BUCKET_RE.match(args.bucket):
        raise CliError("--bucket must look like NAME-APPID, e.g. media-1250000000 (lower-case "
                       "letters, digits and hyphens, then the numeric APPID)")
    if not REGION_RE.match(args.region):
        raise CliError("--region must look like ap-guangzhou")
    keys = args.key or [DEFAULT_KEY]
    for key in keys:
        if not key or key.startswith("/") or key.endswith("/"):
            raise CliError("--key must be an object key such as uploads/clip.mp4 "
                           "(no leading or trailing /)")
    if args.kind == "timer":  # the sweep's trigger: nothing to choose but the time it fires
        given = [name for name, value in (("--key", args.key), ("--records", args.records), ("--size", args.size),
                                          ("--url", args.url), ("--base64", args.base64 or None)) if value is not None]
        if given:
            raise CliError(f"{', '.join(given)} do not apply to timer events")
        print(dump(samples.timer_event()), flush=True)
        return EXIT_OK
    cos_kind = args.kind in ("cos", "cos-delete")
    batch_kind = cos_kind or args.kind == "ckafka"
    if not cos_kind and args.size is not None:
        raise CliError("--size applies to cos and cos-delete events only")
    if not batch_kind:
        if args.records is not None:
            raise CliError("--records applies to cos, cos-delete and ckafka events only")
        if len(keys) > 1:
            raise CliError(f"{args.kind} events take one --key")
    if args.base64 and args.kind != "apigw":
        raise CliError("--base64 applies to apigw events only")
    if args.url is not None and cos_kind:
        raise CliError("--url applies to url, apigw, ckafka and direct events (cos events are built from --key)")
    if args.records is not None:
        if not 1 <= args.records <= 1000:
            raise CliError("--records must be between 1 and 1000")
        if len(keys) > 1 and args.records != len(keys):
            raise CliError("give one --key with --records N (keys are numbered), or several --key without it")
        if len(keys) == 1:
            keys = _numbered(keys[0], args.records)
    if args.size is not None and args.size < 0:
        raise CliError("--size must be 0 or more")
    if args.meta and args.kind != "cos":
        raise CliError("--meta applies to cos events only")
    from .rulescmd import parse_meta

    try:
        meta = parse_meta(args.meta)
    except ValueError as exc:
        raise CliError(str(exc)) from None

    if cos_kind:
        delete = args.kind == "cos-delete"
        size = args.size if args.size is not None else (0 if delete else 7340032)
        event: Any = samples.cos_event(
            keys, bucket=args.bucket, region=args.region, size=size,
            event_name="cos:ObjectRemove:Delete" if delete else "cos:ObjectCreated:Put", meta=meta)
    elif args.kind == "ckafka":
        event = samples.ckafka_event([samples.redraw_body(
            args.url or f"https://{args.bucket}.cos.{args.region}.myqcloud.com/{quote(key, safe='/-_.~')}")
            for key in keys])
    else:
        url = args.url or f"https://{args.bucket}.cos.{args.region}.myqcloud.com/{quote(keys[0], safe='/-_.~')}"
        body = samples.redraw_body(url)
        if args.kind == "apigw":
            event = samples.apigw_event(body, base64_body=args.base64)
        elif args.kind == "url":
            event = samples.url_event(body, region=args.region)
        else:
            event = body
    print(dump(event), flush=True)
    return EXIT_OK


# --- config ---------------------------------------------------------------------------------

def cmd_config(args: argparse.Namespace) -> int:
    from .rulescmd import run

    return run(args)


# --- emulator -------------------------------------------------------------------------------

def cmd_emulator(args: argparse.Namespace) -> int:
    from . import emulator

    if not 0 <= args.port <= 65535:
        raise CliError("--port must be between 0 and 65535 (0: any free port)")
    for flag, value in (("--rps", args.rps), ("--latency", args.latency),
                        ("--task-duration", args.task_duration)):
        if value < 0:
            raise CliError(f"{flag} must be 0 or more")
    for flag, rate in (("--fault-rate", args.fault_rate), ("--failure-rate", args.failure_rate),
                       ("--abort-rate", args.abort_rate)):
        if not 0.0 <= rate <= 1.0:
            raise CliError(f"{flag} must be between 0 and 1")
    if args.failure_rate + args.abort_rate > 1.0:
        raise CliError("--failure-rate and --abort-rate must add up to 1 or less")
    key = os.environ.get("VOD_EMULATOR_SECRET_KEY")   # a key of your own, never printed
    try:
        inputs = emulator.input_options(args)
    except ValueError as exc:
        raise CliError(f"--cos-endpoint: {exc}") from None
    emu = emulator.VodEmulator(secret_key=key or emulator.DEFAULT_SECRET_KEY, host=args.host, port=args.port,
                               rps=args.rps, latency=args.latency, task_duration=args.task_duration,
                               fault_rate=args.fault_rate, failure_rate=args.failure_rate,
                               abort_rate=args.abort_rate, **inputs)
    emu.inject(*args.fault)   # ValueError (one line) for an unknown fault
    key_hint = ('"$VOD_EMULATOR_SECRET_KEY"' if key else
                f"{emulator.DEFAULT_SECRET_KEY} (the emulator's fixed public test key, not a secret)")

    def banner(e: Any) -> str:
        return (f"VOD emulator on {e.url} (SecretId {e.secret_id}; latency {args.latency:g} s, "
                f"{args.fault_rate:.0%} random faults, tasks finish after {args.task_duration:g} s). "
                f"Point the function at it: VOD_ENDPOINT={e.url} VOD_SUB_APP_ID={DEMO_SUB_APP_ID} "
                f"TENCENTCLOUD_SECRETID={e.secret_id} TENCENTCLOUD_SECRETKEY={key_hint} -- Ctrl-C stops it")

    try:
        return emulator.serve(emu, banner)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
                       "(try another --port, or --port 0)", EXIT_FAILED) from None


# --- serve ----------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    from . import serve

    return serve.run(args)


# --- status ---------------------------------------------------------------------------------

def _print_status(summary: dict, as_json: bool) -> None:
    if as_json:
        print(dump(summary), flush=True)
        return

    def show(value: Any) -> str:
        return "-" if value is None or value == "" else str(value)
    progress = summary.get("Progress")
    lines = [("TaskId", summary.get("TaskId")), ("Status", summary.get("Status")),
             ("Progress", None if progress is None else f"{progress}%"),
             ("ErrCode", summary.get("ErrCode")), ("Message", summary.get("Message"))]
    output = summary.get("Output") or {}
    if not output:
        lines.append(("Output", None))
    for key in ("FileId", "FileUrl", "FileType", "StorageMode", "MediaName", "ExpireTime"):
        if output.get(key):
            lines.append((f"Output.{key}", output[key]))
    lines += [("SessionId", summary.get("SessionId")), ("SessionContext", summary.get("SessionContext")),
              ("CreateTime", summary.get("CreateTime")), ("FinishTime", summary.get("FinishTime")),
              ("RequestId", summary.get("RequestId"))]
    lines += [(name, summary.get(name)) for name in ("State", "DeliveredTo", "DownloadUrl") if name in summary]
    if sys.stdout.isatty():  # a table on a terminal; plain "Name  value" lines for pipes and scripts
        from rich.console import Console
        from rich.table import Table

        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name, value in lines:
            table.add_row(name, show(value))
        Console().print(table, markup=False, highlight=False)
        return
    width = max(len(name) for name, _ in lines) + 2
    for name, value in lines:
        print(f"{name:<{width}}{show(value)}")
    sys.stdout.flush()


def cmd_loop(args: argparse.Namespace) -> int:
    from . import loop

    if not 5 <= args.timeout <= 600:
        raise CliError("--timeout must be between 5 and 600 seconds")
    if not 1 <= args.sweep_every <= 60:
        raise CliError("--sweep-every must be between 1 and 60 seconds")
    if args.dir is not None and os.path.exists(args.dir) and not os.path.isdir(args.dir):
        raise CliError(f"--dir {args.dir}: not a folder")
    code = loop.run(args.dir, timeout=args.timeout, sweep_every=args.sweep_every, keep=args.keep, stay=args.stay)
    return EXIT_OK if code == 0 else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    from .. import policy, tasks
    from ..vod import VodClient

    if args.interval <= 0 or args.timeout <= 0:
        raise CliError("--interval and --timeout must be positive")
    tasks.check_task_id(args.task_id)
    with vod_target(args, embedded_ok=False) as updates:
        settings = load_settings_from(updates)
    api = VodClient(settings)

    def describe() -> dict:
        summary = tasks.describe(api, settings.sub_app_id, args.task_id, settings.http_timeout)
        if settings.follow_up:  # the receipt's state, DeliveredTo and a DownloadUrl
            from ..cosclient import CosStore
            from ..followup.records import task_answer
            from ..retries import Deadline

            summary.update(task_answer(settings, CosStore(settings), args.task_id,
                                       Deadline(settings.http_timeout * 3000, 0)))
        return summary

    if not args.wait:
        current = describe()
        _print_status(current, args.json)
        return EXIT_FAILED if _failed(current) else EXIT_OK
    give_up = time.monotonic() + args.timeout
    summary: Optional[dict] = None
    with _Progress() as bar:
        while True:
            try:
                summary = describe()
            except UpstreamError as exc:
                if exc.decision != policy.RETRY or time.monotonic() >= give_up:
                    raise
                bar.draw(0.0 if summary is None else (summary.get("Progress") or 0) / 100,
                         f"(retrying: {exc.vod_code})")
            else:
                status = summary["Status"]
                progress = summary.get("Progress") or 0
                bar.draw(1.0 if status == "FINISH" else progress / 100, status)
                if status in tasks.FINAL_STATES:
                    break
            left = give_up - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(args.interval, left))
    if summary is None or summary["Status"] not in tasks.FINAL_STATES:
        if summary is not None:
            _print_status(summary, args.json)
        last = summary["Status"] if summary else "unknown"
        raise CliError(f"timed out after {args.timeout:g} s waiting for task {args.task_id} "
                       f"(last status {last})", EXIT_FAILED)
    _print_status(summary, args.json)
    return EXIT_FAILED if _failed(summary) else EXIT_OK


def _failed(summary: dict) -> bool:
    """ABORTED, or FINISH with a non-zero ErrCode (how a failed redraw ends)."""
    return summary["Status"] == "ABORTED" or (summary["Status"] == "FINISH" and bool(summary.get("ErrCode")))


# --- submit ---------------------------------------------------------------------------------

def _dry_run(args: argparse.Namespace, rows: list) -> int:
    from . import manifest

    done = manifest.read_results(args.out) if args.out != "-" else {}
    steps = manifest.plan(rows, done)
    states = {r.row: (r.status, r.reason) for r in steps.immediate}
    states.update({row.number: ("done", "recorded in " + args.out) for row in steps.already_done})
    for row in rows:
        status, reason = states.get(row.number, ("would_submit", None))
        line = {"row": row.number, "status": status, "session_id": row.session_id, "reason": reason}
        if status == "would_submit":
            line["request"] = row.request
        print(json.dumps(line, ensure_ascii=False))
    invalid = sum(1 for r in steps.immediate if r.status == manifest.INVALID)
    note(f"dry run: {len(rows)} rows: {len(steps.todo)} to submit, {len(steps.already_done)} already done, "
          f"{len(steps.immediate) - invalid} repeated, {invalid} invalid; nothing was sent")
    return EXIT_FAILED if invalid else EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    from . import manifest

    if not 0 < args.rps <= 1000:
        raise CliError("--rps must be more than 0 and at most 1000 (VOD allows 20)")
    if not 1 <= args.concurrency <= 64:
        raise CliError("--concurrency must be between 1 and 64")
    rows = manifest.read_manifest(args.manifest)
    if args.dry_run:
        for row in rows:
            if not row.valid:
                note(f"row {row.number} (line {row.line}): {row.reason()}")
        return _dry_run(args, rows)
    lines = {row.number: row.line for row in rows}

    from ..pacing import RateLimiter
    from ..core import Runtime
    from ..vod import VodClient

    with vod_target(args, embedded_ok=True) as updates:
        updates = dict(updates, VOD_MAX_CONCURRENCY=str(args.concurrency))
        settings = load_settings_from(updates)
        target = {"endpoint": settings.endpoint.url, "sub_app_id": settings.sub_app_id}
        done = manifest.read_results(args.out, target) if args.out != "-" else {}
        steps = manifest.plan(rows, done)
        runtime = Runtime(settings, VodClient(settings), RateLimiter(args.rps))
        counts = {s: 0 for s in (manifest.SUBMITTED, manifest.DUPLICATE, manifest.SKIPPED,
                                 manifest.FAILED, manifest.INVALID)}
        total = len(steps.immediate) + len(steps.todo)
        bar = _Progress()
        if args.out == "-":
            sink = sys.stdout
        else:
            if os.path.exists(args.out) and os.path.getsize(args.out) > 0:
                with open(args.out, "rb") as existing:
                    existing.seek(-1, os.SEEK_END)
                    needs_newline = existing.read(1) != b"\n"
            else:
                needs_newline = False
            sink = open(args.out, "a", encoding="utf-8")
            if needs_newline:
                sink.write("\n")

        def record(result: Any) -> None:
            counts[result.status] = counts.get(result.status, 0) + 1
            sink.write(json.dumps(result.to_dict(target), ensure_ascii=False) + "\n")
            sink.flush()
            if result.status in (manifest.FAILED, manifest.INVALID):
                prefix = "" if result.status == manifest.INVALID else "failed: "
                bar.message(f"redraw: row {result.row} (line {lines[result.row]}): {prefix}{result.reason}")
            finished = sum(counts.values())
            bar.draw(finished / total if total else 1.0, f"{finished}/{total} rows")

        try:
            for result in steps.immediate:
                record(result)
            manifest.submit_rows(runtime, steps.todo, concurrency=args.concurrency, on_result=record)
        finally:
            bar.__exit__(None, None, None)
            if sink is not sys.stdout:
                sink.close()
    where = "" if args.out == "-" else f"; results in {args.out}"
    summary = (f"{len(rows)} rows: {counts['submitted']} submitted, {counts['duplicate']} duplicate, "
               f"{len(steps.already_done)} already done, {counts['skipped']} repeated, "
               f"{counts['invalid']} invalid, {counts['failed']} failed{where}")
    if args.out == "-":
        note(summary)
    else:
        print(summary, flush=True)
    return EXIT_FAILED if counts["failed"] or counts["invalid"] else EXIT_OK


# --- the parser -----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, not usage + error
        self.exit(EXIT_USAGE, f"redraw: {message} (see: {self.prog} --help)\n")


_TARGET_HELP = ("Calls go to --endpoint, else to VOD_ENDPOINT when it is a loopback emulator; "
                "the real, billed API only with --real.")


def _add_target(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--endpoint", metavar="URL",
                   help=f"VOD endpoint to {what} (e.g. http://127.0.0.1:9000); credentials from the environment")
    p.add_argument("--real", action="store_true",
                   help="allow the real, billed VOD API: VOD_ENDPOINT or vod.intl.tencentcloudapi.com, "
                        "with credentials from the environment")


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="redraw", formatter_class=formatter,
        description="Run, test and feed the redraw function locally (COS uploads and HTTP requests "
                    "to VOD CreateAigcVideoRedrawTask).",
        epilog="examples:\n"
               "  redraw generate-event cos --key 'uploads/My Clip.mp4' > event.json\n"
               "  redraw invoke event.json            # against an in-process VOD emulator\n"
               "  redraw emulator --port 9000         # a VOD emulator for other shells\n"
               "  redraw serve --watch ./bucket       # the function over HTTP, a folder as its bucket\n"
               "  redraw submit events/manifest.csv   # bulk-submit a manifest\n"
               "  redraw status TASK_ID --wait\n"
               "Run 'redraw COMMAND --help' for each command's options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "invoke", help="run main_handler on an event file", formatter_class=formatter,
        description="Run main_handler on an event (a file, or - for stdin) and print the function's "
                    "JSON log lines, then its result. Exit 1 when the result has a failure.\n"
                    "Without VOD_ENDPOINT the calls go to an in-process VOD emulator. " + _TARGET_HELP,
        epilog="examples:\n"
               "  redraw invoke events/cos-put.json\n"
               "  redraw generate-event apigw | redraw invoke -\n"
               "  redraw invoke --endpoint http://127.0.0.1:9000 events/direct.json")
    p.add_argument("event", help="event JSON file, or - for stdin")
    _add_target(p, "call instead of the in-process emulator")
    p.add_argument("--latency", type=float, default=0.0, help="in-process emulator answer delay, seconds")
    p.add_argument("--time-limit-ms", type=int, default=30000, help="the context's time_limit_in_ms")
    p.add_argument("--rules", metavar="FILE", help="upload rules to try (a JSON file, as REDRAW_RULES_FILE; "
                   "docs/rules.md)")
    p.set_defaults(func=cmd_invoke)

    p = sub.add_parser(
        "generate-event", help="print a realistic sample event", formatter_class=formatter,
        description="Print a sample event as the platform sends it: a COS upload (cos) or delete "
                    "(cos-delete) notification, a function URL request (url), an API Gateway request "
                    "(apigw), a CKafka batch of redraw requests (ckafka), a direct invocation body "
                    "(direct), or the timer trigger's event that runs the follow-up's sweep (timer). "
                    "Keys are given decoded; the event carries them percent-encoded like COS "
                    "does. --url is not checked, to make bad requests on purpose.",
        epilog="examples:\n"
               "  redraw generate-event cos --key 'uploads/夏天 clip.mp4' --records 3\n"
               "  redraw generate-event url --url https://example.com/a.mp4 | redraw invoke -\n"
               "  redraw generate-event ckafka --records 5\n"
               "  redraw generate-event apigw --base64 --url https://example.com/a.mp4\n"
               "  redraw generate-event cos --bucket videos-1250000000 | redraw invoke -\n"
               "  redraw generate-event timer > events/timer-sweep.json\n"
               "  redraw generate-event cos --key uploads/anime/a.mp4 --meta x-cos-meta-redraw-style=anime")
    p.add_argument("kind", choices=EVENT_KINDS, help="which event")
    p.add_argument("--bucket", default="media-1250000000", help="NAME-APPID (default %(default)s)")
    p.add_argument("--region", default="ap-guangzhou", help="default %(default)s")
    p.add_argument("--key", action="append", metavar="KEY",
                   help=f"object key, decoded (repeatable; default {DEFAULT_KEY})")
    p.add_argument("--records", type=int, metavar="N",
                   help="N records (cos) or messages (ckafka); one --key gets a numbered suffix (clip-001.mp4, ...)")
    p.add_argument("--base64", action="store_true", help="apigw: base64-encode the body")
    p.add_argument("--size", type=int, metavar="BYTES", help="cos: object size")
    p.add_argument("--url", help="url/apigw/ckafka/direct: the video URL (default: the --key object's URL)")
    p.add_argument("--meta", action="append", metavar="x-cos-meta-NAME=VALUE",
                   help="cos: the uploader's metadata (repeatable), e.g. x-cos-meta-redraw-style=anime")
    p.set_defaults(func=cmd_generate_event)

    p = sub.add_parser(
        "config", help="check the configuration and list the upload rules", formatter_class=formatter,
        description="Validate this shell's REDRAW_* and VOD_* variables as the function would, then list "
                    "the upload rules in the order they are tried, the defaults, the metadata headers an "
                    "uploader may set, and check the rules against the COS trigger's filter (serverless.yml). "
                    "Exit 1 when a rule can never apply, 2 when the configuration is invalid (docs/rules.md).",
        epilog="examples:\n"
               "  REDRAW_RULES='[{\"prefix\": \"uploads/anime/\", \"Style\": \"anime\"}]' redraw config\n"
               "  REDRAW_RULES_FILE=rules.json redraw config --json")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--serverless", default="serverless.yml", help="where the trigger's filter is read "
                   "(default %(default)s)")
    p.add_argument("--prefix", help="the trigger's key prefix (instead of serverless.yml's)")
    p.add_argument("--suffix", help="the trigger's key suffix (instead of serverless.yml's)")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser(
        "emulator", help="run a VOD emulator server until Ctrl-C", formatter_class=formatter,
        description="Run the loopback VOD emulator (CreateAigcVideoRedrawTask and DescribeTaskDetail, "
                    "TC3 signatures checked) until Ctrl-C or SIGTERM. The first output line says how to "
                    "point the function (or redraw invoke/submit/status) at it.",
        epilog="examples:\n"
               "  redraw emulator --port 9000 --latency 0.2 --fault-rate 0.05\n"
               "  redraw emulator --fault InternalError --fault RequestLimitExceeded\n"
               "faults: an error code (InternalError, ...), http500/http502/http503, drop, "
               "drop_after_accept, slow:SECONDS, malformed, empty")
    p.add_argument("--port", type=int, default=9000, help="default %(default)s; 0 picks a free port")
    p.add_argument("--host", default="127.0.0.1", help="default %(default)s")
    p.add_argument("--rps", type=int, default=20, help="CreateAigcVideoRedrawTask limit per second "
                                                       "(default %(default)s; 0: off)")
    p.add_argument("--latency", type=float, default=0.2, help="seconds added to every answer "
                                                              "(default %(default)s)")
    p.add_argument("--fault", action="extend", nargs="+", default=[], metavar="CODE",
                   help="queue faults for the next CreateAigcVideoRedrawTask calls, in order")
    p.add_argument("--fault-rate", type=float, default=0.0,
                   help="share of calls answered with a random fault (default %(default)s)")
    p.add_argument("--task-duration", type=float, default=5.0,
                   help="seconds from creation to FINISH (default %(default)s); a URL containing "
                        "'abort' ends ABORTED, one containing 'fail' ends FINISH with ErrCode 70000")
    p.add_argument("--failure-rate", type=float, default=0.0,
                   help="share of tasks that end FINISH with ErrCode 70000 and no output (default %(default)s)")
    p.add_argument("--abort-rate", type=float, default=0.0,
                   help="share of tasks that end ABORTED (default %(default)s)")
    from .emulator import add_input_arguments

    add_input_arguments(p)
    p.set_defaults(func=cmd_emulator)

    p = sub.add_parser(
        "serve", help="run the function behind a local HTTP server (and a folder as its bucket)",
        formatter_class=formatter,
        description="Serve the function locally as SCF runs it: each HTTP request becomes the function URL "
                    "event the platform sends, handled by warm instances of main_handler (--instances "
                    "processes, one event at a time each; more requests wait their turn), and the answer "
                    "goes back as the platform sends it. The function's JSON log lines stream to stdout, the "
                    "server's own lines to stderr (the first says where it listens). Code changes under "
                    "redraw/ and handler.py start new instances. Ctrl-C or SIGTERM stops it (exit 0); a "
                    "port in use exits 2.\n"
                    "--watch DIR makes DIR the COS bucket: a file written and closed (or moved in) under it "
                    "fires cos:ObjectCreated:Put with its path as the key, a deleted one "
                    "cos:ObjectRemove:Delete, within the trigger's prefix/suffix filter (serverless.yml's "
                    "cos trigger when the current folder has one). Hidden files never fire.\n"
                    "Without VOD_ENDPOINT the calls go to an in-process VOD emulator. " + _TARGET_HELP,
        epilog="examples:\n"
               "  redraw serve                                  # http://127.0.0.1:9000\n"
               "  curl -sS localhost:9000/redraw -d '{\"FileInfo\": {\"Type\": \"Url\", "
               "\"Url\": \"https://example.com/a.mp4\"}}'\n"
               "  redraw serve --port 0 --watch ./bucket         # cp clip.mp4 ./bucket/uploads/\n"
               "  redraw serve --endpoint http://127.0.0.1:9100 --instances 8")
    p.add_argument("--host", default="127.0.0.1", help="default %(default)s")
    p.add_argument("--port", type=int, default=9000, help="default %(default)s; 0 picks a free port")
    p.add_argument("--instances", type=int, default=4,
                   help="warm instances (processes), each handling one event at a time (default %(default)s)")
    p.add_argument("--timeout", type=float, default=SERVE_TIMEOUT_S,
                   help="the function's timeout in seconds, the context's time_limit_in_ms (default "
                        "%(default)g, as serverless.yml); an instance past it is killed and replaced")
    p.add_argument("--watch", metavar="DIR", help="a folder as the COS bucket")
    p.add_argument("--bucket", default="media-1250000000", help="--watch: NAME-APPID (default %(default)s)")
    p.add_argument("--region", default="ap-guangzhou", help="the function's and the bucket's region "
                                                             "(default %(default)s)")
    p.add_argument("--prefix", help="--watch: the trigger's key prefix (default: serverless.yml's, else uploads/)")
    p.add_argument("--suffix", help="--watch: the trigger's key suffix (default: serverless.yml's, else none)")
    p.add_argument("--follow-up", action="store_true",
                   help="--watch: follow each task to its end as deployed: a local COS serves the folder as the "
                        "bucket (records under redraw/, redrawn videos under redrawn/), swept on a timer "
                        "(also on when REDRAW_FOLLOW_UP=true)")
    p.add_argument("--sweep-every", type=float, default=5.0, metavar="SECONDS",
                   help="the follow-up: the timer trigger's period (default %(default)g; deployed: 60)")
    p.add_argument("--no-reload", action="store_true", help="do not restart the instances on code changes")
    p.add_argument("--quiet", action="store_true", help="no access line per request on stderr")
    p.add_argument("--console-port", type=int, metavar="PORT",
                   help="the web console's port on --host (default 9001; with --port 0, a free one; 0 picks a free one)")
    p.add_argument("--no-console", action="store_true", help="no web console")
    _add_target(p, "call instead of the in-process emulator")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "loop", help="the whole follow-up loop on local emulators, in seconds (make loop)",
        formatter_class=formatter,
        description="Show the loop the follow-up closes: starts redraw serve --watch DIR --follow-up (an "
                    "in-process VOD emulator whose tasks end after 2 s, a local COS serving DIR as the bucket), "
                    "writes a real MP4 into DIR/uploads/, and reports each step from the function's log lines: "
                    "the task the COS trigger created, the sweep, the one task.finished line, the redrawn "
                    "video in DIR/redrawn/ and the receipt under DIR/redraw/. Exits 0 when the loop closed, "
                    "1 when it did not within --timeout. Needs no cloud account and no configuration.",
        epilog="examples:\n"
               "  redraw loop\n"
               "  redraw loop --dir ./bucket      # keep the folder and look at what it holds")
    p.add_argument("--dir", help="the bucket folder (default: a temporary one, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("--stay", action="store_true", help="keep serving after the loop closed, until Ctrl-C, so that "
                                                       "the web console it names shows the task")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds (default %(default)g)")
    p.add_argument("--sweep-every", type=float, default=2.0, help="the sweep's period (default %(default)g s)")
    p.set_defaults(func=cmd_loop)

    p = sub.add_parser(
        "status", help="show a task (DescribeTaskDetail), optionally wait for it",
        formatter_class=formatter,
        description="Show a redraw task through the function's configuration (VOD_ENDPOINT, "
                    "VOD_SUB_APP_ID, TENCENTCLOUD_*). Exit 0, or 1 when the task is ABORTED, "
                    "unknown, or --wait times out; 2 for usage or configuration errors. " + _TARGET_HELP,
        epilog="examples:\n"
               "  redraw status 1500000001-AigcVideoRedrawTask-0123abcd --wait\n"
               "  redraw status TASK_ID --json --real")
    p.add_argument("task_id", metavar="TASK_ID")
    p.add_argument("--wait", action="store_true", help="poll until FINISH or ABORTED (progress on stderr)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default %(default)s)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait at most (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_target(p, "ask")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "submit", help="bulk-submit the rows of a CSV or JSON-lines manifest",
        formatter_class=formatter,
        description="Create one redraw task per manifest row. CSV: a header row, columns url or "
                    "file_id, and optionally style, storage_mode, media_name, class_id, expire_time, "
                    "priority, session_context, session_id. JSON lines: objects with those keys, or "
                    "with the API's field names (FileInfo, TaskInfo, OutputConfig, ...).\n"
                    "Each row's SessionId is derived from its content unless given, so running a "
                    "manifest again creates nothing twice; rows --out already records as submitted "
                    "or duplicate (for the same endpoint and SubAppId) are skipped without a call. "
                    "Exit 1 if a row is invalid or failed.\n"
                    "Without VOD_ENDPOINT the rows go to an in-process VOD emulator. " + _TARGET_HELP,
        epilog="examples:\n"
               "  redraw submit events/manifest.csv --dry-run\n"
               "  redraw submit events/manifest.csv --endpoint http://127.0.0.1:9000 --out results.jsonl\n"
               "  redraw submit videos.jsonl --real --rps 10   # the real, billed API")
    p.add_argument("manifest", metavar="MANIFEST", help="a .csv or .jsonl file, or - for stdin")
    p.add_argument("--out", default="results.jsonl",
                   help="results file, one JSON line per row, appended (default %(default)s; - for stdout)")
    p.add_argument("--rps", type=float, default=20.0, help="requests per second at most (default %(default)g)")
    p.add_argument("--concurrency", type=int, default=10, help="requests in flight (default %(default)s)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate and show what would be submitted; no configuration needed, nothing sent")
    _add_target(p, "submit to")
    p.set_defaults(func=cmd_submit)
    return parser


# --- main -----------------------------------------------------------------------------------

def _error_line(exc: BaseException) -> str:
    if isinstance(exc, UpstreamError):
        from .. import policy

        text = f"VOD error {exc.vod_code}: {exc.message}"
        if exc.request_id:
            text += f" (RequestId {exc.request_id})"
        hint = policy.decide(exc.vod_code).hint
        return f"{text}; {hint}" if hint and hint != exc.message else text
    if isinstance(exc, InvalidRequestError) and exc.fields:
        return exc.message + ": " + ", ".join(f"{f['field']} ({f['problem']})" for f in exc.fields)
    if isinstance(exc, RedrawError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        code, message = EXIT_INTERRUPTED, "interrupted"
    except CliError as exc:
        code, message = exc.code, exc.message
    except (ConfigError, InvalidRequestError, ValueError) as exc:  # ValueError: a bad manifest, too
        code, message = EXIT_USAGE, _error_line(exc)
    except RedrawError as exc:
        code, message = EXIT_FAILED, _error_line(exc)
    except OSError as exc:
        code, message = EXIT_FAILED, _error_line(exc)
    except ImportError as exc:  # rich: the tools' extra
        code, message = EXIT_FAILED, f"missing {exc.name or 'a module'}: pip install 'redraw[tools]'"
    print(f"redraw: {message}", file=sys.stderr, flush=True)
    return code
