"""The README's code must run as written."""

import re
from pathlib import Path

import vidsieve
from vidsieve.registry import FRAME_SELECTORS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_writing_a_selector_example_runs():
    text = README.read_text()
    section = text[text.index("### Writing a selector"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    try:
        exec(compile(code, "README.md", "exec"), {})
        assert "every-nth" in vidsieve.list_selectors()
    finally:
        FRAME_SELECTORS._items.pop("every-nth", None)


def test_readme_names_every_registered_selector():
    text = README.read_text()
    for name in vidsieve.list_selectors() + vidsieve.list_token_selectors():
        assert f"`{name}`" in text, name
