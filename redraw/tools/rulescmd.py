"""``redraw config``: the configuration as the function would read it, with its upload rules.

Validates this shell's REDRAW_* / VOD_* variables as a container would (``load_settings``), lists
the rules in the order they are tried, the media-name template and the metadata an uploader may set,
and checks the rules against the COS trigger's filter (serverless.yml's, as ``--watch`` reads it;
the function itself cannot: SCF does not tell a function its trigger's filter).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

#: required variables a local check fills in when unset (they do not affect the rules)
_PLACEHOLDERS = {"VOD_SUB_APP_ID": "1", "TENCENTCLOUD_SECRETID": "placeholder", "TENCENTCLOUD_SECRETKEY": "placeholder"}


def report(env: Dict[str, str], trigger: Tuple[str, str, str]) -> dict:
    """What ``redraw config`` prints; raises ConfigError as the function would."""
    from ..config import load_settings
    from ..rules import META_PREFIX, filter_problems

    filled = [name for name in _PLACEHOLDERS if not (env.get(name) or "").strip()]
    settings = load_settings({**env, **{name: _PLACEHOLDERS[name] for name in filled}})
    prefix, suffix, where = trigger
    errors, warnings = filter_problems(settings.rules, prefix, suffix)
    return {
        "rules_from": settings.rules.source or None,
        "rules": settings.rules.describe(),
        "defaults": {"Style": settings.style, "TasksPriority": settings.tasks_priority,
                     "StorageMode": settings.storage_mode, "ClassId": settings.class_id,
                     "MediaName": settings.media_name.text or None, "deliver_prefix": settings.deliver_prefix},
        "metadata_headers": [META_PREFIX + name for name in settings.metadata_overrides],
        "trigger_filter": {"prefix": prefix, "suffix": suffix, "from": where},
        "errors": errors, "warnings": warnings,
        "placeholders": filled,
    }


def _text(out: dict) -> List[str]:
    lines = []
    if out["placeholders"]:
        lines.append(f"(not set here, filled in for this check: {', '.join(out['placeholders'])})")
    lines.append("configuration: valid")
    defaults = ", ".join(f"{k}={v!r}" for k, v in out["defaults"].items() if v is not None) or "none"
    lines.append(f"defaults for every upload: {defaults}")
    headers = ", ".join(out["metadata_headers"]) or "none (REDRAW_METADATA_OVERRIDES is empty)"
    lines.append(f"metadata an uploader may set: {headers}")
    if not out["rules"]:
        lines.append("rules: none (REDRAW_RULES / REDRAW_RULES_FILE unset): every upload gets the defaults")
    else:
        lines.append(f"rules from {out['rules_from']}, in the order they are tried (longest prefix first):")
        for n, rule in enumerate(out["rules"], 1):
            sets = ", ".join(f"{k}={v!r}" for k, v in rule.items() if k not in ("rule", "prefix", "suffix"))
            where = rule["prefix"] + ("*" + rule["suffix"] if rule.get("suffix") else "")
            lines.append(f"  {n}. {rule['rule']}: {where or '(every key)'} -> {sets or 'the defaults'}")
    f = out["trigger_filter"]
    lines.append(f"trigger filter: prefix {f['prefix']!r} suffix {f['suffix']!r} ({f['from']})")
    lines += [f"warning: {w}" for w in out["warnings"]]
    lines += [f"error: {e}" for e in out["errors"]]
    return lines


def run(args: Any) -> int:
    from .common import EXIT_FAILED, EXIT_OK
    from .watch import trigger_filter

    prefix, suffix, where = trigger_filter(args.serverless)
    if args.prefix is not None or args.suffix is not None:
        where = "--prefix/--suffix"
    trigger = (args.prefix if args.prefix is not None else prefix,
               args.suffix if args.suffix is not None else suffix, where)
    out = report(dict(os.environ), trigger)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2), flush=True)
    else:
        print("\n".join(_text(out)), flush=True)
    return EXIT_FAILED if out["errors"] else EXIT_OK


def parse_meta(items: Optional[List[str]]) -> Dict[str, str]:
    """``--meta x-cos-meta-redraw-style=anime`` (repeatable) -> the metadata dict; ValueError when malformed."""
    meta: Dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or not name.startswith("x-cos-meta-") or len(name) == len("x-cos-meta-"):
            raise ValueError("--meta takes x-cos-meta-NAME=VALUE, e.g. x-cos-meta-redraw-style=anime")
        meta[name] = value
    return meta
