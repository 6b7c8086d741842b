"""Versions and machine facts recorded with every result file."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def package_versions(names: tuple[str, ...] = ("vidsieve", "numpy", "torch", "decord", "transformers", "scikit-learn", "POT", "triton")) -> dict[str, str]:
    out: dict[str, str] = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "not installed"
    return out


def git_commit(path: str | Path | None = None) -> str:
    """The commit of the checkout vidsieve runs from (``+dirty`` when tracked files differ
    from it: a result then came from code no commit holds), or "unknown"."""
    here = Path(path) if path else Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        commit = r.stdout.strip()
        if not commit:
            return "unknown"
        d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, timeout=10)
        return commit + ("+dirty" if d.returncode == 0 and d.stdout.strip() else "")
    except Exception:
        return "unknown"


def machine() -> dict[str, str]:
    info = {"python": platform.python_version(), "platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        info["torch_threads"] = str(torch.get_num_threads())
    except Exception:
        info["cuda"] = "unknown"
    return info


def environment() -> dict[str, object]:
    return {"versions": package_versions(), "machine": machine(), "commit": git_commit()}
