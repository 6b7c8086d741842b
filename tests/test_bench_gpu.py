"""`vidsieve bench gpu --tiny`: the GPU check's own code runs on the CPU, section by section.

The tiny run uses the same functions as the GPU run (kernel cases, model builders from the
7B configurations' structure, the wrapped TTFT measurement, report writers); only the sizes,
the torch.compile backend and the timing calls differ.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from vidsieve.eval.bench import gpu

from vidsieve.errors import ParameterError

pytest.importorskip("transformers")

TINY = ["--tiny", "--shape-sets", "llava-ov", "--keep", "1.0", "0.25", "--repeats", "1"]


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "gpu.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("gpu-tiny")
    rc = gpu.main([*TINY, "--out", str(out)])
    return rc, out


def test_tiny_run_measures_every_section(tiny_run: tuple[int, Path]) -> None:
    rc, out = tiny_run
    rows = _rows(out)
    assert rc == 0, [r for r in rows if r["status"] == "failed"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["section"] for r in ok} == {"bandwidth", "kernels", "ttft"}
    bw = next(r for r in ok if r["section"] == "bandwidth")
    assert float(bw["gbs"]) > 0
    kern = [r for r in ok if r["section"] == "kernels"]
    # every op of the op table in each of its dtypes, eager and compiled, compared with eager
    from vidsieve.kernels._ops import OPS

    got = {(r["op"], r["dtype"], r["backend"].split("(")[0]) for r in kern}
    for o in OPS:
        for dt in {"bfloat16", "float32"} & {str(d).replace("torch.", "") for d in o.dtypes}:
            assert {(o.name, dt, "eager reference"), (o.name, dt, "torch.compile")} <= got, (o.name, dt)
    for r in kern:
        assert float(r["median_ms"]) > 0 and float(r["p20_ms"]) <= float(r["p80_ms"])
        assert float(r["pct_of_copy_bw"]) >= 0 and float(r["gbs"]) > 0
        assert float(r["max_abs_err_vs_eager"]) <= 1e-3
    triton = [r for r in rows if r.get("backend") == "triton"]
    assert triton and all(r["status"] in ("skipped", "ok") for r in triton)
    ttft = [r for r in ok if r["section"] == "ttft"]
    assert {r["model"] for r in ttft} == {"qwen2.5-vl-7b (tiny)", "llava-onevision-7b (tiny)"}
    for r in ttft:
        assert float(r["time_to_first_token_s"]) > 0
        assert 0 <= float(r["selection_share_of_ttft"]) <= 1
        assert int(r["tokens_fed"]) <= int(r["tokens_native"])
    quarter = [r for r in ttft if float(r["keep"]) == 0.25]
    assert all(int(r["tokens_fed"]) < int(r["tokens_native"]) for r in quarter)
    # machine, versions and commit on every row
    assert all(r["machine"] and r["versions"] and r["commit"] for r in rows)


def test_tiny_run_writes_markdown_and_png(tiny_run: tuple[int, Path]) -> None:
    _, out = tiny_run
    md = (out / "gpu.md").read_text()
    assert "| op | shapes |" in md and "| model | kept |" in md and "Copy bandwidth" in md
    assert (out / "gpu.png").stat().st_size > 1000
    assert (out / "meta.json").exists()


def test_a_failing_section_is_recorded_and_the_rest_still_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(tiny: bool) -> None:
        raise RuntimeError("out of memory building the model")

    monkeypatch.setitem(gpu.MODELS, "qwen2.5-vl-7b", broken)
    # bfloat16 weights, as on a GPU: the dtype path is exercised here too
    rc = gpu.main([*TINY, "--out", str(tmp_path), "--models", "qwen2.5-vl-7b", "llava-onevision-7b",
                   "--keep", "1.0", "--sections", "bandwidth", "ttft", "--model-dtype", "bf16"])
    rows = _rows(tmp_path)
    assert rc == 1
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "out of memory" in failed[0]["note"] and failed[0]["model"].startswith("qwen")
    assert any(r["status"] == "ok" and r["model"].startswith("llava") for r in rows)
    assert "Not measured" in (tmp_path / "gpu.md").read_text()


def test_time_budget_skips_instead_of_overrunning(tmp_path: Path) -> None:
    rc = gpu.main(["--tiny", "--out", str(tmp_path), "--time-budget-s", "0", "--sections", "kernels", "ttft"])
    rows = _rows(tmp_path)
    assert rc == 0
    assert rows and all(r["status"] == "skipped" for r in rows)
    assert all("time budget" in r["note"] for r in rows if r["backend"] != "triton")


def test_full_run_without_cuda_is_a_clear_error(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ParameterError, match="--tiny"):
        gpu.main(["--out", str(tmp_path)])


def test_triton_rows_run_under_the_interpreter(tmp_path: Path) -> None:
    """The Triton backend's calls in the benchmark, executed by Triton's CPU interpreter."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    env.pop("VIDSIEVE_KERNEL_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-m", "vidsieve.eval.bench.gpu", "--tiny", "--out", str(tmp_path), "--sections", "kernels",
         "--shape-sets", "qwen2.5-vl", "--repeats", "1", "--compile-backend", "eager"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    triton = [r for r in _rows(tmp_path) if r["backend"] == "triton"]
    assert triton and all(r["status"] == "ok" for r in triton), triton
    assert all(float(r["max_abs_err_vs_eager"]) <= 1e-3 for r in triton)


@pytest.mark.parametrize(("name", "billions"), [("qwen2.5-vl-7b", (8.0, 8.6)), ("llava-onevision-7b", (7.8, 8.3))])
def test_7b_configurations_build(name: str, billions: tuple[float, float]) -> None:
    """The full-size models the GPU run builds, on the meta device (structure, no memory)."""
    model, proc, side = gpu.MODELS[name](False, device="meta")
    n = sum(p.numel() for p in model.parameters()) / 1e9
    assert billions[0] <= n <= billions[1], n
    assert next(model.parameters()).dtype == torch.float32  # "auto" off CUDA
    text = model.config.get_text_config()
    assert (text.hidden_size, text.num_hidden_layers) == (3584, 28)
    assert side in (384, 448) and proc.tokenizer is not None
