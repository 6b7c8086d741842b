"""The op table: every kernel op with its reference, Triton module, inputs, tolerances and shapes.

Tests and benchmarks iterate :data:`OPS` instead of keeping their own lists, so an op added
here is tested against its reference (``tests/test_kernels.py``: the Triton kernel under the
CPU interpreter at every ``test_shapes`` x ``dtypes``, compiled for sm_90, the dispatcher's
reference path) and benchmarked (``vidsieve bench kernels`` / ``vidsieve bench gpu`` at every
``bench_shapes``). A test fails when a kernel folder (a sub-package with ``triton_kernel.py``)
has no entry here.

To add an op: put ``reference.py``, ``triton_kernel.py`` and a dispatching front-end in a new
folder, then one :class:`Op` below with an input builder, the reference and front-end calls,
odd test shapes (sizes that are not powers of two, length 1) and per-dtype tolerances.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["OPS", "Op", "kernel_folders", "op"]

Inputs = dict[str, Any]


@dataclass(frozen=True)
class Op:
    """One kernel op.

    name:          the op's public function (``package.name``).
    package:       module of the dispatching front-end, e.g. ``vidsieve.kernels.token_scores``.
    reference:     name (in ``package``) of the PyTorch reference the front-end calls.
    triton_module: module holding the ``@triton.jit`` kernels.
    dims:          names of the shape's dimensions, e.g. ``("F", "L", "D")``.
    build:         ``(shape, dtype, device, seed) -> inputs`` (a dict of tensors and scalars).
    run:           ``(inputs, backend) -> output`` through the front-end.
    run_reference: ``inputs -> output`` through the reference (the oracle).
    tolerances:    per input dtype ``(atol, rtol)`` of output vs reference.
    test_shapes:   odd shapes the Triton kernel is checked at (interpreter: keep them small).
    dtypes:        input dtypes to check and benchmark.
    bench_shapes:  shape set name (``llava-ov``, ``qwen2.5-vl``, ``llava-video``) -> shape.
    moved_bytes:   ``inputs -> (bytes, formula)``: the minimal bytes the op must move.
    check:         extra assertion ``(got, ref, atol)`` beyond the tolerance (e.g. top-k).
    """

    name: str
    package: str
    reference: str
    triton_module: str
    dims: tuple[str, ...]
    build: Callable[[tuple[int, ...], torch.dtype, str, int], Inputs]
    run: Callable[[Inputs, str], Any]
    run_reference: Callable[[Inputs], Any]
    tolerances: Mapping[torch.dtype, tuple[float, float]]
    test_shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[torch.dtype, ...]
    bench_shapes: Mapping[str, tuple[int, ...]]
    moved_bytes: Callable[[Inputs], tuple[int, str]]
    check: Callable[[Any, Any, float], None] | None = None

    def shape_text(self, shape: tuple[int, ...]) -> str:
        return " ".join(f"{n}={v}" for n, v in zip(self.dims, shape))


def plan_of(out: Any) -> torch.Tensor:
    """The tensor to compare: a Sinkhorn result's plan, else the output itself."""
    return out.plan if hasattr(out, "plan") else out


