"""Fused kernels behind vidsieve's token selectors, one folder per op.

* :mod:`vidsieve.kernels.token_scores`: ``ktv_token_scores``, ``ktv_redundancy`` (KTV).
* :mod:`vidsieve.kernels.attention_received`: ``attention_received``, ``cls_attention``.
* :mod:`vidsieve.kernels.sinkhorn`: ``sinkhorn``, ``sinkhorn_result`` (AOT).

Each folder holds ``reference.py`` (plain PyTorch: the test oracle and the CPU fallback) and
``triton_kernel.py`` (imported only when the Triton backend is chosen). Backend choice,
``backend="auto"|"triton"|"torch"`` and ``VIDSIEVE_KERNEL_BACKEND``: :mod:`._dispatch`.
"""
