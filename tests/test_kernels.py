"""Kernels: Triton (under TRITON_INTERPRET=1, on CPU) against the PyTorch references, the
references against independent oracles (explicit L x L matrices, POT), and the dispatch rules.

Per-dtype tolerances (the kernel and the reference see the same rounded inputs and both
accumulate in float32, so only summation order differs; half-precision inputs only change
what is summed, not how):

* KTV scores: fp32 atol 2e-5; bf16/fp16 atol 5e-5 (scores are min-max rescaled);
  redundancy a tenth of those. Top-k index sets must agree except at ties within 2*atol.
* attention received: rtol 1e-4 and atol 1e-4, every dtype (outputs are O(1) column sums).
* Sinkhorn plans: atol 1e-7, rtol 1e-4 (plans of total mass 1, entries ~1e-4), and the same
  iteration counts.

Known interpreter gap: Triton 3.8's interpreter computes a bfloat16 ``tl.dot`` on the raw
bits, so under the interpreter the attention kernel upcasts bfloat16 tiles to float32 before
the dot (``UPCAST``); the native bfloat16 dot is only compiled (test below), not executed.
"""

from __future__ import annotations

import importlib
import logging
import math
import sys
from collections.abc import Callable, Mapping

import numpy as np
import pytest
import torch
from vidsieve.kernels import _dispatch
from vidsieve.kernels._dispatch import ENV_VAR, KernelBackendError
from vidsieve.kernels._ops import OPS, Op, kernel_folders, plan_of
from vidsieve.kernels.attention_received import attention_received, cls_attention
from vidsieve.kernels.attention_received.reference import attention_received_ref
from vidsieve.kernels.sinkhorn import sinkhorn, sinkhorn_result
from vidsieve.kernels.token_scores import ktv_redundancy, ktv_token_scores
from vidsieve.kernels.token_scores.reference import ktv_redundancy_ref, ktv_token_scores_ref

from vidsieve.errors import ParameterError

#: from the op table: every module with Triton kernels, and (package, reference its dispatch calls)
KERNEL_MODULES = tuple(sorted({o.triton_module for o in OPS}))
REFERENCES = tuple(sorted({(o.package, o.reference) for o in OPS}))


