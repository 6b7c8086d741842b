"""PEEK: student architecture, ListMLE, checkpoints, the distillation trainer, the selector, the CLI."""

import json
import math

import numpy as np
import pytest
import torch

import vidsieve
from vidsieve import FrameFeatures, ParameterError
from vidsieve.cli import main as cli_main
from vidsieve.distill import (
    DistillConfig,
    Segment,
    evaluate,
    listmle_loss,
    segments_from_scores,
    spearman,
    student_scores,
    synthetic_segments,
    teacher_scores,
    train_student,
)
from vidsieve.peek_model import (
    PeekStudent,
    StudentConfig,
    init_student,
    load_student,
    num_parameters,
    save_student,
    sinusoidal_positions,
)
from vidsieve.relevance import stratified_argmax
from vidsieve.testing import check_selector

TINY = dict(d_model=32, heads=4, ffn=64, dropout=0.15)


def test_contract_default_and_windowless():
    check_selector(vidsieve.create_selector("peek"))
    check_selector(vidsieve.create_selector("peek", window=None, seed=3))


def test_architecture_shapes_and_size():
    m = init_student(StudentConfig(input_dim=512))
    n = num_parameters(m)
    assert 1.65e6 < n < 1.75e6, n  # paper: ~1.7M at D=512 (here 1,712,641)
    assert n == 1_712_641
    layer = m.encoder.layers[0]
    assert layer.norm_first and layer.self_attn.num_heads == 4 and layer.linear1.out_features == 1024
    assert len(m.encoder.layers) == 2 and m.proj.out_features == 256 and m.head.out_features == 1
    assert layer.dropout.p == pytest.approx(0.15)
    out = m(torch.randn(3, 7, 512))
    assert out.shape == (3, 7)
    with pytest.raises(ParameterError, match=r"\[B, T, 512\]"):
        m(torch.randn(7, 512))


def test_padding_does_not_change_valid_logits():
    m = init_student(StudentConfig(input_dim=16, **TINY), seed=1)
    x = torch.randn(1, 5, 16)
    padded = torch.cat([x, torch.randn(1, 3, 16)], dim=1)
    mask = torch.tensor([[False] * 5 + [True] * 3])
    with torch.no_grad():
        torch.testing.assert_close(m(padded, pad_mask=mask)[:, :5], m(x), rtol=1e-5, atol=1e-5)


def test_init_is_deterministic_and_leaves_global_rng():
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    a = init_student(StudentConfig(input_dim=8, **TINY), seed=5)
    assert torch.equal(torch.rand(2), expected)
    b = init_student(StudentConfig(input_dim=8, **TINY), seed=5)
    c = init_student(StudentConfig(input_dim=8, **TINY), seed=6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_sinusoidal_positions():
    t = sinusoidal_positions(4, 6)
    assert t.shape == (4, 6)
    assert torch.allclose(t[0], torch.tensor([0.0, 1, 0, 1, 0, 1]))
    assert t[3, 0] == pytest.approx(math.sin(3.0)) and t[3, 1] == pytest.approx(math.cos(3.0))
    assert t[2, 2] == pytest.approx(math.sin(2.0 / 10000 ** (2 / 6)))


def test_listmle_by_hand():
    s = [1.0, 2.0, 0.5]
    y = [0.2, 0.9, 0.5]  # teacher order: frame 1, frame 2, frame 0
    lse = lambda *v: math.log(sum(math.exp(u) for u in v))  # noqa: E731
    by_hand = (lse(2.0, 0.5, 1.0) - 2.0) + (lse(0.5, 1.0) - 0.5) + (lse(1.0) - 1.0)
    got = listmle_loss(torch.tensor([s]), torch.tensor([y]))
    assert got.item() == pytest.approx(by_hand, rel=1e-6)
    # a padded second list contributes exactly its own loss; the batch loss is the mean
    s2, y2 = [0.3, -1.0], [0.0, 1.0]
    one = (lse(-1.0, 0.3) + 1.0) + (lse(0.3) - 0.3)
    logits = torch.tensor([s, s2 + [99.0]], requires_grad=True)
    targets = torch.tensor([y, y2 + [5.0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    loss = listmle_loss(logits, targets, valid)
    assert loss.item() == pytest.approx((by_hand + one) / 2, rel=1e-6)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[1, 2] == 0
    # the right order scores lower than the reversed one
    good = listmle_loss(torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[3.0, 2.0, 1.0]]))
    bad = listmle_loss(torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[3.0, 2.0, 1.0]]))
    assert good < bad


