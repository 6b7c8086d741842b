"""`vidsieve bench decode-paths` runs end to end on a tiny video and reports same-run ratios."""

import csv

from vidsieve.eval.bench.decode_paths import main


def test_decode_paths_tiny(tmp_path, capsys):
    rc = main(["--minutes", "0.05", "--size", "48x64", "--fps", "10", "--frames", "4",
               "--paths", "pipeline,compare", "--processes", "1", "--out", str(tmp_path)])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "decode_paths.csv").open()))
    assert [r["path"] for r in rows] == ["decord-baseline", "pipeline", "compare"]
    for r in rows:
        assert not r.get("error"), r
        assert int(r["frames"]) >= 3 and float(r["seconds"]) > 0
        assert r["machine"] and r["versions"]
    assert float(rows[0]["time_x_baseline"]) == 1.0
    # the working-memory ratio exists where the baseline needed memory beyond its imports
    assert rows[0]["work_rss_x_baseline"] in ("", "1.0")
    assert all(float(r["work_rss_min_mb"]) <= float(r["work_rss_mb"]) <= float(r["work_rss_max_mb"]) for r in rows)
    assert "x, working" in capsys.readouterr().out
