import json
import subprocess
import sys

import pytest

import vidsieve
from vidsieve.cli import main

from .conftest import EXAMPLE_VIDEO


def test_compare_on_bundled_video(tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["compare", str(EXAMPLE_VIDEO), "--frames", "6", "--fps", "5", "--out", str(out), "--quiet"])
    assert rc == 0
    html = (out / "report.html").read_text()
    data = json.loads((out / "selections.json").read_text())
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    names = vidsieve.list_selectors()
    for n in names:
        assert n in html, n
        assert n in data["selections"] or n in data["errors"], n
    assert not data["errors"], data["errors"]
    sel = data["selections"]["uniform"]
    assert len(sel["indices"]) == 6 and sel["timestamps"][0] == 0.0
    assert data["video"]["codec"] == "h264" and data["video"]["num_frames"] == 132
    assert {"decode", "encode", "select_all", "decode_selected"} <= set(data["stage_times"])
    assert "versions" in data["environment"]
    printed = capsys.readouterr().out
    assert "wrote" in printed and "uniform" in printed


def test_compare_with_image_query_and_token_heatmaps(tmp_path, scene_video):
    from PIL import Image

    from vidsieve.synth import render_frame

    q = tmp_path / "needle.png"
    Image.fromarray(render_frame(scene_video.scenes[1].look, 3, (96, 128))).save(q)
    out = tmp_path / "r"
    rc = main(["compare", str(scene_video.path), "--query-image", str(q), "--frames", "4", "--tokens", "400",
               "--token-selectors", "*", "--out", str(out), "--quiet", "--selectors", "uniform*"])
    assert rc == 0
    data = json.loads((out / "selections.json").read_text())
    assert data["query"]["embedded"] is True
    assert set(data["selections"]) == set(vidsieve.list_selectors("uniform*"))
    assert set(data["token_selections"]) | {k.split(":", 1)[1] for k in data["errors"]} == set(vidsieve.list_token_selectors())
    assert "tokens: none" in (out / "report.html").read_text()


def test_info_and_list(capsys):
    assert main(["info", str(EXAMPLE_VIDEO)]) == 0
    out = capsys.readouterr().out
    assert "1280x720" in out and "h264" in out and "132" in out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for n in vidsieve.list_selectors() + vidsieve.list_encoders():
        assert n in out


@pytest.mark.parametrize(
    "args,msg",
    [
        (["info", "missing.mp4"], "Video not found"),
        (["compare", "missing.mp4"], "Video not found"),
        (["compare", str(EXAMPLE_VIDEO), "--frames", "0"], "'frames' parameter of Budget"),
        (["compare", str(EXAMPLE_VIDEO), "--selectors", "zzz"], "No registered selector matches"),
        (["compare", str(EXAMPLE_VIDEO), "--query-image", "nope.png"], "Query image not found"),
    ],
)
def test_user_errors_are_one_line(args, msg, capsys, tmp_path):
    rc = main(args + (["--out", str(tmp_path)] if args[0] == "compare" else []))
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and "Traceback" not in err


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "vidsieve", "list", "uniform"], capture_output=True, text=True)
    assert r.returncode == 0 and "uniform" in r.stdout


def test_bench_scripts_receive_their_options(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "kmeans", "--help"])
    assert e.value.code == 0 and "--out" in capsys.readouterr().out


def test_unknown_option_is_rejected_for_normal_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["info", str(EXAMPLE_VIDEO), "--bogus"])
    assert e.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_unwritable_output_is_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    rc = main(["compare", str(EXAMPLE_VIDEO), "--out", str(afile), "--quiet", "--selectors", "uniform"])
    err = capsys.readouterr().err
    assert rc == 2 and "vidsieve: error:" in err and "Traceback" not in err