def test_spearman_by_hand():
    # no ties: 1 - 6 sum(d^2) / (n (n^2 - 1)); ranks of a = [1, 3, 2, 4], of b = [1, 2, 3, 4]
    a, b = np.array([0.1, 0.7, 0.3, 0.9]), np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, b) == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert spearman(b, -b) == pytest.approx(-1.0)
    # ties get average ranks: a = [1, 1, 2] -> ranks [1.5, 1.5, 3]; Pearson with [1, 2, 3]
    ra, rb = np.array([1.5, 1.5, 3.0]), np.array([1.0, 2.0, 3.0])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    assert spearman(np.array([1.0, 1.0, 2.0]), np.array([5.0, 6.0, 7.0])) == pytest.approx(
        float(ra @ rb) / math.sqrt(float(ra @ ra) * float(rb @ rb)))
    assert spearman(np.ones(4), b) == 0.0  # a constant side: defined as 0 (no warning, no NaN)


def test_teacher_scores_and_segmenting():
    f = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(teacher_scores(f, np.array([1.0, 0.0])), [1.0, 0.0, (2**-0.5)])
    segs = segments_from_scores(np.zeros((130, 4)), np.arange(130.0), segment_frames=64)
    assert [s.features.shape[0] for s in segs] == [65, 65]
    assert all(s.scores.min() == 0 and s.scores.max() == 1 for s in segs)
    with pytest.raises(ParameterError):
        Segment(np.zeros((1, 4)), np.zeros(1))


def test_save_load_round_trip(tmp_path):
    cfg = StudentConfig(input_dim=24, encoder="pixel(size=224)", trained=True, info={"epochs": 3})
    m = init_student(cfg, seed=2)
    save_student(m, tmp_path / "ckpt")
    back = load_student(tmp_path / "ckpt")
    assert back.config == cfg
    x = torch.randn(2, 9, 24)
    with torch.no_grad():
        assert torch.equal(m(x), back(x))
    on_disk = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert on_disk["input_dim"] == 24 and on_disk["d_model"] == 256 and on_disk["encoder"] == "pixel(size=224)"
    with pytest.raises(ParameterError, match="vidsieve distill"):
        load_student(tmp_path / "nothing")


def test_distillation_learns_a_synthetic_teacher():
    """The teacher's score is a fixed nonlinear function of each frame's features; the
    student, trained with PEEK's recipe (3 epochs instead of 25), must rank held-out frames
    far better than an untrained one."""
    train = synthetic_segments(128, seed=0)
    held_out = synthetic_segments(32, seed=1)
    untrained = evaluate(init_student(StudentConfig(input_dim=32), seed=0), held_out)
    result = train_student(train, config=DistillConfig(epochs=3), progress=False)
    trained = evaluate(result.model, held_out)
    print(f"held-out Spearman: untrained {untrained:.3f} -> trained {trained:.3f}")
    assert abs(untrained) < 0.2
    assert trained > 0.6 and trained - untrained > 0.45
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_resume_is_exact(tmp_path):
    segs = synthetic_segments(12, length=12, dim=8, seed=4)
    cfg = DistillConfig(epochs=2, batch_size=4, seed=1)
    student = StudentConfig(input_dim=8, **TINY)
    straight = train_student(segs, config=cfg, student=student, progress=False)

    def stop(epoch, rec):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_student(segs, config=cfg, student=student, out_dir=tmp_path, progress=False, on_epoch=stop)
    assert json.loads((tmp_path / "config.json").read_text())["info"]["epochs_done"] == 1
    resumed = train_student(segs, config=cfg, student=student, out_dir=tmp_path, resume=True, progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    for p, q in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_windowed_scores():
    m = init_student(StudentConfig(input_dim=8, **TINY), seed=0)
    x = np.random.default_rng(0).normal(size=(70, 8)).astype(np.float32)
    full = student_scores(m, x)
    win = student_scores(m, x, window=32)  # 3 chunks of 23/23/24, each centred
    assert full.shape == win.shape == (70,)
    for a, b in ((0, 23), (23, 46), (46, 70)):
        ref = student_scores(m, x[a:b])
        np.testing.assert_allclose(win[a:b], ref - ref.mean(), rtol=1e-4, atol=1e-5)


def test_peek_selector_untrained_and_trained(tmp_path):
    feats = FrameFeatures.from_array(np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32))
    s = vidsieve.create_selector("peek").select(feats, budget=5)
    assert s.extras["trained"] is False and "untrained" in s.extras["warning"]
    cfg = StudentConfig(input_dim=8, encoder="pixel", trained=True)
    m = init_student(cfg, seed=9)
    save_student(m, tmp_path / "ck")
    sel = vidsieve.create_selector("peek", checkpoint=str(tmp_path / "ck"), window=None)
    t = sel.select(feats, budget=5)
    assert t.extras["trained"] is True and "warning" not in t.extras
    expected = stratified_argmax(student_scores(m, feats.embeddings), 5)
    np.testing.assert_array_equal(t.rows, expected)
    save_student(init_student(StudentConfig(input_dim=32, trained=True), seed=9), tmp_path / "ck32")
    check_selector(vidsieve.create_selector("peek", checkpoint=str(tmp_path / "ck32")))  # 32-d check features
    with pytest.raises(ParameterError, match="16-d"):
        sel.select(FrameFeatures.from_array(np.zeros((4, 16), np.float32)), budget=2)
    with pytest.raises(ParameterError, match="vidsieve distill"):
        vidsieve.create_selector("peek", checkpoint=str(tmp_path / "none")).select(feats, budget=2)
    with pytest.raises(ParameterError, match=r"The 'window' parameter of PeekSelector"):
        vidsieve.create_selector("peek", window=1)