def _tokens(f: int, length: int, d: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """Tokens with a shared per-frame direction plus noise, so redundancy varies a lot."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(f, 1, d, generator=g)
    w = torch.rand(f, length, 1, generator=g) * 3
    return (w * base + torch.randn(f, length, d, generator=g)).to(dtype)


# ----------------------------------------------------------------------------- references


def test_redundancy_reference_matches_explicit_cosine_matrix() -> None:
    x = _tokens(3, 37, 20, torch.float64)
    xh = torch.nn.functional.normalize(x, dim=-1)
    gram = xh @ xh.transpose(1, 2)  # [F, L, L]
    expected = (gram.sum(-1) - gram.diagonal(dim1=1, dim2=2)) / 36
    torch.testing.assert_close(ktv_redundancy_ref(x).double(), expected, atol=1e-6, rtol=0)
    assert torch.equal(ktv_redundancy_ref(x[:, :1]), torch.zeros(3, 1))


def test_token_scores_reference_formula_and_constant_rows() -> None:
    x = _tokens(2, 11, 8, torch.float32)
    imp = torch.rand(2, 11)
    imp[1] = 0.5  # constant importance row -> minmax 0
    s = ktv_token_scores_ref(x, imp, 0.3)
    red = ktv_redundancy_ref(x)
    r01 = (red - red.amin(1, keepdim=True)) / (
        red.amax(1, keepdim=True) - red.amin(1, keepdim=True)
    )
    i01 = (imp[0] - imp[0].min()) / (imp[0].max() - imp[0].min())
    torch.testing.assert_close(s[0], 0.3 * i01 + 0.7 * (1 - r01[0]))
    torch.testing.assert_close(s[1], 0.7 * (1 - r01[1]))
    # L = 1: redundancy and importance constant -> score = 1 - alpha
    torch.testing.assert_close(
        ktv_token_scores_ref(x[:, :1], imp[:, :1], 0.3), torch.full((2, 1), 0.7)
    )


def test_attention_received_reference_matches_full_softmax() -> None:
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 3, 50, 16, generator=g), torch.randn(2, 3, 50, 16, generator=g)
    full = torch.softmax(q @ k.transpose(-1, -2) * 0.25, dim=-1).sum(2).mean(1)
    got = attention_received_ref(q, k, 0.25, row_chunk=7)  # chunking must not matter
    torch.testing.assert_close(got, full)
    torch.testing.assert_close(got.sum(1), torch.full((2,), 50.0))
    torch.testing.assert_close(attention_received(q, k, scale=0.25), full)


def test_cls_attention() -> None:
    g = torch.Generator().manual_seed(2)
    qc, k = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 9, 8, generator=g)
    logits = torch.einsum("bhd,bhld->bhl", qc, k) / math.sqrt(8)
    torch.testing.assert_close(cls_attention(qc, k), torch.softmax(logits, -1).mean(1))
    torch.testing.assert_close(cls_attention(qc, k, softmax=False), logits.mean(1))
    with pytest.raises(ParameterError, match="does not match"):
        cls_attention(qc[:, :2], k)


@pytest.mark.parametrize(("n", "m"), [(7, 5), (30, 11), (4, 4)])
def test_sinkhorn_reference_matches_pot(n: int, m: int) -> None:
    ot = pytest.importorskip("ot")
    g = torch.Generator().manual_seed(n * m)
    cost = torch.rand(1, n, m, generator=g, dtype=torch.float64) * 2
    a = torch.rand(1, n, generator=g, dtype=torch.float64) + 0.1
    a /= a.sum()
    b = torch.full((1, m), 1.0 / m, dtype=torch.float64)
    res = sinkhorn_result(cost, a=a, b=b, eps=0.1, max_iter=20000, tol=1e-12, backend="torch")
    expected = ot.sinkhorn(
        a[0].numpy(), b[0].numpy(), cost[0].numpy(), 0.1, numItermax=200000, stopThr=1e-14
    )
    np.testing.assert_allclose(res.plan[0].numpy(), expected, atol=1e-10, rtol=0)
    assert res.iterations.item() < 20000


def test_sinkhorn_masks_equal_pot_on_the_unmasked_subproblem() -> None:
    ot = pytest.importorskip("ot")
    g = torch.Generator().manual_seed(5)
    cost = torch.rand(2, 9, 6, generator=g, dtype=torch.float64) * 2
    rm = torch.tensor([[1, 0, 1, 1, 0, 1, 1, 1, 1], [1] * 9], dtype=torch.bool)
    cm = torch.tensor([[1, 1, 0, 1, 1, 1], [0, 1, 1, 0, 1, 1]], dtype=torch.bool)
    plan = sinkhorn(cost, row_mask=rm, col_mask=cm, max_iter=20000, tol=1e-12, backend="torch")
    for i in range(2):
        sub = cost[i][rm[i]][:, cm[i]].numpy()
        nr, nc = sub.shape
        expected = ot.sinkhorn(
            np.full(nr, 1 / nr), np.full(nc, 1 / nc), sub, 0.1, numItermax=200000, stopThr=1e-14
        )
        np.testing.assert_allclose(plan[i][rm[i]][:, cm[i]].numpy(), expected, atol=1e-10)
        assert float(plan[i][~rm[i]].abs().sum() + plan[i][:, ~cm[i]].abs().sum()) == 0.0


def test_sinkhorn_small_eps_does_not_underflow() -> None:
    cost = torch.rand(2, 40, 30, generator=torch.Generator().manual_seed(3)) * 6
    assert float(torch.exp(-cost / 0.05).min()) == 0.0  # plain K underflows in float32
    res = sinkhorn_result(cost, eps=0.05, max_iter=2000, tol=1e-4)
    assert torch.isfinite(res.plan).all()
    assert int(res.iterations.max()) < 2000
    err = (res.plan.sum(2) - 1 / 40).abs().sum(1)
    assert float(err.max()) <= 1.05e-4


def _aot_released(cost: torch.Tensor, eps: float, max_iter: int) -> tuple[torch.Tensor, int]:
    """Plain (non-log) loop as the released AOT code runs it: K = exp(-C / eps), u, v updates."""
    kmat = torch.exp(-cost / eps)
    u = torch.full(cost.shape[:2], 1.0 / cost.shape[1], dtype=cost.dtype)
    v = torch.full((cost.shape[0], cost.shape[2]), 1.0 / cost.shape[2], dtype=cost.dtype)
    r, c = torch.ones_like(u), torch.ones_like(v)
    it = 0
    for _ in range(max_iter):
        r0 = r
        r = u / (kmat @ c[..., None])[..., 0]
        c = v / (kmat.transpose(1, 2) @ r[..., None])[..., 0]
        it += 1
        if float((r - r0).abs().mean()) < 1e-2:
            break
    return r[:, :, None] * kmat * c[:, None, :], it


def test_sinkhorn_released_stop_reproduces_aot_loop() -> None:
    # Costs like AOT's intra-frame ones: 1 - cos + 0.5 * distance, in [0, ~2.7].
    g = torch.Generator().manual_seed(4)
    cost = torch.rand(4, 60, 12, generator=g, dtype=torch.float64) * 2.5
    expected, n_iter = _aot_released(cost, 0.1, 100)
    res = sinkhorn_result(cost, stop="released", tol=1e-2, backend="torch")
    torch.testing.assert_close(res.plan, expected, atol=1e-12, rtol=1e-9)
    assert res.iterations.tolist() == [n_iter] * 4
    assert n_iter < 100  # it stops early, pooled over the batch
    # far from converged in rows, exact in columns (c is updated last)
    torch.testing.assert_close(res.plan.sum(1), torch.full((4, 12), 1 / 12, dtype=torch.float64))


def test_sinkhorn_per_problem_stops_each_problem_on_its_own() -> None:
    g = torch.Generator().manual_seed(6)
    easy = torch.rand(1, 20, 10, generator=g) * 0.01  # nearly constant cost: converges at once
    hard = torch.rand(1, 20, 10, generator=g) * 2
    res = sinkhorn_result(torch.cat([easy, hard]), tol=1e-4, max_iter=1000)
    assert res.iterations[0] < res.iterations[1]
    for i in range(2):
        err = (res.plan[i].sum(1) - 1 / 20).abs().sum()
        assert float(err) <= 1e-4


# ------------------------------------------------------------------- Triton (interpreter)
#
# Triton decides at import time (of triton itself: its standard library is @jit code) whether
# kernels are interpreted, so the interpreter cases run in one child process started with
# TRITON_INTERPRET=1 (this file is the child's script). The child checks that every kernel is
# an interpreted function and makes the references raise, so a silent fallback cannot pass;
# each case is reported back and asserted by its own parametrised test below.


def case_table(name: str, shape: tuple[int, ...], dtype: str) -> None:
    """One op-table entry at one shape and dtype: the Triton kernel against the reference."""
    o = next(x for x in OPS if x.name == name)
    dt = getattr(torch, dtype)
    inputs = o.build(shape, dt, "cpu", sum(shape))
    got, ref = o.run(inputs, "triton"), o.run_reference(inputs)
    g, r = plan_of(got), plan_of(ref)
    atol, rtol = o.tolerances[dt]
    assert g.dtype == torch.float32 and g.shape == r.shape, (g.dtype, g.shape, r.shape)
    torch.testing.assert_close(g, r, atol=atol, rtol=rtol)
    if o.check is not None:
        o.check(got, ref, atol)


def case_ktv_d1() -> None:
    """D = 1: every cosine is exactly +-1; signs mixed so no frame's redundancy is constant."""
    x = torch.tensor([[1.0, -2.0, 3.0, -1.0, 2.0], [-1.0, 1.0, 2.0, -3.0, 1.0]])[..., None]
    imp = torch.rand(2, 5, generator=torch.Generator().manual_seed(7))
    got = ktv_token_scores(x, imp, 0.3, backend="triton")
    torch.testing.assert_close(got, ktv_token_scores_ref(x, imp, 0.3), atol=2e-5, rtol=0)
    torch.testing.assert_close(ktv_redundancy(x, backend="triton"), ktv_redundancy_ref(x), atol=2e-6, rtol=0)


def case_ktv_strided() -> None:
    x = _tokens(3, 60, 40, torch.float32).transpose(0, 1).contiguous().transpose(0, 1)
    assert not x.is_contiguous()
    imp = torch.rand(60, 3).t()
    got = ktv_token_scores(x, imp, 0.8, backend="triton")
    torch.testing.assert_close(got, ktv_token_scores_ref(x, imp, 0.8), atol=2e-5, rtol=0)


def case_attention_strided_scale() -> None:
    g = torch.Generator().manual_seed(9)
    qkv = torch.randn(2, 70, 3, 2, 24, generator=g)  # [B, L, 3, H, d] as a fused projection
    q, k = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)  # [B, H, L, d] views
    got = attention_received(q, k, scale=0.3, backend="triton")
    torch.testing.assert_close(got, attention_received_ref(q, k, 0.3), atol=1e-4, rtol=1e-4)


