"""What a token selector reads from the vision tower, and the hooks that capture it.

A token selector states what it needs through a ``tower_request`` attribute (a dict with the
keys of :class:`TowerRequest`); selectors without one are read the older way (an
``attention_layers`` attribute, else their int ``*_layer`` hyper-parameters, and [CLS]
attention when their ``importance`` parameter is ``"auto"`` or ``"cls"``).

The hooks exist only inside :func:`capture`: forward pre-hooks on the tower's attention
modules recompute q and k as the module does (the adapter's ``_qk_from_call``) and keep per
chunk (one frame, or one Qwen attention segment):

* ``attention[layer]``: ``[L]`` attention *received* per token (column sums of the softmax
  attention, mean over heads), via :func:`vidsieve.kernels.attention_received`;
* ``cls``: ``[L]`` [CLS] -> token attention of the LAST layer, either ``"raw"`` (released KTV:
  the full-width logits ``q_cls . k^T / sqrt(C)``, C = hidden size, no softmax, no head split)
  or ``"softmax"`` (per-head softmax rows, mean over heads);
* ``pre_projector``: the tensor entering the family's projector (a forward pre-hook on it);
* ``projected``: the tensor leaving the projector (a forward hook), i.e. the projected grid
  BEFORE any pooling that follows the projector (LLaVA-OneVision).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from vidsieve.errors import ParameterError


@dataclass(frozen=True)
class TowerRequest:
    """What the token selector reads from the vision tower.

    attention_layers: layers (as the tower counts them; negative from the end) whose attention
                      received per token is captured.
    cls:              None, ``"raw"`` or ``"softmax"`` (see the module docstring); only
                      honoured where the tower has a [CLS] token.
    pre_projector:    capture the features entering the projector (on the LLM grid).
    pre_pool:         run the selector before the family's post-projector pooling (the adapter
                      must support it, e.g. LLaVA-OneVision); statistics then stay on the
                      tower's own grid.
    """

    attention_layers: tuple[int, ...] = ()
    cls: str | None = None
    pre_projector: bool = False
    pre_pool: bool = False

    @property
    def empty(self) -> bool:
        return not (self.attention_layers or self.cls or self.pre_projector or self.pre_pool)


def request_of(selector: Any, has_cls: bool) -> TowerRequest:
    """The :class:`TowerRequest` of ``selector`` (see the module docstring)."""
    req = getattr(selector, "tower_request", None)
    if isinstance(req, TowerRequest):
        out = req
    elif isinstance(req, dict):
        unknown = set(req) - {"attention_layers", "cls", "pre_projector", "pre_pool"}
        if unknown:
            raise ParameterError(f"{type(selector).__name__}.tower_request has unknown keys {sorted(unknown)}.")
        out = TowerRequest(attention_layers=tuple(req.get("attention_layers", ()) or ()),
                           cls=req.get("cls"), pre_projector=bool(req.get("pre_projector", False)),
                           pre_pool=bool(req.get("pre_pool", False)))
    else:
        layers = list(getattr(selector, "attention_layers", ()) or ())
        params = selector.get_params() if hasattr(selector, "get_params") else {}
        if not layers:
            layers = [v for k, v in params.items()
                      if k.endswith("_layer") and isinstance(v, int) and not isinstance(v, bool)]
        cls = "softmax" if params.get("importance") in ("auto", "cls") else None
        out = TowerRequest(attention_layers=tuple(layers), cls=cls)
    if out.cls not in (None, "raw", "softmax"):
        raise ParameterError(f"tower_request cls must be None, 'raw' or 'softmax'. Got {out.cls!r} instead.")
    return TowerRequest(attention_layers=tuple(sorted(set(out.attention_layers))),
                        cls=out.cls if has_cls else None, pre_projector=out.pre_projector, pre_pool=out.pre_pool)


def attention_received(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """``[B, L]`` attention received per key (column sums of softmax, mean over heads).

    q, k: ``[B, H, L, d]``.
    """
    try:
        from vidsieve.kernels.attention_received import attention_received as fn
    except ImportError:  # pragma: no cover - the kernels package is part of vidsieve
        from vidsieve.kernels.attention_received.reference import attention_received_ref as fn
    return fn(q, k, scale=scale)


def cls_rows(q: torch.Tensor, k: torch.Tensor, scale: float, kind: str) -> torch.Tensor:
    """``[B, L]`` [CLS] (token 0) -> token attention. q, k: per-head ``[B, H, L, d]``.

    ``"raw"``: the full-width logits ``q_cls . k^T / sqrt(H * d)`` (heads concatenated back to
    the hidden width; no softmax). ``"softmax"``: per-head softmax rows (scale ``scale``), mean
    over heads.
    """
    if kind == "raw":
        from vidsieve.tokens.ktv_tokens import cls_logits

        b, h, n, d = k.shape
        return cls_logits(q.transpose(1, 2).reshape(b, n, h * d), k.transpose(1, 2).reshape(b, n, h * d))
    from vidsieve.kernels.attention_received.reference import cls_attention_ref

    return cls_attention_ref(q[:, :, 0], k, scale)


@contextlib.contextmanager
def capture(adapter: Any, request: TowerRequest) -> Iterator[dict[str, Any]]:
    """Hooks on ``adapter``'s vision tower (and projector) for one forward; removed on exit.

    Yields a dict filled during the forward: ``attention[layer]`` and ``cls``: lists of ``[L]``
    per chunk; ``pre_projector`` / ``projected``: lists of the projector's input / output
    tensors per call. The model is not modified after the block.
    """
    mods = adapter.tower_modules()
    n = len(mods)
    # layer indices as the tower counts them; a layer the tower does not have is not captured
    # (the selector then falls back or says so).
    wanted = {(layer + n if layer < 0 else layer): layer for layer in request.attention_layers if -n <= layer < n}
    cls_layer = n - 1
    store: dict[str, Any] = {"attention": {layer: [] for layer in wanted.values()}, "cls": [],
                             "pre_projector": [], "projected": []}
    handles = []

    def make(idx: int):  # type: ignore[no-untyped-def]
        def hook(module, args, kwargs):  # type: ignore[no-untyped-def]
            with torch.no_grad():
                chunks = adapter._qk_from_call(module, args, kwargs)
                if idx in wanted:
                    store["attention"][wanted[idx]].extend(
                        row for q, k, s in chunks for row in attention_received(q, k, s)
                    )
                if request.cls and idx == cls_layer:
                    store["cls"].extend(row for q, k, s in chunks for row in cls_rows(q, k, s, request.cls))
            return None

        return hook

    try:
        for i, m in mods:
            if i in wanted or (request.cls and i == cls_layer):
                handles.append(m.register_forward_pre_hook(make(i), with_kwargs=True))
        proj = adapter.projector_module() if (request.pre_projector or request.pre_pool) else None
        if proj is not None:
            if request.pre_projector:
                handles.append(proj.register_forward_pre_hook(
                    lambda mod, args: store["pre_projector"].append(args[0].detach())))
            if request.pre_pool:
                handles.append(proj.register_forward_hook(
                    lambda mod, args, out: store["projected"].append(out.detach())))
        yield store
    finally:
        for h in handles:
            h.remove()
