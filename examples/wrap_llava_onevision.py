"""Wrap LLaVA-OneVision (also llava-hf/LLaVA-Video-7B-Qwen2-hf) with frame and token selection under a budget.

LLM tokens per frame for this family: 196 per frame (+1 newline per video).

    python examples/wrap_llava_onevision.py --video examples/big_buck_bunny.mp4          # real weights (GPU)
    python examples/wrap_llava_onevision.py --tiny                                       # random tiny model

``--tiny`` builds a randomly initialised model of the same HF class offline: the answer is
gibberish, but the mechanics (frames chosen, tokens fed, per-stage time) are the real ones.
"""

from _wrap_common import main

HUB_ID = "llava-hf/llava-onevision-qwen2-7b-ov-hf"

if __name__ == "__main__":
    main("llava_onevision", HUB_ID, budget_tokens=1568, description=__doc__)
