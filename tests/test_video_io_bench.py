"""The candidate-extraction benchmark runs end to end (tiny clip joined to 2 minutes, one repeat)."""

import csv
import json

from vidsieve.eval.bench import candidates


def test_candidates_benchmark_smoke(tmp_path):
    rc = candidates.main(["--out", str(tmp_path), "--minutes", "2", "--sizes", "120p", "--methods", "keyframes",
                          "--repeats", "1", "--selectors", "uniform", "--budget", "8"])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "candidates.csv").open()))
    assert [r["method"] for r in rows] == ["current", "keyframes"]
    cur, key = rows
    assert int(cur["video_frames"]) == 1200 and int(cur["candidates"]) == 120  # 2 minutes at 1 fps
    assert 0 < int(key["candidates"]) <= 120 and float(cur["seconds"]) > 0 and float(cur["peak_rss_mb"]) > 0
    assert set(json.loads(key["picks_within_tol"])) == {"uniform"}
    assert cur["machine"] and (tmp_path / "candidates.md").read_text().count("\n") == 4
