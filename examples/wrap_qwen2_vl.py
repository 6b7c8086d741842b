"""Wrap Qwen2-VL with frame and token selection under a budget.

LLM tokens per frame for this family: h*w/4 per pair of frames (temporal patch 2, 28x28 px per token).

    python examples/wrap_qwen2_vl.py --video examples/big_buck_bunny.mp4          # real weights (GPU)
    python examples/wrap_qwen2_vl.py --tiny                                       # random tiny model

``--tiny`` builds a randomly initialised model of the same HF class offline: the answer is
gibberish, but the mechanics (frames chosen, tokens fed, per-stage time) are the real ones.
"""

from _wrap_common import main

HUB_ID = "Qwen/Qwen2-VL-7B-Instruct"

if __name__ == "__main__":
    main("qwen2_vl", HUB_ID, budget_tokens=4096, description=__doc__)
