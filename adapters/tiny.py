"""Tiny random models of the real Hugging Face video-LLM classes, built offline.

Used by the adapter tests, the ``--tiny`` mode of ``examples/wrap_*.py`` and
``eval/bench/ttft.py``: they show the mechanics (and let everything be tested) without any
weights. ``width``/``layers`` scale the language model for benchmarks.

Each builder returns ``(model, processor)``: a randomly initialised model of the real class (a
few layers, narrow widths) and the family's real processor classes around a WordLevel tokenizer
with the model's markers registered as special tokens. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vidsieve.types import Frames

WORDS = (
    "what happens after the man opens door ? describe video is there a red ball yes no "
    "user assistant system : . , A B does image contain any object of"
).split()


def make_tokenizer(specials: list[str], pad: str = "<pad>", qwen: bool = False, llama: bool = False) -> Any:
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for w in [pad, "<unk>", "<eos>", *specials, *WORDS, "\n"]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    cls: Any = PreTrainedTokenizerFast
    if (qwen or llama) and _v4():  # transformers 4.x processors check the tokenizer class
        import transformers

        cls = getattr(transformers, "Qwen2TokenizerFast" if qwen else "LlamaTokenizerFast")
    fast = cls(
        tokenizer_object=tok, unk_token="<unk>", pad_token=pad, eos_token="<eos>"
    )
    fast.add_special_tokens({"additional_special_tokens": specials})
    fast.padding_side = "left"
    return fast


QWEN_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "<|im_start|>", "<|im_end|>"]


def _qwen_text(tok: Any, width: int = 64, layers: int = 2, vocab_pad: int = 64) -> dict[str, Any]:
    return dict(
        vocab_size=max(len(tok), vocab_pad),
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope(width // 4)},
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.eos_token_id,
    )


def _v4() -> bool:
    import transformers

    return int(transformers.__version__.split(".")[0]) < 5


def _legacy_rope(text: dict[str, Any]) -> dict[str, Any]:
    """transformers 4.x spells the rope settings ``rope_scaling`` + ``rope_theta``."""
    if _v4() and "rope_parameters" in text:
        rp = dict(text.pop("rope_parameters"))
        text["rope_theta"] = rp.pop("rope_theta")
        if "mrope_section" in rp:
            text["rope_scaling"] = {"type": "mrope", **{k: v for k, v in rp.items() if k != "rope_type"}}
    return text


def _mrope(head_dim: int) -> list[int]:
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def _ids(tok: Any) -> dict[str, Any]:
    c = tok.convert_tokens_to_ids
    return dict(
        image_token_id=c("<|image_pad|>"),
        video_token_id=c("<|video_pad|>"),
        vision_start_token_id=c("<|vision_start|>"),
        vision_end_token_id=c("<|vision_end|>"),
    )


def _finish(model: Any) -> Any:
    torch.manual_seed(0)
    model.eval()
    model.generation_config.pad_token_id = model.config.get_text_config().pad_token_id
    model.generation_config.eos_token_id = None  # generate the full max_new_tokens
    model.generation_config.do_sample = False
    return model


def qwen2_vl(width: int = 64, layers: int = 2, scale: int = 1) -> tuple[Any, Any]:
    """Tiny qwen2_vl: LLM ``width`` x ``layers``; ``scale`` multiplies the frame side the processor keeps."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = make_tokenizer(QWEN_SPECIALS, qwen=True)
    cfg = Qwen2VLConfig(
        text_config=_legacy_rope(_qwen_text(tok, width, layers)),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=width, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        **_ids(tok),
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(cfg)
    vp = Qwen2VLVideoProcessor(size={"shortest_edge": 112 * 112 * scale**2, "longest_edge": 168 * 168 * scale**2})
    proc = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok, video_processor=vp)
    return _finish(model), proc


