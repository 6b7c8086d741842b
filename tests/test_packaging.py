"""The fixed layout maps src/, kernels/, adapters/ and eval/ onto one import package."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"vidsieve": "src/vidsieve", "vidsieve.kernels": "kernels", "vidsieve.adapters": "adapters", "vidsieve.eval": "eval"}


def _packages_on_disk() -> set[str]:
    found = set()
    for pkg, root in ROOTS.items():
        for init in (REPO / root).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / root)
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    return found


def test_every_subpackage_is_listed_in_pyproject():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    assert listed == _packages_on_disk()


def test_editable_install_imports_all_four():
    import vidsieve.adapters
    import vidsieve.eval
    import vidsieve.kernels

    import vidsieve

    assert Path(vidsieve.kernels.__file__).parent == REPO / "kernels"
    assert Path(vidsieve.adapters.__file__).parent == REPO / "adapters"
    assert Path(vidsieve.eval.__file__).parent == REPO / "eval"
    assert Path(vidsieve.__file__).parent == REPO / "src" / "vidsieve"


@pytest.mark.slow
def test_regular_install_into_fresh_venv_imports_all_four(tmp_path):
    """A non-editable ``pip install .`` into a fresh venv imports the four parts from there.

    The fresh venv gets vidsieve's third-party dependencies by a ``.pth`` line pointing at this
    environment's site-packages (plain path entries do not run the editable-install hook, so
    ``vidsieve`` itself can only come from the fresh install).
    """
    import site
    import sysconfig

    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    fresh_site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    deps = [p for p in site.getsitepackages() if "site-packages" in p] or [sysconfig.get_paths()["purelib"]]
    (fresh_site / "_deps.pth").write_text("\n".join(deps) + "\n")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", "--prefix", str(venv), str(REPO)],
        capture_output=True, text=True, env={**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    code = (
        "import vidsieve, vidsieve.kernels, vidsieve.adapters, vidsieve.eval, vidsieve.cli;"
        "import vidsieve.kernels.sinkhorn, vidsieve.eval.bench;"
        "print(vidsieve.__file__); print(vidsieve.kernels.__file__); print(vidsieve.eval.__file__);"
        "print(len(vidsieve.list_selectors()))"
    )
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split()
    for line in lines[:3]:
        assert line.startswith(str(fresh_site)), line
    assert int(lines[3]) >= 3
    assert (venv / "bin" / "vidsieve").exists()
    # installing into the fresh venv must leave this environment's install alone
    # (this process's vidsieve still comes from the repo, and a new interpreter finds it there)
    check = subprocess.run([sys.executable, "-c", "import vidsieve; print(vidsieve.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.strip().startswith(str(REPO / "src" / "vidsieve")), check.stdout


def test_git_commit_marks_a_dirty_checkout(tmp_path) -> None:
    """Benchmark CSVs name the commit they ran from; uncommitted changes must show."""
    import subprocess

    from vidsieve.versions import git_commit

    def git(*a: str) -> None:
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    clean = git_commit(tmp_path)
    assert clean != "unknown" and not clean.endswith("+dirty")
    (tmp_path / "new.txt").write_text("untracked files do not count")
    assert git_commit(tmp_path) == clean
    (tmp_path / "f.txt").write_text("b")
    assert git_commit(tmp_path) == clean + "+dirty"
