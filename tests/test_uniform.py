import numpy as np
import pytest

from vidsieve import Budget, FrameFeatures, create_selector


def feats(t, fps=1.0):
    return FrameFeatures.from_array(np.random.default_rng(0).normal(size=(t, 4)).astype(np.float32), fps=fps)


def test_linspace_rule_matches_lmms_eval():
    s = create_selector("uniform").select(feats(10), budget=4)
    assert s.indices.tolist() == np.linspace(0, 9, 4, dtype=int).tolist() == [0, 3, 6, 9]


def test_centered_rule_matches_vlmevalkit():
    s = create_selector("uniform-centered").select(feats(10), budget=4)
    assert s.indices.tolist() == [int(i * 10 / 5) for i in range(1, 5)] == [2, 4, 6, 8]


def test_fps_rule_rate_then_cap():
    f = feats(40, fps=4.0)  # 10 s of candidates at 4 fps
    s = create_selector("uniform-fps", fps=1.0).select(f, budget=100)
    assert s.timestamps.tolist() == [float(x) for x in range(10)]
    capped = create_selector("uniform-fps", fps=1.0).select(f, budget=4)
    assert len(capped) == 4 and capped.timestamps[0] == 0.0


def test_budget_larger_than_t_returns_all_and_says_so():
    s = create_selector("uniform").select(feats(3), budget=Budget(frames=10))
    assert s.indices.tolist() == [0, 1, 2] and s.extras["budget_clipped"] is True


@pytest.mark.parametrize("name", ["uniform", "uniform-centered"])
@pytest.mark.parametrize("t,k", [(7, 7), (100, 3), (33, 32), (5, 1)])
def test_uniform_rules_unique_exact(name, t, k):
    s = create_selector(name).select(feats(t), budget=k)
    assert len(s) == k and np.all(np.diff(s.indices) > 0)
