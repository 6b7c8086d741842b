"""Adding a frame or token selector is one file: a module dropped into the package is found by
the registry and checked by the common suite (the steps CONTRIBUTING.md gives)."""

from __future__ import annotations

import sys
import textwrap

import pytest

import vidsieve
import vidsieve.registry as reg
import vidsieve.selectors
import vidsieve.tokens
from vidsieve.testing import check_selector, check_token_selector

FRAME_MODULE = '''
"""Every n-th candidate, as an example of a one-file selector."""
import numpy as np
from vidsieve.params import Int
from vidsieve.registry import register_selector
from vidsieve.selectors.base import FrameSelector, SelectOutput


@register_selector("example-every-nth", "Every n-th candidate frame, then evenly thinned.")
class EveryNth(FrameSelector):
    reads = "nothing"
    _parameter_constraints = {"n": [Int(ge=1)]}

    def __init__(self, *, n: int = 2) -> None:
        self.n = n
        self._validate_params()

    def _select(self, features, *, k, budget, query):
        rows = np.arange(0, len(features), self.n)
        if rows.size < k:
            rows = np.arange(len(features))
        return SelectOutput(rows=rows[np.unique(np.linspace(0, rows.size - 1, k).astype(int))])
'''

TOKEN_MODULE = '''
"""The first tokens of each frame, as an example of a one-file token selector."""
import torch
from vidsieve.registry import register_token_selector
from vidsieve.tokens.base import TokenSelection, TokenSelector


@register_token_selector("example-first", "The first k tokens of each frame in raster order.")
class FirstTokens(TokenSelector):
    def __init__(self) -> None:
        self._validate_params()

    def _select(self, inputs, allotment):
        return TokenSelection(index=[torch.arange(int(a)) for a in allotment], embeddings=None, grid=inputs.grid)
'''


@pytest.fixture
def plugin_dirs(tmp_path, monkeypatch):
    """Two package folders added to vidsieve.selectors / vidsieve.tokens (as if the files were
    in the repo), with the registry reloaded."""
    fdir, tdir = tmp_path / "selectors", tmp_path / "tokens"
    fdir.mkdir()
    tdir.mkdir()
    (fdir / "example_every_nth.py").write_text(textwrap.dedent(FRAME_MODULE))
    (tdir / "example_first.py").write_text(textwrap.dedent(TOKEN_MODULE))
    monkeypatch.setattr(vidsieve.selectors, "__path__", [*vidsieve.selectors.__path__, str(fdir)])
    monkeypatch.setattr(vidsieve.tokens, "__path__", [*vidsieve.tokens.__path__, str(tdir)])
    monkeypatch.setattr(reg, "_loaded", False)
    yield
    for name in ("example-every-nth",):
        reg.FRAME_SELECTORS._items.pop(name, None)
    reg.TOKEN_SELECTORS._items.pop("example-first", None)
    for mod in ("vidsieve.selectors.example_every_nth", "vidsieve.tokens.example_first"):
        sys.modules.pop(mod, None)


def test_a_new_selector_file_is_registered_and_passes_the_common_checks(plugin_dirs):
    assert "example-every-nth" in vidsieve.list_selectors()
    check_selector(vidsieve.create_selector("example-every-nth", n=3))
    assert "example-first" in vidsieve.list_token_selectors()
    check_token_selector(vidsieve.create_token_selector("example-first"))
    # a content-free selector: the frame stage decodes nothing for its candidates
    assert vidsieve.create_selector("example-every-nth").reads == "nothing"
