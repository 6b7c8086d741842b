import numpy as np
import pytest

from vidsieve import ParameterError, VidsieveError, create_encoder
from vidsieve.decoding import decode_frames
from vidsieve.encoders.pixel import PixelEncoder
from vidsieve.relevance import l2_normalize


def test_pixel_encoder_separates_scenes(scene_video):
    fr = decode_frames(scene_video.path, [2, 12, 25, 45, 55, 62, 70, 85], size=(224, 224))
    emb, grid = PixelEncoder().encode(fr.pixels)
    assert emb.shape == (8, 64 + 256 + 64) and grid.shape == (8, 14, 14, 12)
    e = l2_normalize(emb)
    sim = e @ e.T
    scene = np.array([scene_video.scene_of(int(i)) for i in fr.indices])
    same = sim[(scene[:, None] == scene[None]) & ~np.eye(8, dtype=bool)]
    diff = sim[scene[:, None] != scene[None]]
    assert same.min() > diff.max(), (same.min(), diff.max())


def test_pixel_encoder_is_deterministic_and_handles_other_sizes(scene_video):
    fr = decode_frames(scene_video.path, [1, 2])
    a, _ = PixelEncoder().encode(fr.pixels)
    b, _ = PixelEncoder().encode(fr.pixels.copy())
    assert np.array_equal(a, b)
    assert PixelEncoder(size=112, grid=7).encode(fr.pixels)[1].shape == (2, 7, 7, 12)


def test_pixel_encoder_image_query_and_no_text():
    enc = PixelEncoder()
    img = np.zeros((50, 40, 3), np.uint8)
    q = enc.embed_query(img)
    assert q.embedding is not None and q.embedding.shape == (enc.dim,)
    assert enc.embed_query("a dog").embedding is None


def test_pixel_encoder_errors():
    with pytest.raises(ParameterError, match="multiple of grid"):
        PixelEncoder(size=100, grid=14)
    with pytest.raises(ParameterError, match="uint8"):
        PixelEncoder().encode(np.zeros((1, 8, 8, 3), np.float32))


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "<s>", "</s>", "a", "red", "square", "dog", "cat", "the"]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", bos_token="<s>", eos_token="</s>")


@pytest.fixture(scope="module", params=["clip", "siglip", "dinov2"])
def tiny_model_dir(request, tmp_path_factory):
    """A tiny random model of a real HF class, saved with its processor (no hub)."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp(request.param)
    text = dict(vocab_size=10, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=16)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    if request.param == "clip":
        model = tf.CLIPModel(tf.CLIPConfig(text_config={**text, "eos_token_id": 3, "bos_token_id": 2, "pad_token_id": 0},
                                           vision_config=vision, projection_dim=16))
        proc = tf.CLIPProcessor(image_processor=tf.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                                tokenizer=_tokenizer())
    elif request.param == "siglip":
        model = tf.SiglipModel(tf.SiglipConfig(text_config=text, vision_config=vision))
        proc = tf.SiglipProcessor(image_processor=tf.SiglipImageProcessor(size={"height": 32, "width": 32}), tokenizer=_tokenizer())
    else:
        model = tf.Dinov2Model(tf.Dinov2Config(**vision))
        proc = tf.BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(d)
    proc.save_pretrained(d)
    return request.param, str(d)


def test_hf_encoder_on_tiny_real_classes(tiny_model_dir, scene_video):
    kind, path = tiny_model_dir
    enc = create_encoder("hf", model=path, local_files_only=True, batch_size=3)
    fr = decode_frames(scene_video.path, [0, 10, 30, 60, 80])
    emb, grid = enc.encode(fr.pixels)
    assert emb.shape[0] == 5 and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert grid is not None and grid.shape[:3] == (5, 4, 4)
    # batching does not change results
    emb1, _ = create_encoder("hf", model=path, local_files_only=True, batch_size=5).encode(fr.pixels)
    np.testing.assert_allclose(emb, emb1, rtol=1e-4, atol=1e-5)
    text = enc.embed_text("a red square")
    if kind == "dinov2":
        assert text is None
    else:
        assert text is not None and text.shape == (emb.shape[1],)


def test_hf_encoder_offline_missing_model_is_a_clear_error(tmp_path):
    enc = create_encoder("hf", model=str(tmp_path / "no-such-model"), local_files_only=True)
    with pytest.raises(VidsieveError, match="Could not load"):
        enc.encode(np.zeros((1, 8, 8, 3), np.uint8))


def test_pixel_encoder_restores_torch_threads():
    import torch

    before = torch.get_num_threads()
    PixelEncoder().encode(np.zeros((9, 32, 32, 3), np.uint8))
    assert torch.get_num_threads() == before
