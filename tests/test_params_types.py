import numpy as np
import pytest

from vidsieve import Budget, FrameFeatures, ParameterError, Query, create_selector
from vidsieve.allocation import largest_remainder
from vidsieve.params import Choice, Float, Int, check_param


@pytest.mark.parametrize("bad", [0, -3, 1.5, True, "4", None])
def test_budget_frames_rejects_bad_values_with_template(bad):
    with pytest.raises(ParameterError, match=r"The 'frames' parameter of Budget must be an int >= 1\. Got .* instead\."):
        Budget(frames=bad)


@pytest.mark.parametrize("bad", [0, -1, 2.0, False])
def test_budget_tokens_rejects_bad_values(bad):
    with pytest.raises(ParameterError, match="'tokens' parameter of Budget"):
        Budget(frames=4, tokens=bad)


def test_budget_accepts_numpy_ints():
    b = Budget(frames=np.int64(8), tokens=np.int32(100))
    assert b.frames == 8 and type(b.frames) is int and b.tokens == 100


def test_error_template_exact_text():
    with pytest.raises(ParameterError) as e:
        check_param("KTVSelector", "k", 0, [Int(ge=1)])
    assert str(e.value) == "The 'k' parameter of KTVSelector must be an int >= 1. Got 0 instead."


def test_constraints_reject_bool_and_nan():
    assert not Int(ge=0).is_satisfied_by(True)
    assert not Float().is_satisfied_by(float("nan"))
    assert Choice("a", "b").is_satisfied_by("a") and not Choice(1).is_satisfied_by(True)


def test_selector_param_validation_in_constructor():
    with pytest.raises(ParameterError, match=r"The 'fps' parameter of FpsUniformSelector must be a float > 0\. Got -1 instead\."):
        create_selector("uniform-fps", fps=-1)


def test_features_shape_errors():
    with pytest.raises(ParameterError, match="2-D"):
        FrameFeatures.from_array(np.zeros(5))
    with pytest.raises(ParameterError, match="indices and timestamps"):
        FrameFeatures(np.zeros((3, 2), np.float32), np.arange(2), np.arange(2.0))


def test_query_needs_content():
    with pytest.raises(ParameterError):
        Query()
    with pytest.raises(ParameterError, match="uint8"):
        Query(image=np.zeros((4, 4, 3), np.float32))


def test_nan_features_rejected():
    f = FrameFeatures.from_array(np.full((4, 3), np.nan, np.float32))
    with pytest.raises(ParameterError, match="NaN"):
        create_selector("uniform").select(f, budget=2)


def test_largest_remainder_proportional_and_capped():
    out = largest_remainder(10, np.array([1.0, 1.0, 2.0]))
    assert out.tolist() == [3, 2, 5] or out.tolist() == [2, 3, 5]
    assert out.sum() == 10
    capped = largest_remainder(10, np.array([8.0, 1.0, 1.0]), cap=np.array([4, 10, 10]))
    assert capped.tolist() == [4, 3, 3]
    assert largest_remainder(100, np.ones(3), cap=5).tolist() == [5, 5, 5]
    assert largest_remainder(3, np.zeros(4)).sum() == 3


def test_largest_remainder_uncapped_many_items_and_negative_total():
    assert largest_remainder(10, np.ones(7)).sum() == 10
    assert largest_remainder(10, np.ones(5)).tolist() == [2, 2, 2, 2, 2]
    with pytest.raises(ParameterError):
        largest_remainder(-1, np.ones(3))


def test_features_validate_indices_timestamps_and_fps():
    emb = np.zeros((3, 2), np.float32)
    with pytest.raises(ParameterError, match="strictly increasing"):
        FrameFeatures(emb, np.array([0, 0, 1]), np.zeros(3))
    with pytest.raises(ParameterError, match="strictly increasing"):
        FrameFeatures(emb, np.array([2, 1, 3]), np.zeros(3))
    with pytest.raises(ParameterError, match="finite"):
        FrameFeatures(emb, np.arange(3), np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ParameterError, match="integers"):
        FrameFeatures(emb, np.array([0.0, 1.0, 2.0]), np.zeros(3))
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ParameterError, match="'fps' parameter"):
            FrameFeatures.from_array(emb, fps=bad)
    f = FrameFeatures([[1.0, 2.0]], [0], [0.0])  # plain lists are accepted
    assert f.embeddings.shape == (1, 2)


@pytest.mark.parametrize("bad", [np.full(4, np.nan), np.zeros((2, 2)), np.zeros(0)])
def test_query_embedding_validated(bad):
    with pytest.raises(ParameterError, match="Query.embedding"):
        Query(embedding=bad)