def qwen2_5_vl(width: int = 64, layers: int = 2, scale: int = 1) -> tuple[Any, Any]:
    """Tiny qwen2_5_vl: LLM ``width`` x ``layers``; ``scale`` multiplies the frame side the processor keeps."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = make_tokenizer(QWEN_SPECIALS, qwen=True)
    cfg = Qwen2_5_VLConfig(
        text_config=_legacy_rope(_qwen_text(tok, width, layers)),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=width,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1], tokens_per_second=2, in_channels=3),
        **_ids(tok),
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(cfg)
    vp = Qwen2VLVideoProcessor(size={"shortest_edge": 112 * 112 * scale**2, "longest_edge": 168 * 168 * scale**2})
    proc = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok, video_processor=vp)
    return _finish(model), proc


def qwen3_vl(width: int = 64, layers: int = 2, scale: int = 1) -> tuple[Any, Any]:
    """Tiny qwen3_vl: LLM ``width`` x ``layers``; ``scale`` multiplies the frame side the processor keeps."""
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tok = make_tokenizer(QWEN_SPECIALS, qwen=True)
    text = _qwen_text(tok, width, layers)
    text.update(head_dim=16, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                              "mrope_section": [2, 3, 3], "mrope_interleaved": True})
    cfg = Qwen3VLConfig(
        text_config=_legacy_rope(text),
        vision_config=dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=width,
                           patch_size=16, spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64,
                           deepstack_visual_indexes=[0, 1], in_channels=3),
        **_ids(tok),
    )
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(cfg)
    vp = Qwen3VLVideoProcessor(size={"shortest_edge": 128 * 128 * 6 * scale**2, "longest_edge": 160 * 160 * 8 * scale**2})
    proc = Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(patch_size=16), tokenizer=tok, video_processor=vp)
    return _finish(model), proc


def llava_onevision(width: int = 64, layers: int = 2, scale: int = 1) -> tuple[Any, Any]:
    """Tiny llava_onevision: LLM ``width`` x ``layers``; ``scale`` multiplies the frame side the processor keeps."""
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    tok = make_tokenizer(["<image>", "<video>", "<|im_start|>", "<|im_end|>"])
    text = _qwen_text(tok, width, layers)
    text.pop("rope_parameters")
    cfg = LlavaOnevisionConfig(
        text_config=dict(model_type="qwen2", **text),
        vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=3, num_attention_heads=2, image_size=56 * scale, patch_size=8),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
        image_grid_pinpoints=[[56 * scale, 56 * scale]],
    )
    torch.manual_seed(0)
    model = LlavaOnevisionForConditionalGeneration(cfg)
    proc = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": 56 * scale, "width": 56 * scale}, image_grid_pinpoints=[[56 * scale, 56 * scale]]),
        tokenizer=tok,
        video_processor=LlavaOnevisionVideoProcessor(size={"height": 56 * scale, "width": 56 * scale}),
        num_image_tokens=(7 * scale) ** 2,
        vision_feature_select_strategy="full",
    )
    return _finish(model), proc


def llava_next_video(width: int = 64, layers: int = 2, scale: int = 1) -> tuple[Any, Any]:
    """Tiny llava_next_video: LLM ``width`` x ``layers``; ``scale`` multiplies the frame side the processor keeps."""
    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    tok = make_tokenizer(["<image>", "<video>"], llama=True)
    text = _qwen_text(tok, width, layers)
    text.pop("rope_parameters")
    cfg = LlavaNextVideoConfig(
        text_config=dict(model_type="llama", **text),
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=3, num_attention_heads=2, image_size=48 * scale, patch_size=8,
                           projection_dim=32),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_grid_pinpoints=[[48 * scale, 48 * scale]],
        spatial_pool_stride=2,
    )
    torch.manual_seed(0)
    model = LlavaNextVideoForConditionalGeneration(cfg)
    proc = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(size={"shortest_edge": 48 * scale}, crop_size={"height": 48 * scale, "width": 48 * scale}),
        image_processor=LlavaNextImageProcessor(size={"shortest_edge": 48 * scale}, crop_size={"height": 48 * scale, "width": 48 * scale},
                                                image_grid_pinpoints=[[48 * scale, 48 * scale]]),
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
    )
    return _finish(model), proc


FAMILIES: dict[str, Callable[[], tuple[Any, Any]]] = {
    "qwen2_vl": qwen2_vl,
    "qwen2_5_vl": qwen2_5_vl,
    "qwen3_vl": qwen3_vl,
    "llava_onevision": llava_onevision,
    "llava_next_video": llava_next_video,
}

def make_frames(n: int = 6, h: int = 60, w: int = 80, seed: int = 0, fps: float = 4.0,
                step: int = 3) -> Frames:
    """A pre-decoded random video: ``n`` frames ``[h, w]`` at source indices ``0, step, ...``."""
    rng = np.random.default_rng(seed)
    pix = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    idx = np.arange(n, dtype=np.int64) * step
    return Frames(pixels=pix, indices=idx, timestamps=idx / fps)
