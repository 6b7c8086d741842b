#!/usr/bin/env bash
# GPU check of vidsieve inside vLLM: a random-weight Qwen2.5-VL-7B-shaped model, throughput and
# time to first token at 100/50/25% of the video tokens kept, upstream EVS vs vidsieve selectors.
#
# Needs a CUDA machine with vLLM (GPU build) and transformers + torchvision in the Python given
# by $PYTHON (default: python3); nothing is downloaded. vidsieve is imported from this checkout.
# Usage: bash examples/vllm_gpu_check.sh [OUT_DIR]    (env: SELECTORS, RATES, FRAMES, SIDE, BATCH)
# Takes ~1 min per configuration (7 by default) on an H100/H200 in eager mode (estimate: not run on a
# GPU yet). CPU smoke test of the harness (tiny model, timings meaningless), in .venv-vllm:
#   VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python examples/vllm_gpu_bench.py --tiny --frames 8 --side 112 \
#     --batch 2 --max-tokens 4 --ttft-requests 3 --gpu-memory-utilization 0.1 --dtype float32 --max-model-len 4096
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${1:-${OUT:-runs/vllm-gpu}}
mkdir -p "$OUT"
# vidsieve comes from this checkout (installed or not; the bench script imports it from here)
"$PY" - <<'EOF'
import sys; sys.path.insert(0, "examples")
import torch, vllm, transformers
from vllm_gpu_bench import import_vidsieve; import_vidsieve()
assert torch.cuda.is_available(), "no CUDA device"
print("gpu", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| vllm", vllm.__version__,
      "| transformers", transformers.__version__)
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>/dev/null || true
"$PY" examples/vllm_gpu_bench.py --out "$OUT/vllm_gpu.csv" \
  --selectors "${SELECTORS:-evs,ktv-tokens,resize}" --rates "${RATES:-0,0.5,0.75}" \
  --frames "${FRAMES:-32}" --side "${SIDE:-448}" --batch "${BATCH:-16}" 2>&1 | tee "$OUT/vllm_gpu.log"