def case_sinkhorn_masked(stop: str) -> None:
    from vidsieve.kernels.sinkhorn import reference

    g = torch.Generator().manual_seed(10)
    cost = torch.rand(4, 129, 37, generator=g) * 2
    rm = torch.rand(4, 129, generator=g) > 0.2
    cm = torch.rand(4, 37, generator=g) > 0.2
    cm[2] = False  # a problem with no column: zero plan
    tol = 1e-3 if stop == "per_problem" else 1e-2
    got = sinkhorn_result(cost, row_mask=rm, col_mask=cm, stop=stop, tol=tol, backend="triton")
    log_a, log_b = reference.prepare_marginals(cost, None, None, rm, cm, torch.float32)
    ref = reference.sinkhorn_ref(cost, log_a, log_b, 0.1, 100, tol, stop)
    assert got.plan.shape == (4, 129, 37)
    torch.testing.assert_close(got.plan, ref.plan, atol=1e-7, rtol=1e-4)
    assert got.iterations.tolist() == ref.iterations.tolist()
    assert float(got.plan[2].abs().sum()) == 0.0
    assert int(got.iterations.max()) > 1


def case_sinkhorn_marginals_half_wide() -> None:
    from vidsieve.kernels.sinkhorn import reference

    g = torch.Generator().manual_seed(11)
    cost = (torch.rand(3, 5, 70, generator=g) * 2).half()
    a = torch.rand(3, 5, generator=g) + 0.1
    a /= a.sum(1, keepdim=True)
    b = torch.rand(3, 70, generator=g) + 0.1
    b /= b.sum(1, keepdim=True)
    got = sinkhorn_result(cost, a=a, b=b, tol=1e-5, max_iter=300, backend="triton")
    log_a, log_b = reference.prepare_marginals(cost, a, b, None, None, torch.float32)
    ref = reference.sinkhorn_ref(cost, log_a, log_b, 0.1, 300, 1e-5, "per_problem")
    torch.testing.assert_close(got.plan, ref.plan, atol=1e-7, rtol=1e-4)
    assert got.iterations.tolist() == ref.iterations.tolist()
    torch.testing.assert_close(got.plan.sum(1), b, atol=1e-6, rtol=0)


