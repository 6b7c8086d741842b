"""``python -m vidsieve.eval videomme|longvideobench|report ...`` (same options as ``vidsieve eval``).

Under ``accelerate launch --multi_gpu --num_processes N -m vidsieve.eval ...`` (also on CPU,
with ``CUDA_VISIBLE_DEVICES=``), ``torchrun --nproc_per_node N -m vidsieve.eval ...`` or
mpirun, each process answers a shard of the videos and rank 0 merges the rows (see
:mod:`vidsieve.eval.runner`).
"""

from __future__ import annotations

import argparse
import sys

from vidsieve.cli.eval import build_eval_parser
from vidsieve.errors import VidsieveError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vidsieve.eval", description="vidsieve benchmark runs")
    build_eval_parser(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VidsieveError as e:
        print(f"vidsieve: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