def test_distill_cli_synthetic_then_select(tmp_path, capsys):
    out = tmp_path / "student"
    rc = cli_main(["distill", "--synthetic", "20", "-o", str(out), "--epochs", "1", "--batch-size", "8", "--quiet"])
    assert rc == 0
    assert (out / "model.safetensors").is_file() and (out / "trainer_state.pt").is_file()
    assert "held-out Spearman" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["trained"] is True and cfg["encoder"] == "synthetic" and cfg["input_dim"] == 32
    feats = FrameFeatures.from_array(np.random.default_rng(0).normal(size=(40, 32)).astype(np.float32))
    s = vidsieve.create_selector("peek", checkpoint=str(out)).select(feats, budget=4)
    assert s.extras["trained"] is True and len(s) == 4


def test_distill_cli_feature_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = tmp_path / "feats"
    data.mkdir()
    for i in range(3):
        emb = rng.normal(size=(80, 6)).astype(np.float32)
        np.savez(data / f"v{i}.npz", embeddings=emb, timestamps=np.arange(80.0), scores=emb[:, 0] ** 2)
    out = tmp_path / "ck"
    assert cli_main(["distill", str(data), "-o", str(out), "--epochs", "1", "--quiet", "--segment-frames", "40"]) == 0
    assert json.loads((out / "config.json").read_text())["input_dim"] == 6
    # captions without a teacher encoder that can embed text: one clear error line, exit 2
    np.savez(data / "v9.npz", embeddings=rng.normal(size=(10, 6)).astype(np.float32))
    (tmp_path / "caps.json").write_text(json.dumps({"v9": ["a dog"]}))
    rc = cli_main(["distill", str(data / "v9.npz"), "-o", str(out), "--captions", str(tmp_path / "caps.json"),
                   "--teacher-encoder", "pixel", "--quiet"])
    assert rc == 2 and "cannot embed text" in capsys.readouterr().err
    rc = cli_main(["distill", str(data / "v9.npz"), "-o", str(out), "--quiet"])
    assert rc == 2 and "no teacher scores" in capsys.readouterr().err