def topk_agree(got: torch.Tensor, ref: torch.Tensor, atol: float, share: int = 4) -> None:
    """Per row, the top ``L // share`` index sets agree except for entries tied within
    ``2 * atol`` of the k-th value (what a token selector keeps must not depend on backend)."""
    for g_row, r_row in zip(got.float(), ref.float()):
        k = max(1, r_row.numel() // share)
        a = set(torch.topk(g_row, k).indices.tolist())
        b = set(torch.topk(r_row, k).indices.tolist())
        kth = torch.topk(r_row, k).values[-1]
        for j in a ^ b:
            if abs(float(r_row[j] - kth)) > 2 * atol:
                raise AssertionError(f"top-{k} differs at token {j}: {float(r_row[j])} vs k-th {float(kth)}")


def _tokens(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int) -> Inputs:
    """Tokens [F, L, D] sharing a per-frame direction (so redundancy varies), importance [F, L]."""
    f, length, d = shape
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(f, 1, d, generator=g)
    w = torch.rand(f, length, 1, generator=g) * 3
    x = (w * base + torch.randn(f, length, d, generator=g)).to(dtype)
    imp = torch.rand(f, length, generator=g)
    return {"x": x.to(device), "importance": imp.to(device), "alpha": 0.3}


def _qk(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int) -> Inputs:
    b, h, length, d = shape
    g = torch.Generator().manual_seed(seed)
    q = (torch.randn(b, h, length, d, generator=g) * 1.5).to(dtype)
    k = torch.randn(b, h, length, d, generator=g).to(dtype)
    return {"q": q.to(device), "k": k.to(device), "scale": 1.0 / math.sqrt(d)}


def _cost(shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int) -> Inputs:
    g = torch.Generator().manual_seed(seed)
    cost = (torch.rand(*shape, generator=g) * 2).to(dtype)
    return {"cost": cost.to(device), "eps": 0.1, "max_iter": 100, "tol": 1e-3, "stop": "per_problem"}


def _ktv_scores(i: Inputs, backend: str) -> torch.Tensor:
    from .token_scores import ktv_token_scores

    return ktv_token_scores(i["x"], i["importance"], i["alpha"], backend=backend)


def _ktv_scores_ref(i: Inputs) -> torch.Tensor:
    from .token_scores.reference import ktv_token_scores_ref

    return ktv_token_scores_ref(i["x"], i["importance"], i["alpha"])


def _ktv_red(i: Inputs, backend: str) -> torch.Tensor:
    from .token_scores import ktv_redundancy

    return ktv_redundancy(i["x"], backend=backend)


def _ktv_red_ref(i: Inputs) -> torch.Tensor:
    from .token_scores.reference import ktv_redundancy_ref

    return ktv_redundancy_ref(i["x"])


def _attn(i: Inputs, backend: str) -> torch.Tensor:
    from .attention_received import attention_received

    return attention_received(i["q"], i["k"], scale=i["scale"], backend=backend)


def _attn_ref(i: Inputs) -> torch.Tensor:
    from .attention_received.reference import attention_received_ref

    return attention_received_ref(i["q"], i["k"], i["scale"])


def _sinkhorn(i: Inputs, backend: str) -> Any:
    from .sinkhorn import sinkhorn_result

    return sinkhorn_result(i["cost"], eps=i["eps"], max_iter=i["max_iter"], tol=i["tol"], stop=i["stop"],
                           backend=backend)


def _sinkhorn_ref(i: Inputs) -> Any:
    from .sinkhorn.reference import prepare_marginals, sinkhorn_ref

    log_a, log_b = prepare_marginals(i["cost"], None, None, None, None, torch.float32)
    return sinkhorn_ref(i["cost"], log_a, log_b, i["eps"], i["max_iter"], i["tol"], i["stop"])


def _same_iterations(got: Any, ref: Any, atol: float) -> None:
    if got.iterations.tolist() != ref.iterations.tolist():
        raise AssertionError(f"iterations {got.iterations.tolist()} != reference {ref.iterations.tolist()}")


def _tokens_bytes(i: Inputs) -> tuple[int, str]:
    f, length, d = i["x"].shape
    e = i["x"].element_size()
    return f * length * d * e + 2 * f * length * 4, f"F*L*D*{e} (x) + F*L*4 (importance) + F*L*4 (scores)"


def _qk_bytes(i: Inputs) -> tuple[int, str]:
    b, h, length, d = i["q"].shape
    e = i["q"].element_size()
    return 2 * b * h * length * d * e + b * length * 4, f"2*B*H*L*d*{e} (q, k) + B*L*4 (out)"


def _cost_bytes(i: Inputs) -> tuple[int, str]:
    b, n, m = i["cost"].shape
    e = i["cost"].element_size()
    return b * n * m * (e + 4), f"B*N*M*{e} (cost, once) + B*N*M*4 (plan); iterations re-read the cost"


_HALF = (torch.float32, torch.bfloat16, torch.float16)
_KTV_TOL = {torch.float32: (2e-5, 0.0), torch.bfloat16: (5e-5, 0.0), torch.float16: (5e-5, 0.0)}
#: benchmark shapes shared by the KTV ops: SigLIP grid x 64 frames (LLaVA-OneVision), Qwen2.5-VL
#: ViT at 504 x 504 (36 x 36 patches) x 32 frame pairs, LLaVA-Video's 13 x 13 pooled tokens at
#: the LLM width (Qwen2-7B) x 64 frames, and the released KTV setting (CLIP-L/336).
_KTV_BENCH = {"llava-ov": (64, 729, 1152), "qwen2.5-vl": (32, 1296, 1280), "llava-video": (64, 169, 3584),
              "ktv": (6, 576, 1024)}

OPS: tuple[Op, ...] = (
    Op(
        name="ktv_token_scores", package="vidsieve.kernels.token_scores", reference="ktv_token_scores_ref",
        triton_module="vidsieve.kernels.token_scores.triton_kernel", dims=("F", "L", "D"),
        build=_tokens, run=_ktv_scores, run_reference=_ktv_scores_ref, tolerances=_KTV_TOL,
        test_shapes=((3, 123, 60), (2, 729, 1152), (2, 1, 60), (2, 5, 2), (1, 63, 37)),
        dtypes=_HALF, bench_shapes=_KTV_BENCH, moved_bytes=_tokens_bytes,
        check=lambda got, ref, atol: topk_agree(got, ref, atol),
    ),
    Op(
        name="ktv_redundancy", package="vidsieve.kernels.token_scores", reference="ktv_redundancy_ref",
        triton_module="vidsieve.kernels.token_scores.triton_kernel", dims=("F", "L", "D"),
        build=_tokens, run=_ktv_red, run_reference=_ktv_red_ref,
        tolerances={dt: (a / 10, r) for dt, (a, r) in _KTV_TOL.items()},
        test_shapes=((3, 123, 60), (2, 1, 60), (1, 63, 37)), dtypes=_HALF, bench_shapes=_KTV_BENCH,
        moved_bytes=_tokens_bytes,
    ),
    Op(
        name="attention_received", package="vidsieve.kernels.attention_received", reference="attention_received_ref",
        triton_module="vidsieve.kernels.attention_received.triton_kernel", dims=("B", "H", "L", "d"),
        build=_qk, run=_attn, run_reference=_attn_ref, tolerances=dict.fromkeys(_HALF, (1e-4, 1e-4)),
        test_shapes=((1, 1, 729, 72), (2, 2, 123, 60), (2, 1, 123, 80), (3, 2, 1, 60)), dtypes=_HALF,
        bench_shapes={"llava-ov": (64, 16, 729, 72), "qwen2.5-vl": (32, 16, 1296, 80),
                      "llava-video": (64, 28, 169, 128)},
        moved_bytes=_qk_bytes,
        check=lambda got, ref, atol: topk_agree(got, ref, atol * max(1.0, float(ref.abs().max())), share=8),
    ),
    Op(
        name="sinkhorn", package="vidsieve.kernels.sinkhorn", reference="sinkhorn_ref",
        triton_module="vidsieve.kernels.sinkhorn.triton_kernel", dims=("B", "N", "M"),
        build=_cost, run=_sinkhorn, run_reference=_sinkhorn_ref,
        tolerances={torch.float32: (1e-7, 1e-4), torch.float16: (1e-7, 1e-4)},
        test_shapes=((3, 37, 11), (2, 5, 70), (1, 1, 7)), dtypes=(torch.float32,),
        # AOT: per frame, tokens x anchors (729 x 108 on SigLIP; 1296 x 144 on Qwen2.5-VL)
        bench_shapes={"llava-ov": (64, 729, 108), "qwen2.5-vl": (32, 1296, 144), "llava-video": (64, 169, 32)},
        moved_bytes=_cost_bytes, check=_same_iterations,
    ),
)


def op(name: str) -> Op:
    """The table entry named ``name``."""
    for o in OPS:
        if o.name == name:
            return o
    raise KeyError(f"no kernel op {name!r}; table: {[o.name for o in OPS]}")


def kernel_folders() -> list[str]:
    """Packages under ``vidsieve.kernels`` that hold a Triton kernel (``triton_kernel.py``)."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    return sorted(f"vidsieve.kernels.{p.name}" for p in here.iterdir()
                  if p.is_dir() and (p / "triton_kernel.py").exists())
