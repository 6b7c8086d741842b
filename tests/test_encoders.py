import numpy as np
import pytest

from vidsieve import ParameterError, VidsieveError, create_encoder
from vidsieve.decoding import decode_frames
from vidsieve.encoders.pixel import PixelEncoder
from vidsieve.relevance import l2_normalize


def test_pixel_encoder_separates_scenes(scene_video):
    fr = decode_frames(scene_video.path, [2, 12, 25, 45, 55, 62, 70, 85], size=(224, 224))
    emb, grid = PixelEncoder().encode(fr.pixels)
    assert emb.shape == (8, 144 + 6 * 2**2 + 8) and grid.shape == (8, 14, 14, 12)
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


def test_pixel_encoder_never_touches_torch_threads(monkeypatch):
    """torch's thread count is process-wide: changing it, even briefly, races other threads."""
    import torch

    def refuse(n):
        raise AssertionError(f"PixelEncoder called torch.set_num_threads({n})")

    monkeypatch.setattr(torch, "set_num_threads", refuse)
    PixelEncoder().encode(np.zeros((9, 32, 32, 3), np.uint8))
    PixelEncoder().encode(np.zeros((20, 224, 224, 3), np.uint8))


def _separation(emb, shot):
    """(mean distance between frames of one shot) / (median distance between shot centroids)."""
    e = l2_normalize(emb.astype(np.float64))
    within, cents = [], []
    for s in np.unique(shot):
        x = e[shot == s]
        cents.append(x.mean(0))
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        within.append(d[~np.eye(len(x), dtype=bool)].mean())
    c = np.asarray(cents)
    between = np.linalg.norm(c[:, None] - c[None], axis=-1)[np.triu_indices(len(c), 1)]
    return float(np.mean(within) / np.median(between))


@pytest.mark.parametrize(("style", "bound"), [("objects", 0.35), ("pan", 0.5)])
def test_pixel_encoder_keeps_moving_shots_together(style, bound):
    """Shots with moving shapes or a panning camera: frames of one shot stay much closer to
    each other than shots are to one another (the previous layout-heavy descriptor gave
    0.52 for objects and 1.2 for pans here, this one 0.24 and 0.40: clustering selectors
    split shots by motion when the ratio is near 1)."""
    from vidsieve.synth import render_frame

    frames, shot = [], []
    for j in range(6):
        for t in range(0, 120, 10):
            frames.append(render_frame(100 + j, t, (112, 112), style=style))
            shot.append(j)
    emb, _ = PixelEncoder(size=112, grid=7).encode(np.stack(frames))
    assert _separation(emb, np.asarray(shot)) < bound


def test_pixel_encoder_cache_key_names_the_descriptor(monkeypatch):
    import vidsieve.encoders.pixel as pixel

    a = PixelEncoder().cache_key()
    monkeypatch.setattr(pixel, "DESCRIPTOR_VERSION", pixel.DESCRIPTOR_VERSION + 1)
    assert PixelEncoder().cache_key() != a
    assert PixelEncoder(lum_grid=3).cache_key() != PixelEncoder().cache_key()


def test_pixel_encoder_batching_and_sizes_agree():
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (19, 224, 224, 3), dtype=np.uint8)
    enc = PixelEncoder()
    e_all, g_all = enc.encode(px)
    e_one, g_one = enc.encode(px[5:6])
    np.testing.assert_allclose(e_all[5], e_one[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_all[5], g_one[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(e_all, axis=1), 1.0, rtol=1e-5)
    # a frame of another size is resized to the encoder's size first
    small = px[:1, ::2, ::2]
    e_small, _ = enc.encode(small)
    assert e_small.shape == (1, enc.dim) and np.isfinite(e_small).all()


def test_pixel_patch_grid_matches_a_direct_computation():
    """Patch means and sub-patch luminances against a loop over patches (independent oracle)."""
    rng = np.random.default_rng(1)
    px = rng.integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    _, grid = PixelEncoder(size=112, grid=7).encode(px)
    half = px.astype(np.float64).reshape(2, 56, 2, 56, 2, 3).mean(axis=(2, 4)) / 255.0
    lum = half @ np.array([0.299, 0.587, 0.114])
    for b, i, j in ((0, 0, 0), (1, 3, 5), (0, 6, 6)):
        patch = half[b, 8 * i : 8 * i + 8, 8 * j : 8 * j + 8]
        np.testing.assert_allclose(grid[b, i, j, :3], patch.reshape(-1, 3).mean(0) - 0.5, atol=1e-5)
        np.testing.assert_allclose(grid[b, i, j, 3:6], patch.reshape(-1, 3).std(0), atol=1e-4)
        sub = lum[b, 8 * i : 8 * i + 8, 8 * j : 8 * j + 8].reshape(2, 4, 2, 4).mean(axis=(1, 3)).reshape(-1)
        np.testing.assert_allclose(grid[b, i, j, 8:], sub - 0.5, atol=1e-5)


def test_pixel_centre_block_matches_an_object_over_another_background():
    """The optional centre histogram: a query of an object on one background is closer to a
    frame showing the object on another background than to a frame of that background alone."""
    from vidsieve.synth import render_frame

    query = render_frame(999, 0, (112, 112), needle=True, style="objects")
    with_obj = render_frame(7, 30, (112, 112), needle=True, style="objects")
    without = render_frame(7, 30, (112, 112), style="objects")
    enc = PixelEncoder(size=112, grid=7, centre=0.5)
    e = l2_normalize(enc.encode(np.stack([query, with_obj, without]))[0].astype(np.float64))
    assert e[0] @ e[1] > e[0] @ e[2]
    assert enc.dim == 2 * 144 + 24 + 8 and PixelEncoder().dim == 144 + 24 + 8
    assert PixelEncoder(centre=0.5).cache_key() != PixelEncoder().cache_key()