def case_sinkhorn_unequal_totals_rejected() -> None:
    """Forced Triton (the reference is forbidden in the worker): mismatched marginal totals
    raise ParameterError before either backend runs."""
    a = torch.full((2, 5), 0.2)
    b = torch.full((2, 4), 0.25)
    b[1] *= 0.4
    # no pytest.raises here: its failure is a BaseException the worker would not record
    try:
        sinkhorn(torch.rand(2, 5, 4), a=a, b=b, backend="triton")
    except ParameterError as e:
        if "problem 1 has sum(a) = 1 and sum(b) = 0.4" not in str(e):
            raise AssertionError(f"unexpected message: {e}") from e
    else:
        raise AssertionError("unequal marginal totals were accepted")


def _table_cases(ops: tuple[Op, ...]) -> dict[str, tuple[Callable[..., None], tuple[object, ...]]]:
    out: dict[str, tuple[Callable[..., None], tuple[object, ...]]] = {}
    for o in ops:
        for shape in o.test_shapes:
            for dt in o.dtypes:
                dname = str(dt).replace("torch.", "")
                out[f"{o.name}-{'x'.join(map(str, shape))}-{dname}"] = (case_table, (o.name, shape, dname))
    return out


INTERP_CASES: dict[str, tuple[Callable[..., None], tuple[object, ...]]] = {
    **_table_cases(OPS),
    "ktv-D1": (case_ktv_d1, ()),
    "ktv-strided": (case_ktv_strided, ()),
    "attn-strided-scale": (case_attention_strided_scale, ()),
    "sinkhorn-masked-per_problem": (case_sinkhorn_masked, ("per_problem",)),
    "sinkhorn-masked-released": (case_sinkhorn_masked, ("released",)),
    "sinkhorn-marginals-fp16-N<M": (case_sinkhorn_marginals_half_wide, ()),
    "sinkhorn-unequal-totals-rejected": (case_sinkhorn_unequal_totals_rejected, ()),
}