def test_distill_config_validation():
    with pytest.raises(ParameterError, match=r"The 'epochs' parameter of DistillConfig must be an int >= 1"):
        DistillConfig(epochs=0)
    with pytest.raises(ParameterError, match=r"The 'drop_max' parameter of DistillConfig"):
        DistillConfig(drop_min=0.3, drop_max=0.2)
    with pytest.raises(ParameterError, match="divisible"):
        StudentConfig(d_model=30, heads=4)
    with pytest.raises(ParameterError, match=r"The 'lr' parameter of DistillConfig must be a float > 0. Got '1e-3' instead"):
        DistillConfig(lr="1e-3")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("dropout", "0.1", "a float >= 0 and < 1"),
        ("dropout", 1.0, "a float >= 0 and < 1"),
        ("dropout", float("nan"), "a float >= 0 and < 1"),
        ("input_dim", 0, "an int >= 1"),
        ("heads", 2.0, "an int >= 1"),
        ("layers", True, "an int >= 1"),
        ("encoder", 3, "a non-empty str"),
        ("trained", "yes", "a bool"),
        ("info", [], "a dict"),
    ],
)
def test_student_config_errors_use_the_one_template(field, value, expected):
    with pytest.raises(ParameterError) as e:
        StudentConfig(**{field: value})
    assert str(e.value) == f"The '{field}' parameter of StudentConfig must be {expected}. Got {value!r} instead."
    assert isinstance(init_student(StudentConfig(input_dim=4, **TINY)), PeekStudent)


def test_distill_cli_videos_with_a_text_teacher(tmp_path, monkeypatch, scene_video):
    """Videos: student features from --encoder, teacher frame embeddings from --teacher-encoder,
    captions embedded by the teacher. A pixel encoder with a stand-in text side plays the
    teacher (no text-image weights can be downloaded here)."""
    from vidsieve.cli import distill as cli_distill
    from vidsieve.encoders.pixel import PixelEncoder

    class TextPixel(PixelEncoder):
        def embed_text(self, text):
            return np.linspace(-1, 1, self.dim).astype(np.float32)

    made = []

    def fake_encoder(name, model):
        if name is None:
            return None
        enc = TextPixel(size=56) if name == "teacher" else PixelEncoder(size=56)
        made.append(name)
        return enc

    monkeypatch.setattr(cli_distill, "_encoder", fake_encoder)
    caps = tmp_path / "caps.json"
    stem = scene_video.path.stem
    caps.write_text(json.dumps({stem: ["whole video", {"text": "first scenes", "start": 0.0, "end": 4.0}]}))
    out = tmp_path / "ck"
    rc = cli_main(["distill", str(scene_video.path), "-o", str(out), "--captions", str(caps), "--encoder", "pixel",
                   "--teacher-encoder", "teacher", "--fps", "5", "--epochs", "1", "--val-fraction", "0", "--quiet"])
    assert rc == 0 and made == ["teacher", "pixel"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["info"]["segments"] == 2 and cfg["encoder"].startswith("PixelEncoder")


@pytest.mark.parametrize("scale", [1e19, 1e30])
def test_peek_on_huge_finite_features(scale):
    """Finite features scaled by a huge factor: finite scores and the same picks as unscaled
    (the student starts with a LayerNorm over each frame, which ignores the scale)."""
    x = np.random.default_rng(3).normal(size=(60, 8))
    sel = vidsieve.create_selector("peek", window=None)
    ref = sel.select(FrameFeatures.from_array(x.astype(np.float32)), budget=6)
    big = sel.select(FrameFeatures.from_array(x * scale), budget=6)
    assert np.all(np.isfinite(big.scores))
    np.testing.assert_array_equal(big.rows, ref.rows)
    np.testing.assert_allclose(big.scores, ref.scores, rtol=1e-3, atol=1e-4)
    # not the first frame of every bin (what NaN scores collapse to)
    assert not np.array_equal(big.rows, (np.arange(6) * 60) // 6)


def test_student_scores_beyond_float32_range():
    # float64 features past float32's range (a Segment, or student_scores called directly)
    m = init_student(StudentConfig(input_dim=8, **TINY), seed=1)
    x = np.random.default_rng(5).normal(size=(12, 8))
    big = student_scores(m, x * 1e300)
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big, student_scores(m, x), rtol=1e-3, atol=1e-4)


def test_student_scores_leave_ordinary_features_bit_identical():
    m = init_student(StudentConfig(input_dim=8, **TINY), seed=1)
    x = np.random.default_rng(4).normal(size=(20, 8)).astype(np.float32) * 1000
    with torch.inference_mode():
        ref = m(torch.from_numpy(x)[None])[0].double().numpy()
    np.testing.assert_array_equal(student_scores(m, x), ref)
