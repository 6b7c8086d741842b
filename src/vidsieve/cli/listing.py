"""``vidsieve list``: registered selectors, encoders and adapters with one-line descriptions."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("list", help="list registered components")
    p.add_argument("pattern", nargs="?", default="*", help="glob on names (default *)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..registry import ADAPTERS, ENCODERS, FRAME_SELECTORS, TOKEN_SELECTORS

    for title, reg in (("frame selectors", FRAME_SELECTORS), ("token selectors", TOKEN_SELECTORS),
                       ("encoders", ENCODERS), ("adapters", ADAPTERS)):
        items = reg.describe(args.pattern)
        print(f"{title}:")
        if not items:
            print("  (none)")
        width = max((len(n) for n in items), default=0)
        for n, d in items.items():
            print(f"  {n:<{width}}  {d}")
    return 0