def _interp_worker(out: str) -> None:
    """Child process: run every case under the interpreter, write {case: "ok" | traceback}."""
    import json
    import traceback

    from threadpoolctl import threadpool_limits
    from triton.runtime.interpreter import InterpretedFunction

    results: dict[str, str] = {}
    try:
        for name in KERNEL_MODULES:
            mod = importlib.import_module(name)
            kernels = [
                v for k, v in vars(mod).items() if k.startswith("_") and k.endswith("_kernel")
            ]
            if not kernels or not all(isinstance(k, InterpretedFunction) for k in kernels):
                raise AssertionError(f"{name}: kernels are not interpreted functions")

        def _forbidden(*args: object, **kwargs: object) -> None:
            raise AssertionError("the reference ran where the Triton kernel was expected")

        for pkg, fn_name in REFERENCES:
            setattr(importlib.import_module(pkg), fn_name, _forbidden)
    except Exception:
        results = {case: traceback.format_exc() for case in INTERP_CASES}
    else:
        with threadpool_limits(1):  # the interpreter's tl.dot is numpy matmul
            for case, (fn, args) in INTERP_CASES.items():
                try:
                    fn(*args)
                    results[case] = "ok"
                except Exception:
                    results[case] = traceback.format_exc()
    with open(out, "w") as fh:
        json.dump(results, fh)


