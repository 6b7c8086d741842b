"""`vidsieve distill` on bad input: one clear line (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidsieve.cli import main as cli_main


def _feature_dir(tmp_path: Path, n: int = 2) -> Path:
    rng = np.random.default_rng(0)
    data = tmp_path / "feats"
    data.mkdir()
    for i in range(n):
        emb = rng.normal(size=(40, 6)).astype(np.float32)
        np.savez(data / f"v{i}.npz", embeddings=emb, timestamps=np.arange(40.0), scores=emb[:, 0] ** 2)
    return data


@pytest.mark.parametrize("fraction", ["0.9", "0.99"])
def test_val_fraction_leaving_no_training_segment(tmp_path: Path, capsys: pytest.CaptureFixture[str], fraction: str) -> None:
    rc = cli_main(["distill", "--synthetic", "3", "-o", str(tmp_path / "s"), "--epochs", "1", "--quiet",
                   "--val-fraction", fraction])
    err = capsys.readouterr().err
    assert rc == 2
    assert "--val-fraction" in err and "no training segment" in err and "3 segments" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_val_fraction_with_room_still_trains(tmp_path: Path) -> None:
    # 3 segments, 0.5 -> round(1.5) = 2 held out, 1 left to train on
    rc = cli_main(["distill", "--synthetic", "3", "-o", str(tmp_path / "s"), "--epochs", "1", "--quiet",
                   "--val-fraction", "0.5"])
    assert rc == 0 and (tmp_path / "s" / "model.safetensors").is_file()


def test_truncated_npz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _feature_dir(tmp_path)
    f = data / "v1.npz"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    rc = cli_main(["distill", str(data), "-o", str(tmp_path / "ck"), "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "v1.npz" in err and "truncated or corrupt" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_npz_without_embeddings_or_with_objects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d"
    data.mkdir()
    np.savez(data / "a.npz", feats=np.zeros((5, 2)))
    rc = cli_main(["distill", str(data / "a.npz"), "-o", str(tmp_path / "ck"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "a.npz" in err and "'embeddings'" in err
    np.savez(data / "b.npz", embeddings=np.array([{"x": 1}, None], dtype=object), scores=np.zeros(2))
    rc = cli_main(["distill", str(data / "b.npz"), "-o", str(tmp_path / "ck"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "b.npz" in err and "Traceback" not in err
    np.savez(data / "c.npz", embeddings=np.zeros((5, 2)), scores=np.zeros(3))
    rc = cli_main(["distill", str(data / "c.npz"), "-o", str(tmp_path / "ck"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "c.npz" in err and "do not match" in err
