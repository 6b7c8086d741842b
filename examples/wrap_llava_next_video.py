"""Wrap LLaVA-NeXT-Video with frame and token selection under a budget.

LLM tokens per frame for this family: 144 per frame.

    python examples/wrap_llava_next_video.py --video examples/big_buck_bunny.mp4          # real weights (GPU)
    python examples/wrap_llava_next_video.py --tiny                                       # random tiny model

``--tiny`` builds a randomly initialised model of the same HF class offline: the answer is
gibberish, but the mechanics (frames chosen, tokens fed, per-stage time) are the real ones.
"""

from _wrap_common import main

HUB_ID = "llava-hf/LLaVA-NeXT-Video-7B-hf"

if __name__ == "__main__":
    main("llava_next_video", HUB_ID, budget_tokens=1152, description=__doc__)
