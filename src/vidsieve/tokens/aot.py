"""AOT: anchor tokens + optimal-transport merging, within frames and across clips.

Paper: arXiv 2603.01400 (released code TyroneLi/AOT).

Intra-frame (every frame below its native token count, all frames batched):

1. Local anchors: the grid is split into ``window_grid x window_grid`` windows (3 x 3); each
   window contributes its ``floor(M * (1 - global_ratio)) // window_grid**2`` tokens with the
   most attention received at ``shallow_layer`` (5).
2. Global anchors: the tokens with the most attention received at ``deep_layer`` (-2), local
   picks excluded.
3. Cost between every dropped token ``u`` and anchor ``a`` (projected tokens):
   ``C = (1 - cos(x_u, x_a)) + spatial_weight * ||p_u - p_a||_2``, positions in ``[0, 1]^2``.
4. Entropic OT (Sinkhorn, ``eps``, uniform marginals, at most ``max_iter`` updates), all
   frames in one batched :func:`vidsieve.kernels.sinkhorn.sinkhorn` call.
5. ``x_a <- (x_a + lam * sum_u T_ua x_u) / (1 + lam * sum_u T_ua)`` with ``lam = intra_scale``.

Inter-frame (clips of ``clip_len`` consecutive frames; the first compressed frame of a clip
holds the clip anchors): each later frame's anchors ``n`` are matched to the current clip
anchors ``m`` with cost ``C_sim * C_time`` (``C_sim = 1 - cos`` shifted to min 0 per problem,
``C_time = 1 - exp(-dt^2 / (2 sigma_t^2))``, ``dt`` in frames of the input sequence as in the
released code; ``TokenInput.timestamps`` is not used), Sinkhorn, then the plan is
row-normalised to ``p(m|n)``; tokens whose ``max_m p(m|n)`` is below the ``keep_ratio``
quantile are kept as changed content, the others merge softly into the clip anchors
(``(y + lam * sum_n p(m|n) x_n) / (1 + lam * sum_n p(m|n))``, ``lam = inter_scale``). Later
frames are processed in order (the anchors they are matched to include earlier merges), every
clip of the video batched together.

Modes (``mode=``):

``"released"`` (default) reproduces the released code: Sinkhorn stops when the mean change of
the row scaling, pooled over the batch, falls below ``tol = 1e-2`` (typically ~3 updates, far
from the marginals); the intra merge is ``0.9 * OT update + 0.1 * nearest-neighbour mean``
(each anchor averaged with the dropped tokens whose most cosine-similar anchor it is, with
weight ``intra_scale`` on itself); the global anchors are ``M - floor(M * (1 - g))`` so the
anchor count falls below ``M`` when the local share is not a multiple of ``window_grid**2``;
about ``keep_ratio`` of a later frame's tokens are kept. One difference remains: the released
clip stage runs one Sinkhorn per (clip, frame) pair, so its pooled stop test sees one problem;
here all clips at the same position share one batched call and one pooled test.

``"paper"``: Sinkhorn runs per problem until the L1 row-marginal error is ``<= tol`` (default
``1e-3``) or ``max_iter``; pure OT update (no nearest-neighbour blend); the global anchors fill
the anchor count to exactly ``M``.

In released mode ``intra_scale`` is forced to 1.0 (the released code overrides its
``INTRA_SCALE`` setting there); setting another value warns and has no effect.

Two routes:

* :meth:`AOTSelector.select` (any grid, e.g. the model-free pipeline, or ``grid="llm"`` in a
  model adapter): AOT on the grid it is given, with ``M = allotment[f]`` anchors, within
  vidsieve's contract (one output token per grid cell, at most the frame's allotment): the
  clip's first frame emits its merged anchors only (the released code emits a clip's original
  anchors *and* its merged anchors).
* :meth:`AOTSelector.select_before_pooling` (``grid="native"``, the default in released mode,
  used by the LLaVA-OneVision / LLaVA-Video adapter): the released chain end to end. Intra
  anchors + OT merge on the tower's own grid (27 x 27 SigLIP for the reference models, tower
  attention at layers 5 and -2, projected features) -> the family's pooling of the merged map
  (bilinear to 14 x 14) AND of the anchor mask (kept where the pooled mask >= 0.5, so the
  count is data-dependent) -> clip OT merge over the pooled anchors with the released output
  layout: per clip the anchor frame's original pooled anchors, then each inner frame's kept
  residuals, then the merged anchors. See that method for the budget rule and the two
  remaining deviations.

Stages as public functions (shapes in their docstrings; the pure ones live in
:mod:`.aot_stages` and are re-exported here): :func:`select_anchors`,
:func:`intra_merge`, :func:`merged_map`, :func:`pool_anchor_mask`, :func:`clip_merge`,
:func:`released_layout`.

Frames at their native token count pass through unchanged and take no part in the clip stage,
so a full allotment returns every token bit-identical. The clip stage only removes tokens, so
the output is usually below the budget (``fills_budget = False``).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ParameterError
from ..params import Choice, Float, Int, NoneValue
from ..registry import register_token_selector
from ._common import fallback_importance, flat_tokens, full_allotment, per_frame_stat
from .aot_stages import (
    RELEASED_NN_BLEND,
    IntraMerge,
    _truncate_layout,
    grid_positions,
    masked_quantile,
    merged_map,
    pool_anchor_mask,
    released_layout,
    select_anchors,
    window_ids,
)
from .base import TokenInput, TokenSelection, TokenSelector

__all__ = [
    "RELEASED_NN_BLEND", "AOTSelector", "IntraMerge", "clip_merge", "grid_positions", "intra_merge",
    "masked_quantile", "merged_map", "pool_anchor_mask", "released_layout", "select_anchors", "window_ids",
]

if TYPE_CHECKING:
    from vidsieve.kernels.sinkhorn import SinkhornResult

@register_token_selector(
    "aot", "AOT: local/global anchor tokens, optimal-transport merging within frames and clips."
)
class AOTSelector(TokenSelector):
    """Anchors + optimal transport (AOT), vectorised over frames and clips. See module docstring.

    Parameters
    ----------
    mode: ``"released"`` (default) or ``"paper"`` (see the module docstring).
    grid: where a model adapter runs AOT: ``"native"`` (default) on the tower's own grid before
        the family's pooling (:meth:`select_before_pooling`; LLaVA-OneVision / LLaVA-Video in
        released mode; other families have no pooling after the projector and use the LLM
        grid), or ``"llm"`` (the grid entering the LLM, :meth:`select`; vidsieve's earlier
        behaviour on every family).
    anchors: anchors per frame on the tower's grid for :meth:`select_before_pooling` (the
        released ``VISUAL_TOKEN_NUM``, 108 of 729 in its Video-MME / LongVideoBench setting);
        None (default): each frame's allotment scaled by the grid ratio.
    global_ratio: share ``g`` of anchors chosen globally (0.5).
    shallow_layer, deep_layer: ``TokenInput.attention`` keys for local (5) and global (-2)
        anchors. Keys must match exactly (layer indices as the caller's tower counts them).
    fallback: when a requested layer is missing (e.g. the ``pixel`` encoder's grids, which
        carry no attention): ``"distinctiveness"`` (default; one minus the mean cosine to the
        frame's other tokens, on ``pre_projector`` features when given), ``"norm"`` (token L2
        norm) or ``"raise"`` (a :class:`~vidsieve.errors.ParameterError`).
    window_grid: local windows per side (3).
    spatial_weight: weight of the position term in the intra cost (0.5).
    eps, max_iter: Sinkhorn regularisation (0.1) and most updates (100), both stages.
    tol: Sinkhorn stop threshold; None = the mode's (released 1e-2 on the pooled mean row-
        scaling change; paper 1e-3 on each problem's L1 row-marginal error).
    intra_scale, inter_scale: ``lam`` of the intra (> 0) and clip (>= 0) anchor updates (1.0);
        released mode forces ``intra_scale`` to 1.0 (a warning says so when it is set).
    clip_len: frames per clip; ``"auto"`` = ``max(1, F // 8)`` (released: 4 for 32 frames, 8
        for 64; it rejects other counts); 1 disables the clip stage.
    keep_ratio: share of a later frame's anchors kept as changed content (0.1).
    sigma_t: temporal scale in frames (1.5).
    backend: Sinkhorn kernel backend (``"auto"``, ``"torch"``, ``"triton"``).

    ``extras``: ``importance_source`` (per layer), ``anchors`` (int64 ``[F]`` anchors per frame
    before the clip stage), ``merge_mass`` (per frame float32 ``[k_f]``: tokens' worth of mass
    merged into each output token: intra plan mass times the number of dropped tokens plus the
    clip stage's row-normalised mass; 0 for tokens kept unmerged), ``sinkhorn_iterations``
    (``{"intra": int64 [F], "clip": int64 [F]}``: updates done per frame's problem), ``mode``.
    """

    fills_budget = False
    _parameter_constraints = {
        "mode": [Choice("released", "paper")],
        "grid": [Choice("native", "llm")],
        "anchors": [Int(ge=1), NoneValue()],
        "global_ratio": [Float(ge=0.0, le=1.0)],
        "shallow_layer": [Int()],
        "deep_layer": [Int()],
        "fallback": [Choice("distinctiveness", "norm", "raise")],
        "window_grid": [Int(ge=1)],
        "spatial_weight": [Float(ge=0.0)],
        "eps": [Float(gt=0.0)],
        "max_iter": [Int(ge=0)],
        "tol": [Float(ge=0.0), NoneValue()],
        "intra_scale": [Float(gt=0.0)],
        "inter_scale": [Float(ge=0.0)],
        "clip_len": [Choice("auto"), Int(ge=1)],
        "keep_ratio": [Float(ge=0.0, le=1.0)],
        "sigma_t": [Float(gt=0.0)],
        "backend": [Choice("auto", "torch", "triton")],
    }

    def __init__(
        self,
        *,
        mode: str = "released",
        grid: str = "native",
        anchors: int | None = None,
        global_ratio: float = 0.5,
        shallow_layer: int = 5,
        deep_layer: int = -2,
        fallback: str = "distinctiveness",
        window_grid: int = 3,
        spatial_weight: float = 0.5,
        eps: float = 0.1,
        max_iter: int = 100,
        tol: float | None = None,
        intra_scale: float = 1.0,
        inter_scale: float = 1.0,
        clip_len: int | str = "auto",
        keep_ratio: float = 0.1,
        sigma_t: float = 1.5,
        backend: str = "auto",
    ) -> None:
        self.mode = mode
        self.grid = grid
        self.anchors = anchors
        self.global_ratio = global_ratio
        self.shallow_layer = shallow_layer
        self.deep_layer = deep_layer
        self.fallback = fallback
        self.window_grid = window_grid
        self.spatial_weight = spatial_weight
        self.eps = eps
        self.max_iter = max_iter
        self.tol = tol
        self.intra_scale = intra_scale
        self.inter_scale = inter_scale
        self.clip_len = clip_len
        self.keep_ratio = keep_ratio
        self.sigma_t = sigma_t
        self.backend = backend
        self._validate_params()
        if mode == "released" and float(intra_scale) != 1.0:
            warnings.warn(
                f"AOTSelector: intra_scale={intra_scale} has no effect in mode='released' (the released "
                "code forces the intra-frame scaling to 1.0); use mode='paper' to change it.",
                UserWarning, stacklevel=2,
            )

    @property
    def tower_request(self) -> dict:
        """What a model adapter captures: attention at both layers; the tower's own grid before
        the family's pooling when ``grid="native"`` and ``mode="released"``."""
        return {"attention_layers": [self.shallow_layer, self.deep_layer],
                "pre_pool": self.grid == "native" and self.mode == "released"}

    # ------------------------------------------------------------------ helpers
    def _intra_lam(self) -> float:
        return 1.0 if self.mode == "released" else float(self.intra_scale)

    def _stop(self) -> tuple[str, float]:
        if self.mode == "released":
            return "released", 1e-2 if self.tol is None else float(self.tol)
        return "per_problem", 1e-3 if self.tol is None else float(self.tol)

    def _layer_stat(self, inputs: TokenInput, layer: int, cache: dict) -> tuple[torch.Tensor, str]:
        owner = type(self).__name__
        if layer in inputs.attention:
            return per_frame_stat(inputs.attention[layer], inputs, f"attention[{layer}]", owner), f"attention[{layer}]"
        if self.fallback == "raise":
            raise ParameterError(
                f"{owner} needs TokenInput.attention[{layer}] (attention received per token at "
                f"that vision layer); the input has layers {sorted(inputs.attention)}. Hook the "
                "vision tower, set shallow_layer/deep_layer to available keys, or use "
                "fallback='distinctiveness'."
            )
        if "fb" not in cache:
            cache["fb"] = fallback_importance(inputs, self.fallback, "auto", owner)
        return cache["fb"]

    def _sinkhorn(self, cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> SinkhornResult:
        """Batched plans ``[B, N, M]`` for masked uniform marginals, with this mode's stop rule."""
        from vidsieve.kernels.sinkhorn import sinkhorn_result

        stop, tol = self._stop()
        return sinkhorn_result(
            cost, row_mask=rows, col_mask=cols, eps=float(self.eps), max_iter=int(self.max_iter),
            tol=tol, stop=stop, backend=self.backend,
        )

    # ------------------------------------------------------------------ stages
    def _intra(
        self, x: torch.Tensor, anchors: torch.Tensor, grid: tuple[int, int]
    ) -> IntraMerge:
        """Merge every frame's dropped tokens into its anchors.

        x: float32 ``[Fc, L, D]``; anchors: bool ``[Fc, L]``.
        Returns ``(anchor cells int64 [Fc, Mmax] raster order, valid bool [Fc, Mmax],
        merged float32 [Fc, Mmax, D], mass float32 [Fc, Mmax], iterations int64 [Fc])``.
        """
        fc, length, d = x.shape
        m = anchors.sum(dim=1)
        mmax = int(m.max())
        # anchors first (stable: raster order among them)
        pos = torch.sort((~anchors).to(torch.int8), dim=1, stable=True).indices[:, :mmax]
        valid = torch.arange(mmax, device=x.device)[None, :] < m[:, None]
        xa = torch.gather(x, 1, pos[..., None].expand(-1, -1, d))  # [Fc, Mmax, D]
        norms = x.norm(dim=-1).clamp_min(1e-12)  # [Fc, L]; no normalised copy of x
        an = xa / torch.gather(norms, 1, pos)[..., None]
        cos = torch.bmm(x, an.transpose(1, 2)) / norms[..., None]  # [Fc, L, Mmax]
        p = grid_positions(*grid, device=x.device)  # [L, 2]
        dist = torch.cdist(p[None], p[pos.reshape(-1)].reshape(fc, mmax, 2))  # [Fc, L, Mmax]
        cost = (1.0 - cos) + float(self.spatial_weight) * dist
        sources = ~anchors
        res = self._sinkhorn(cost, sources, valid)
        plan = res.plan.to(x.dtype)  # zero on anchor rows and padded columns
        lam = self._intra_lam()
        load = plan.sum(dim=1)  # [Fc, Mmax]
        n_src = sources.sum(dim=1, keepdim=True).to(x.dtype)
        mass = load * n_src
        # OT update (x_a + lam * P^T x) / (1 + lam * load), written as self weight + P-weights
        # so that the released nearest-neighbour blend shares the single [Mmax, L] x [L, D] GEMM.
        ot_den = 1.0 + lam * load  # [Fc, Mmax]
        weights = plan * (lam / ot_den)[:, None, :]  # [Fc, L, Mmax]
        self_w = 1.0 / ot_den
        if self.mode == "released":
            # nearest anchor by cosine of each dropped token; mean with the anchor (weight lam)
            near = cos.masked_fill(~valid[:, None, :], float("-inf")).argmax(dim=2)  # [Fc, L]
            near = torch.where(sources, near, torch.full_like(near, mmax))  # anchors -> dummy
            cnt = torch.zeros(fc, mmax + 1, dtype=x.dtype, device=x.device)
            cnt.scatter_add_(1, near, torch.ones_like(near, dtype=x.dtype))
            nn_den = lam + cnt[:, :mmax]  # [Fc, Mmax]
            onehot = torch.zeros(fc, length, mmax + 1, dtype=x.dtype, device=x.device)
            onehot.scatter_(2, near[..., None], 1.0)
            b = RELEASED_NN_BLEND
            weights = (1.0 - b) * weights + b * onehot[:, :, :mmax] / nn_den[:, None, :]
            self_w = (1.0 - b) * self_w + b * lam / nn_den
        merged = self_w[..., None] * xa + torch.bmm(weights.transpose(1, 2), x)
        merged = torch.where(valid[..., None], merged, torch.zeros((), dtype=x.dtype))
        return IntraMerge(cells=pos, valid=valid, merged=merged, mass=mass, iterations=res.iterations)

    def _clips(self, frame_pos: np.ndarray, num_frames: int) -> np.ndarray:
        """int64 ``[C, P]`` table of compressed-frame rows per clip (``-1`` = none), in order."""
        cl = max(1, num_frames // 8) if self.clip_len == "auto" else int(self.clip_len)
        clip_of = frame_pos // cl
        _, first, counts = np.unique(clip_of, return_index=True, return_counts=True)
        table = np.full((len(counts), int(counts.max())), -1, dtype=np.int64)
        rank = np.arange(len(frame_pos)) - np.repeat(first, counts)
        table[np.repeat(np.arange(len(counts)), counts), rank] = np.arange(len(frame_pos))
        return table

    def _clip_step(
        self, ya: torch.Tensor, ya_ok: torch.Tensor, s: torch.Tensor, s_ok: torch.Tensor, dt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One inter-frame OT merge per clip, all clips batched.

        ya: ``[C, M, D]`` current clip anchors (``ya_ok`` bool ``[C, M]`` valid); s: ``[C, N, D]``
        a later frame's tokens (``s_ok`` bool ``[C, N]``); dt: ``[C]`` frames between them.
        Returns ``(new anchors [C, M, D], kept bool [C, N] (changed content, not merged),
        row-normalised plan p(m|n) [C, N, M], merged load [C, M], iterations int64 [C])``.
        """
        cos = torch.bmm(F.normalize(s, dim=-1), F.normalize(ya, dim=-1).transpose(1, 2))
        c_sim = 1.0 - cos.clamp(-1 + 1e-6, 1 - 1e-6)
        ok2 = s_ok[:, :, None] & ya_ok[:, None, :]
        cmin = c_sim.masked_fill(~ok2, float("inf")).amin(dim=(1, 2), keepdim=True)
        c_sim = (c_sim - cmin).masked_fill(~ok2, 0.0)
        c_time = 1.0 - torch.exp(-(dt * dt) / (2.0 * float(self.sigma_t) ** 2))
        res = self._sinkhorn(c_sim * c_time[:, None, None], s_ok, ya_ok)
        plan = res.plan.to(s.dtype)
        p_row = plan / plan.sum(dim=2, keepdim=True).clamp_min(1e-9)
        pmax = p_row.amax(dim=2)  # [C, N]
        tau = masked_quantile(pmax.double(), s_ok, float(self.keep_ratio))
        kept = (pmax.double() < tau[:, None]) & s_ok
        sel = p_row * (s_ok & ~kept)[..., None].to(p_row.dtype)
        agg = torch.bmm(sel.transpose(1, 2), s)
        load = sel.sum(dim=1)
        lam = float(self.inter_scale)
        new_y = (ya + lam * agg) / (1.0 + lam * load)[..., None]
        return new_y, kept, p_row, load, res.iterations

    def _inter(
        self, merged: torch.Tensor, valid: torch.Tensor, frame_pos: np.ndarray, table: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clip stage. Returns ``(out embeddings [Fc, Mmax, D], keep bool [Fc, Mmax],
        extra mass [Fc, Mmax], iterations int64 [Fc])``."""
        dev = merged.device
        keep = valid.clone()
        out = merged.clone()
        mass = torch.zeros(valid.shape, dtype=merged.dtype, device=dev)
        iters = torch.zeros(valid.shape[0], dtype=torch.int64, device=dev)
        if table.shape[1] < 2:
            return out, keep, mass, iters
        anchor_rows = torch.as_tensor(table[:, 0], device=dev)
        y = merged[anchor_rows].clone()  # [C, Mmax, D] clip anchors
        y_ok = valid[anchor_rows]
        y_mass = torch.zeros(y_ok.shape, dtype=merged.dtype, device=dev)
        for p in range(1, table.shape[1]):  # clip positions; every clip batched
            act_np = table[:, p] >= 0
            act = torch.as_tensor(np.flatnonzero(act_np), device=dev)
            rows = torch.as_tensor(table[act_np, p], device=dev)
            dt = torch.as_tensor(
                (frame_pos[table[act_np, p]] - frame_pos[table[act_np, 0]]).astype(np.float64),
                device=dev, dtype=merged.dtype,
            )
            new_y, kept, _plan, load, it = self._clip_step(y[act], y_ok[act], merged[rows], valid[rows], dt)
            iters[rows] = it
            y[act] = new_y
            y_mass[act] += load
            keep[rows] = kept
        out[anchor_rows] = y
        mass[anchor_rows] = y_mass
        return out, keep, mass, iters

    # ------------------------------------------------------------------ entry point
    def _select(self, inputs: TokenInput, allotment: np.ndarray) -> TokenSelection:
        h, w = inputs.grid
        n = h * w
        nf = inputs.num_frames
        all_idx = [torch.arange(n, dtype=torch.int64) for _ in range(nf)]
        if full_allotment(allotment, n):
            return TokenSelection(index=all_idx, embeddings=None, grid=(h, w), extras={"identity": True})
        x_all = flat_tokens(inputs)
        comp = np.flatnonzero((allotment > 0) & (allotment < n))
        cache: dict = {}
        shallow, src_s = self._layer_stat(inputs, self.shallow_layer, cache)
        deep, src_d = self._layer_stat(inputs, self.deep_layer, cache)
        index: list[torch.Tensor] = [torch.zeros(0, dtype=torch.int64) for _ in range(nf)]
        emb: list[torch.Tensor] = [x_all.new_empty(0, x_all.shape[-1]) for _ in range(nf)]
        mass_out: list[torch.Tensor] = [torch.zeros(0) for _ in range(nf)]
        anchors_per_frame = np.zeros(nf, dtype=np.int64)
        iters_intra = np.zeros(nf, dtype=np.int64)
        iters_clip = np.zeros(nf, dtype=np.int64)
        for fi in np.flatnonzero(allotment >= n).tolist():
            index[fi], emb[fi], mass_out[fi] = all_idx[fi], x_all[fi], torch.zeros(n)
            anchors_per_frame[fi] = n
        if comp.size:
            sel = torch.as_tensor(comp, device=x_all.device)
            x = x_all if comp.size == nf else x_all[sel]
            x = x.float()
            m = torch.as_tensor(allotment[comp], dtype=torch.int64, device=x.device)
            rows_s = torch.as_tensor(comp, device=shallow.device)
            rows_d = torch.as_tensor(comp, device=deep.device)
            anchors, _local = select_anchors(
                shallow[rows_s].to(x.device), deep[rows_d].to(x.device), m, (h, w),
                int(self.window_grid), float(self.global_ratio), fill=self.mode == "paper",
            )
            im = self._intra(x, anchors, (h, w))
            pos, valid, merged, mass, it_intra = im.cells, im.valid, im.merged, im.mass, im.iterations
            table = self._clips(comp, nf)
            out, keep, tmass, it_inter = self._inter(merged, valid, comp, table)
            counts = keep.sum(dim=1).tolist()
            idx_list = torch.split(pos[keep].cpu(), counts)
            emb_list = torch.split(out[keep].to(x_all.dtype), counts)
            mass_list = torch.split((mass + tmass)[keep].float().cpu(), counts)
            for j, f in enumerate(comp.tolist()):
                index[f], emb[f], mass_out[f] = idx_list[j], emb_list[j], mass_list[j]
            anchors_per_frame[comp] = valid.sum(dim=1).cpu().numpy()
            iters_intra[comp] = it_intra.cpu().numpy()
            iters_clip[comp] = it_inter.cpu().numpy()
        return TokenSelection(
            index=index, embeddings=emb, grid=(h, w),
            extras={
                "importance_source": {"shallow": src_s, "deep": src_d},
                "anchors": anchors_per_frame,
                "merge_mass": mass_out,
                "sinkhorn_iterations": {"intra": iters_intra, "clip": iters_clip},
                "mode": self.mode,
            },
        )

    # ------------------------------------------------------------------ released chain, tower grid
    def select_before_pooling(
        self,
        inputs: TokenInput,
        pool: Callable[[torch.Tensor], torch.Tensor],
        pooled_grid: tuple[int, int],
        allotment: np.ndarray | None = None,
        budget: int | None = None,
    ) -> TokenSelection:
        """The released AOT chain on a family that pools AFTER the projector (LLaVA-OneVision).

        inputs: on the tower's own grid: ``tokens`` float ``[F, H, W, D]`` the projected
            features before pooling, ``attention[layer]`` ``[F, H*W]`` attention received at
            the tower layers ``shallow_layer`` / ``deep_layer`` (missing ones: ``fallback``).
        pool: the family's pooling, float ``[F, H*W, C] -> [F, h*w, C]`` (applied to the merged
            map, C = D, and to the anchor mask, C = 1).
        pooled_grid: ``(h, w)``, the grid entering the LLM.
        allotment, budget: per-frame tokens on the pooled grid and their total, as in
            :class:`TokenInput` (None: the budget split evenly / everything).

        Chain: anchors (:func:`select_anchors`) and OT merge (:func:`intra_merge`) per frame on
        the tower grid -> :func:`merged_map` -> ``pool`` of the map and
        :func:`pool_anchor_mask` (pooled mask >= 0.5) -> :func:`clip_merge` over clips of
        ``clip_len`` frames on the pooled anchors -> :func:`released_layout`.

        Budget: the token count after mask pooling depends on the data, so the budget is a
        ceiling: ``anchors`` (or each frame's allotment scaled by ``H*W / (h*w)``) anchors are
        tried first; while the output exceeds ``min(budget, sum(allotment))`` the anchor counts
        are scaled down (at most 8 tries, then one anchor per frame); if even that overflows,
        the last tokens of the sequence are dropped. Per-frame allotments are not kept frame
        by frame (the layout moves a clip's merged anchors behind its last frame), only the
        total. Frames allotted 0 take no part.

        Output: a :class:`TokenSelection` on the pooled grid whose embeddings, concatenated in
        frame order, are exactly the released sequence. A clip's merged anchors are emitted
        with its last frame, after that frame's residuals; that frame's ``index`` holds its
        residual cells plus (for positions) the anchor frame's anchor cells, completed with the
        lowest free cells where they overlap, in raster order. So the sequence fed to the LLM is
        the released one; the position of each of those tokens is that of a cell of the clip's
        last frame. Deviations from the released code: a frame whose pooled mask is empty keeps
        its one cell of largest pooled mask (the released code would pass an empty frame to
        the clip OT); LLaVA-OneVision's newline token stays (the released code drops it).
        A full allotment returns every token unchanged (``embeddings=None``).
        """
        from .base import check_allotment

        tok = inputs.tokens
        if not isinstance(tok, torch.Tensor) or tok.ndim != 4 or tok.shape[0] == 0:
            raise ParameterError(
                f"AOTSelector.select_before_pooling needs tokens [F, H, W, D]; got {getattr(tok, 'shape', tok)}."
            )
        if not bool(torch.isfinite(tok).all()):
            raise ParameterError("AOTSelector.select_before_pooling: the tower-grid tokens contain NaN or inf.")
        start = time.perf_counter()
        nf, hh, ww, d = (int(v) for v in tok.shape)
        big_l = hh * ww
        h, w = (int(v) for v in pooled_grid)
        n = h * w
        if allotment is not None:
            check_allotment(allotment, nf)
        allot = TokenInput(tokens=tok.new_zeros(nf, h, w, 1), allotment=allotment, budget=budget).resolved_allotment()
        ceiling = int(allot.sum())
        base_extras: dict[str, Any] = {"route": "before-pooling", "mode": self.mode}
        if full_allotment(allot, n):
            idx = [torch.arange(n, dtype=torch.int64) for _ in range(nf)]
            return self._stamp(TokenSelection(index=idx, embeddings=None, grid=(h, w),
                                              extras={**base_extras, "identity": True}), start)
        comp = np.flatnonzero(allot > 0)
        cache: dict = {}
        shallow, src_s = self._layer_stat(inputs, self.shallow_layer, cache)
        deep, src_d = self._layer_stat(inputs, self.deep_layer, cache)
        x = flat_tokens(inputs)[torch.as_tensor(comp, device=tok.device)].float()
        rows = torch.as_tensor(comp)
        sh, dp = shallow[rows.to(shallow.device)].to(x.device), deep[rows.to(deep.device)].to(x.device)
        if self.anchors is not None:
            m0 = np.full(comp.size, int(self.anchors), dtype=np.int64)
        else:
            m0 = np.floor(allot[comp].astype(np.float64) * big_l / n).astype(np.int64)
        m0 = np.clip(m0, 1, big_l)
        scale = 1.0
        chain: dict[str, Any] = {}
        for attempt in range(10):
            m = np.clip(np.floor(m0 * scale).astype(np.int64), 1, big_l) if attempt < 9 else np.ones_like(m0)
            chain = self._released_chain(x, sh, dp, m, comp, nf, (hh, ww), pool, (h, w))
            total = sum(int(e.shape[0]) for e in chain["emb"])
            if total <= ceiling and chain["fits"]:
                break
            if attempt == 9 or bool(np.all(m == 1)):
                break
            scale *= min(0.9, 0.95 * ceiling / max(total, 1))
        index_c, emb_c = chain["index"], chain["emb"]
        total = sum(int(e.shape[0]) for e in emb_c)
        if total > ceiling or not chain["fits"]:  # drop the sequence's last tokens
            index_c, emb_c = _truncate_layout(index_c, emb_c, ceiling, n)
        index = [torch.zeros(0, dtype=torch.int64) for _ in range(nf)]
        emb = [tok.new_zeros(0, d) for _ in range(nf)]
        for j, f in enumerate(comp.tolist()):
            index[f], emb[f] = index_c[j].cpu(), emb_c[j].to(tok.dtype)
        anchors_pf = np.zeros(nf, dtype=np.int64)
        anchors_pf[comp] = chain["m"]
        pooled_pf = np.zeros(nf, dtype=np.int64)
        pooled_pf[comp] = chain["pooled_anchors"]
        return self._stamp(TokenSelection(
            index=index, embeddings=emb, grid=(h, w),
            extras={**base_extras,
                    "importance_source": {"shallow": src_s, "deep": src_d},
                    "anchors": anchors_pf, "pooled_anchors": pooled_pf, "anchor_scale": float(scale),
                    "clips": chain["table"], "truncated": bool(total > ceiling or not chain["fits"]),
                    "sinkhorn_iterations": chain["iterations"]},
        ), start)

    def _stamp(self, out: TokenSelection, start: float) -> TokenSelection:
        """Name, parameters and time of a selection made outside :meth:`select`."""
        out.selector = self.name or type(self).__name__
        out.params = self.get_params()
        out.timings["select"] = time.perf_counter() - start
        return out

    def _released_chain(
        self, x: torch.Tensor, shallow: torch.Tensor, deep: torch.Tensor, m: np.ndarray, comp: np.ndarray,
        nf: int, grid: tuple[int, int], pool: Callable[[torch.Tensor], torch.Tensor], pooled_grid: tuple[int, int],
    ) -> dict[str, Any]:
        """One pass of :meth:`select_before_pooling` with ``m`` anchors per compressed frame."""
        fc, big_l, _ = x.shape
        n = pooled_grid[0] * pooled_grid[1]
        mt = torch.as_tensor(m, dtype=torch.int64, device=x.device)
        anchors = torch.ones(fc, big_l, dtype=torch.bool, device=x.device)
        part = np.flatnonzero(m < big_l)
        it_intra = np.zeros(fc, dtype=np.int64)
        xmap = x
        if part.size:
            pr = torch.as_tensor(part, device=x.device)
            a_part, _ = select_anchors(shallow[pr], deep[pr], mt[pr], grid, int(self.window_grid),
                                       float(self.global_ratio), fill=self.mode == "paper")
            anchors[pr] = a_part
            res = self._intra(x[pr], a_part, grid)
            xmap = x.clone()
            xmap[pr] = merged_map(x[pr], res.cells, res.valid, res.merged)
            it_intra[part] = res.iterations.cpu().numpy()
        pooled = pool(xmap)  # [Fc, n, D]
        pmask = pool_anchor_mask(anchors, pool)  # [Fc, n]
        empty = ~pmask.any(dim=1)
        if bool(empty.any()):
            weight = pool(anchors.to(x.dtype)[..., None])[..., 0]
            best = weight.argmax(dim=1)
            pmask[empty, best[empty]] = True
        counts = pmask.sum(dim=1)
        pmax = int(counts.max())
        cells = torch.sort((~pmask).to(torch.int8), dim=1, stable=True).indices[:, :pmax]  # raster order
        valid = torch.arange(pmax, device=x.device)[None, :] < counts[:, None]
        toks = torch.gather(pooled, 1, cells[..., None].expand(-1, -1, pooled.shape[-1]))
        table = self._clips(comp, nf)
        out, keep, _mass, it_clip = self._inter(toks, valid, comp, table)
        index, emb, fits = released_layout(toks, valid, cells, out, keep, table, n)
        return {"index": index, "emb": emb, "fits": fits, "m": m.copy(), "table": table,
                "pooled_anchors": counts.cpu().numpy(),
                "iterations": {"intra": it_intra, "clip": it_clip.cpu().numpy()}}


__all__ = [
    "AOTSelector", "IntraMerge", "clip_merge", "grid_positions", "intra_merge", "masked_quantile",
    "merged_map", "pool_anchor_mask", "released_layout", "select_anchors", "window_ids",
]


# stages that run the selector's own merge steps (kept here: they need AOTSelector)
def intra_merge(x: torch.Tensor, anchors: torch.Tensor, grid: tuple[int, int], **params: Any) -> IntraMerge:
    """AOT's intra-frame OT merge of every frame's other tokens into its anchors.

    x: float32 ``[F, L, D]`` tokens (``L = h * w`` raster order); anchors: bool ``[F, L]``
    (from :func:`select_anchors`; at least one anchor and one other token per frame); grid:
    ``(h, w)``. ``params``: :class:`AOTSelector` parameters (``mode``, ``spatial_weight``,
    ``eps``, ``max_iter``, ``tol``, ``intra_scale``, ``backend``).
    """
    return AOTSelector(**params)._intra(x, anchors, grid)


def clip_merge(
    anchors: torch.Tensor, sources: torch.Tensor, dt: torch.Tensor, *,
    anchors_valid: torch.Tensor | None = None, sources_valid: torch.Tensor | None = None, **params: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AOT's inter-frame OT merge of a later frame's tokens into the clip anchors (batched).

    anchors: float ``[B, M, D]`` the clip's current anchors; sources: ``[B, N, D]`` a later
    frame's tokens; dt: float ``[B]`` frames between them; ``*_valid``: bool masks (default all
    valid). ``params``: :class:`AOTSelector` parameters (``mode``, ``eps``, ``max_iter``,
    ``tol``, ``keep_ratio``, ``sigma_t``, ``inter_scale``, ``backend``).
    Cost ``C_sim * C_time``, Sinkhorn, plan row-normalised to ``p(m|n)``; tokens whose
    ``max_m p(m|n)`` lies below the ``keep_ratio`` quantile are kept (changed content), the
    others merge softly. Returns ``(new anchors [B, M, D], keep bool [B, N], plan p(m|n)
    [B, N, M])``.
    """
    a_ok = torch.ones(anchors.shape[:2], dtype=torch.bool, device=anchors.device) if anchors_valid is None else anchors_valid
    s_ok = torch.ones(sources.shape[:2], dtype=torch.bool, device=sources.device) if sources_valid is None else sources_valid
    new_y, kept, plan, _load, _it = AOTSelector(**params)._clip_step(
        anchors.float(), a_ok, sources.float(), s_ok, dt.to(anchors.device, torch.float32))
    return new_y, kept, plan
