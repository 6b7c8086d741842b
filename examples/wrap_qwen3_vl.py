"""Wrap Qwen3-VL with frame and token selection under a budget.

LLM tokens per frame for this family: h*w/4 per pair of frames (temporal patch 2, 32x32 px per token), timestamps in the text.

    python examples/wrap_qwen3_vl.py --video examples/big_buck_bunny.mp4          # real weights (GPU)
    python examples/wrap_qwen3_vl.py --tiny                                       # random tiny model

``--tiny`` builds a randomly initialised model of the same HF class offline: the answer is
gibberish, but the mechanics (frames chosen, tokens fed, per-stage time) are the real ones.
"""

from _wrap_common import main

HUB_ID = "Qwen/Qwen3-VL-8B-Instruct"

if __name__ == "__main__":
    main("qwen3_vl", HUB_ID, budget_tokens=4096, description=__doc__)