@pytest.fixture(scope="module")
def interp_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    pytest.importorskip("triton")
    import json
    import os
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("interp") / "results.json"
    env = dict(os.environ, TRITON_INTERPRET="1", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env.pop(ENV_VAR, None)
    proc = subprocess.run(
        [sys.executable, __file__, "--interp-worker", str(out)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not out.exists():
        pytest.fail(f"interpreter worker failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    results: dict[str, str] = json.loads(out.read_text())
    return results


@pytest.mark.parametrize("case", list(INTERP_CASES))
def test_triton_kernel_in_interpreter_matches_reference(
    interp_results: dict[str, str], case: str
) -> None:
    result = interp_results[case]
    if result != "ok":
        pytest.fail(f"{case} under TRITON_INTERPRET=1:\n{result}", pytrace=False)


def test_triton_kernels_compile_for_sm90() -> None:
    """Ahead-of-time compile every kernel variant to a cubin for an H100 (sm_90), no GPU needed.

    The interpreter runs kernel code as Python, so it accepts constructs the GPU compiler may
    reject (control flow, dtypes, shared-memory size); this catches those here.
    """
    pytest.importorskip("triton")
    import os

    if _dispatch.interpreter_enabled() or os.environ.get("TRITON_INTERPRET"):
        pytest.skip("TRITON_INTERPRET is set for the whole session: kernels are interpreted")
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from vidsieve.kernels.attention_received import triton_kernel as attn
    from vidsieve.kernels.sinkhorn import triton_kernel as sk
    from vidsieve.kernels.token_scores import triton_kernel as ts

    def source(fn: object, types: Mapping[str, str], consts: Mapping[str, object]) -> ASTSource:
        names = fn.arg_names  # type: ignore[attr-defined]
        sig = {n: ("constexpr" if n in consts else types.get(n, "i32")) for n in names}
        return ASTSource(fn, sig, constexprs={(names.index(k),): v for k, v in consts.items()})

    i64 = dict.fromkeys(["stride_xf", "stride_xl", "stride_xd", "stride_if", "stride_il",
                         "stride_of", "s_cb", "s_cn", "s_cm"], "i64")  # fmt: skip
    variants = []
    for red in (True, False):
        t = {**i64, "x_ptr": "*bf16", "imp_ptr": "*fp32", "out_ptr": "*fp32", "alpha": "fp32"}
        c = {"NORM_EPS_C": 1e-12, "RANGE_EPS_C": 1e-12, "REDUNDANCY_ONLY": red,
             "BLOCK_L": 1024, "BLOCK_D": 16}  # fmt: skip
        variants.append((source(ts._ktv_scores_kernel, t, c), 8))
    for fn in (attn._attn_row_lse_kernel, attn._attn_col_sum_kernel):
        for dt, block in (("bf16", 64), ("fp32", 32)):
            t = {"q_ptr": f"*{dt}", "k_ptr": f"*{dt}", "lse_ptr": "*fp32", "out_ptr": "*fp32",
                 "qk_scale": "fp32"}  # fmt: skip
            c = {"IEEE": dt == "fp32", "UPCAST": False, "BLOCK_M": block, "BLOCK_N": block,
                 "BLOCK_D": 128}  # fmt: skip
            variants.append((source(fn, t, c), 4))
    for per_problem in (True, False):
        t = {**i64, **dict.fromkeys(["c_ptr", "loga_ptr", "logb_ptr", "logr_ptr", "logc_ptr",
                                     "lse_ptr", "plan_ptr", "delta_ptr"], "*fp32"),
             "iters_ptr": "*i32", "inv_eps": "fp32", "tol": "fp32"}  # fmt: skip
        c = {"PER_PROBLEM": per_problem, "WRITE_PLAN": True, "BLOCK_N": 64, "BLOCK_M": 64}
        variants.append((source(sk._sinkhorn_kernel, t, c), 4))
    for src, warps in variants:
        compiled = triton.compile(
            src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps}
        )
        assert compiled.asm.get("cubin"), src.fn.__name__
        assert compiled.metadata.shared <= 100 * 1024, (src.fn.__name__, compiled.metadata.shared)


# ------------------------------------------------------------------------------- op table


def test_every_kernel_folder_is_in_the_op_table() -> None:
    """A kernel cannot land without an op-table entry (hence a test against its reference)."""
    folders = kernel_folders()
    assert folders, "no kernel folders found"
    assert set(folders) <= {o.package for o in OPS}, set(folders) - {o.package for o in OPS}
    for o in OPS:
        pkg = importlib.import_module(o.package)
        assert callable(getattr(pkg, o.name)) and callable(getattr(pkg, o.reference)), o.name
        assert o.triton_module.startswith(o.package + "."), o.name
        assert o.test_shapes and o.dtypes and set(o.dtypes) <= set(o.tolerances), o.name
        # odd sizes: every table op is checked at a dimension that is not a power of two
        assert any(any(v > 2 and v & (v - 1) for v in s) for s in o.test_shapes), o.name


@pytest.mark.parametrize("o", OPS, ids=lambda o: o.name)
def test_op_table_front_end_on_cpu_is_its_reference(o: Op) -> None:
    """backend="torch" runs exactly the reference the table names, at every test shape."""
    for shape in o.test_shapes:
        inputs = o.build(shape, torch.float32, "cpu", 1)
        got, ref = plan_of(o.run(inputs, "torch")), plan_of(o.run_reference(inputs))
        assert torch.equal(got, ref), (o.name, shape)


# ------------------------------------------------------------------------------- dispatch


@pytest.fixture
def fresh_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dispatch, "_logged", set())
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)


def test_auto_on_cpu_uses_reference_and_logs_once(
    fresh_log: None, caplog: pytest.LogCaptureFixture
) -> None:
    x, imp = _tokens(2, 9, 4, torch.float32), torch.rand(2, 9)
    with caplog.at_level(logging.INFO, logger="vidsieve.kernels"):
        for _ in range(3):
            got = ktv_token_scores(x, imp, 0.5)
    torch.testing.assert_close(got, ktv_token_scores_ref(x, imp, 0.5))
    lines = [r.getMessage() for r in caplog.records if "ktv_token_scores" in r.getMessage()]
    assert len(lines) == 1
    assert "torch backend" in lines[0] and "CPU tensor" in lines[0]


def test_forcing_triton_on_cpu_without_interpreter_raises(fresh_log: None) -> None:
    x, imp = _tokens(2, 9, 4, torch.float32), torch.rand(2, 9)
    with pytest.raises(KernelBackendError, match="TRITON_INTERPRET=1"):
        ktv_token_scores(x, imp, 0.5, backend="triton")
    with pytest.raises(KernelBackendError, match="CPU tensor"):
        sinkhorn(torch.rand(1, 3, 3), backend="triton")
    assert issubclass(KernelBackendError, ParameterError)


def test_env_var_selects_backend(fresh_log: None, monkeypatch: pytest.MonkeyPatch) -> None:
    q = torch.randn(1, 1, 5, 4)
    monkeypatch.setenv(ENV_VAR, "triton")
    with pytest.raises(KernelBackendError, match=f"{ENV_VAR}=triton"):
        attention_received(q, q)
    # an explicit argument wins over the environment
    torch.testing.assert_close(
        attention_received(q, q, backend="torch"), attention_received_ref(q, q, 0.5)
    )
    monkeypatch.setenv(ENV_VAR, "torch")
    torch.testing.assert_close(attention_received(q, q), attention_received_ref(q, q, 0.5))
    monkeypatch.setenv(ENV_VAR, "cuda")
    with pytest.raises(ParameterError, match=ENV_VAR):
        attention_received(q, q)


def test_triton_missing_falls_back_quietly_or_raises_when_forced(
    fresh_log: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_dispatch, "triton_available", lambda: (False, "triton not installed"))
    cost = torch.rand(2, 4, 3)
    with caplog.at_level(logging.INFO, logger="vidsieve.kernels"):
        plan = sinkhorn(cost)
    assert plan.shape == (2, 4, 3)
    assert any("triton not installed" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(KernelBackendError, match="triton not installed"):
        sinkhorn(cost, backend="triton")


def test_auto_picks_triton_for_cuda_tensors(
    fresh_log: None, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("triton")
    from types import SimpleNamespace

    cuda_like = SimpleNamespace(is_cuda=True)  # only .is_cuda is consulted
    with caplog.at_level(logging.INFO, logger="vidsieve.kernels"):
        assert _dispatch.choose_backend("op", "auto", cuda_like) == "triton"  # type: ignore[arg-type]
        assert (
            _dispatch.choose_backend("op", "auto", cuda_like, torch.zeros(1)) == "torch"  # type: ignore[arg-type]
        )
        too_big = "L=5000 > 4096 tokens per frame"
        assert _dispatch.choose_backend("op", "auto", cuda_like, triton_limit=too_big) == "torch"  # type: ignore[arg-type]
    assert "triton backend (auto, CUDA)" in caplog.text
    assert "triton rejected: CPU tensor" in caplog.text and too_big in caplog.text
    with pytest.raises(KernelBackendError, match="4096"):
        _dispatch.choose_backend("op", "triton", cuda_like, triton_limit=too_big)  # type: ignore[arg-type]


def test_auto_falls_back_when_the_triton_kernel_fails(
    fresh_log: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> int:
        raise RuntimeError("no kernel image for this GPU")

    with caplog.at_level(logging.WARNING, logger="vidsieve.kernels"):
        assert _dispatch.call_triton("op", "auto", broken, lambda: 7) == 7
    assert "no kernel image" in caplog.text and "torch reference" in caplog.text
    with pytest.raises(RuntimeError, match="no kernel image"):
        _dispatch.call_triton("op", "triton", broken, lambda: 7)
    monkeypatch.setenv(ENV_VAR, "triton")
    with pytest.raises(RuntimeError, match="no kernel image"):
        _dispatch.call_triton("op", "auto", broken, lambda: 7)


def test_bad_backend_and_inputs_raise_clear_errors(fresh_log: None) -> None:
    x = torch.rand(2, 3, 4)
    with pytest.raises(ParameterError, match="'backend' parameter"):
        ktv_redundancy(x, backend="cuda")
    with pytest.raises(ParameterError, match=r"\[F, L, D\]"):
        ktv_redundancy(x[0])
    with pytest.raises(ParameterError, match="importance"):
        ktv_token_scores(x, torch.rand(2, 4), 0.5)
    with pytest.raises(ParameterError, match="'alpha' parameter"):
        ktv_token_scores(x, torch.rand(2, 3), 1.5)
    with pytest.raises(ParameterError, match="same shape"):
        attention_received(torch.rand(1, 2, 3, 4), torch.rand(1, 2, 5, 4))
    with pytest.raises(ParameterError, match="'stop' parameter"):
        sinkhorn(torch.rand(1, 3, 3), stop="paper")
    with pytest.raises(ParameterError, match="'eps' parameter"):
        sinkhorn(torch.rand(1, 3, 3), eps=0)
    with pytest.raises(ParameterError, match="row_mask"):
        sinkhorn(torch.rand(1, 3, 3), row_mask=torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ParameterError, match="finite"):
        sinkhorn(torch.full((1, 2, 2), float("inf")))



def test_sinkhorn_rejects_marginals_with_unequal_totals() -> None:
    g = torch.Generator().manual_seed(21)
    cost = torch.rand(3, 6, 5, generator=g)
    a = torch.full((3, 6), 1 / 6)
    b = torch.full((3, 5), 1 / 5)
    b[2] *= 0.4  # the reviewer's case: totals 1.0 vs 0.4 silently gave a plan of mass 0.4
    for fn in (sinkhorn, sinkhorn_result):
        with pytest.raises(ParameterError, match=r"problem 2 has sum\(a\) = 1 and sum\(b\) = 0\.4"):
            fn(cost, a=a, b=b, backend="torch")
    # a given, b the default (total 1): a must total 1 too
    with pytest.raises(ParameterError, match=r"sum\(a\) = 2 and sum\(b\) = 1"):
        sinkhorn(cost, a=2 * a, backend="torch")
    # totals are compared after masking: masking a row of a moves its mass out of the total
    rm = torch.ones(3, 6, dtype=torch.bool)
    rm[0, 0] = False
    with pytest.raises(ParameterError, match=r"problem 0 has sum\(a\) = 0\.83"):
        sinkhorn(cost, a=a, b=torch.full((3, 5), 1 / 5), row_mask=rm, backend="torch")
    # every problem that differs is counted
    with pytest.raises(ParameterError, match=r"3 of 3 problems differ"):
        sinkhorn(cost, a=a, b=torch.full((3, 5), 0.5), backend="torch")
    # within the relative 1e-4: accepted, and the plan has both marginals
    b_ok = torch.full((3, 5), 1 / 5) * (1 + 5e-5)
    plan = sinkhorn(cost.double(), a=a.double(), b=b_ok.double(), max_iter=5000, tol=1e-10, backend="torch")
    torch.testing.assert_close(plan.sum(2), a.double(), atol=1e-4, rtol=0)
    # equal non-unit totals are fine (scaled marginals give the scaled plan)
    p1 = sinkhorn(cost.double(), max_iter=5000, tol=1e-12, backend="torch")
    p3 = sinkhorn(cost.double(), a=3 * a.double(), b=torch.full((3, 5), 0.6, dtype=torch.float64),
                  max_iter=5000, tol=1e-12, backend="torch")
    torch.testing.assert_close(p3, 3 * p1, atol=1e-9, rtol=1e-6)


def test_sinkhorn_rejects_bad_marginals_and_eps() -> None:
    cost = torch.rand(1, 3, 2)
    a, b = torch.full((1, 3), 1 / 3), torch.full((1, 2), 0.5)
    bad_a = a.clone()
    bad_a[0, 0] = -0.1
    for kw in ({"a": bad_a}, {"b": torch.tensor([[float("nan"), 1.0]])},
               {"a": torch.tensor([[float("inf"), 0.0, 0.0]])}):
        with pytest.raises(ParameterError, match="finite and non-negative"):
            sinkhorn(cost, **{"a": a, "b": b, **kw}, backend="torch")
    for eps in (-0.1, 0.0, float("nan"), float("inf"), float("-inf"), "0.1", True, None):
        with pytest.raises(ParameterError, match="'eps' parameter of sinkhorn must be a float > 0"):
            sinkhorn(cost, eps=eps, backend="torch")  # type: ignore[arg-type]
    # numpy scalars are accepted as floats
    torch.testing.assert_close(sinkhorn(cost, eps=np.float32(0.5), backend="torch"),  # type: ignore[arg-type]
                               sinkhorn(cost, eps=0.5, backend="torch"))


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--interp-worker":
    _interp_worker(sys.argv[2])
