"""The ``hf_overrides["vidsieve"]`` entry that configures the plugin's pruning (no vLLM import)."""

from __future__ import annotations

from typing import Any

from ..errors import ParameterError
from ..tokens.base import TokenSelector
from .pruning import resolve_token_selector

CONFIG_KEY = "vidsieve"


def vidsieve_settings(hf_config: Any) -> tuple[TokenSelector, str] | None:
    """The configured token selector and allotment rule, or None when not configured.

    Reads ``hf_config.vidsieve`` (a dict, from ``hf_overrides``); raises a one-line
    :class:`~vidsieve.errors.ParameterError` on a bad entry, at model construction.
    """
    raw = getattr(hf_config, CONFIG_KEY, None)
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("token_selector"), str):
        raise ParameterError(
            "hf_overrides['vidsieve'] must be a dict with a 'token_selector' name, e.g. "
            f"{{'token_selector': 'ktv-tokens'}}. Got {raw!r} instead."
        )
    unknown = set(raw) - {"token_selector", "params", "allotment"}
    if unknown:
        raise ParameterError(
            f"hf_overrides['vidsieve'] has unknown keys {sorted(unknown)}; use 'token_selector', "
            "'params' and 'allotment'."
        )
    params = raw.get("params") or {}
    if not isinstance(params, dict):
        raise ParameterError(f"hf_overrides['vidsieve']['params'] must be a dict. Got {params!r} instead.")
    allotment = raw.get("allotment", "even")
    if allotment not in ("even", "first-full"):
        raise ParameterError(
            f"hf_overrides['vidsieve']['allotment'] must be 'even' or 'first-full'. Got {allotment!r} instead."
        )
    return resolve_token_selector(raw["token_selector"], params), allotment
