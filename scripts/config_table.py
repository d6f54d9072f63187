"""The configuration table of docs/configuration.md, generated from ``redraw.config.Settings``.

    python scripts/config_table.py           # print the table
    python scripts/config_table.py --write   # rewrite it in docs/configuration.md, between its markers
    python scripts/config_table.py --check   # exit 1 when the page's table differs from the code
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redraw.config import VARIABLES  # noqa: E402

PAGE = ROOT / "docs" / "configuration.md"
START, END = "<!-- config-table:start -->\n", "<!-- config-table:end -->"


def table() -> str:
    rows = [f"| `{name}` | {default} | {meaning} |" for name, (default, meaning) in VARIABLES.items()]
    return "\n".join(["| Variable | Default | Meaning |", "|---|---|---|", *rows]) + "\n"


def page_table(text: str) -> str:
    """The text between the page's markers."""
    return text.split(START)[1].split(END)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the table in docs/configuration.md")
    action.add_argument("--check", action="store_true", help="exit 1 when docs/configuration.md differs")
    args = parser.parse_args(argv)
    text = PAGE.read_text(encoding="utf-8")
    if args.check:
        same = page_table(text) == table()
        print("docs/configuration.md: the table matches the code" if same else
              "docs/configuration.md: the table differs from the code: run python scripts/config_table.py --write")
        return 0 if same else 1
    if args.write:
        before, rest = text.split(START)
        PAGE.write_text(before + START + table() + END + rest.split(END, 1)[1], encoding="utf-8")
        return 0
    sys.stdout.write(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
