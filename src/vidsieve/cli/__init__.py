"""The ``vidsieve`` command. Each public module of this package adds one sub-command.

A sub-command module defines ``register(subparsers) -> None``, which adds its parser and sets
``func=handler`` via ``set_defaults``; ``handler(args) -> int`` returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..errors import VidsieveError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidsieve", description="Training-free frame and visual-token selection for video LLMs."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VidsieveError as e:  # user mistakes: one clear line, no traceback
        print(f"vidsieve: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vidsieve: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
