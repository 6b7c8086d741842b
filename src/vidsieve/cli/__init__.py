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
    # Sub-commands that forward to a script with its own parser (``vidsieve bench kernels
    # --out X``) declare ``forward_args``; for every other command unknown options are errors.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "forward_args", False):
            args.script_args = list(getattr(args, "script_args", [])) + extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except VidsieveError as e:  # user mistakes: one clear line, no traceback
        print(f"vidsieve: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # unwritable output dir, a file where a folder should be, ...
        print(f"vidsieve: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vidsieve: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
