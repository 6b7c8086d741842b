"""PEEK's student frame ranker in plain torch (PEEK, arXiv 2605.31029).

Architecture (as the paper describes it; written from that description, no code copied)::

    frozen frame features [B, T, D]
      -> LayerNorm(D) -> Linear(D, 256)
      -> + sinusoidal positions (frame order 0..T-1 inside the segment)
      -> 2 pre-norm Transformer encoder layers (d 256, 4 heads, FFN 1024, GELU, dropout 0.15)
      -> LayerNorm(256) -> Linear(256, 1)                        logits [B, T]

~1.71M trainable parameters at D = 512 (the paper's MobileCLIP2-S0 width). The closing
LayerNorm is the usual one of a pre-norm stack; the paper does not mention it (512
parameters). Activation: GELU (the paper does not say).

Checkpoints are a directory holding ``model.safetensors`` and ``config.json`` (model dims,
input dim, the encoder whose features the student reads, and whether it was trained).
vidsieve never ships trained weights: make a checkpoint with ``vidsieve distill``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ParameterError
from .params import Constraint, Float, Int, Predicate, Str, param_error, validate_fields

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "vidsieve-peek-student/1"


_STUDENT_CONSTRAINTS: dict[str, list[Constraint]] = {
    **{name: [Int(ge=1)] for name in ("input_dim", "d_model", "heads", "layers", "ffn")},
    "dropout": [Float(ge=0, lt=1)],
    "encoder": [Str()],
    "trained": [Predicate(lambda v: isinstance(v, bool), "a bool")],
    "info": [Predicate(lambda v: isinstance(v, dict), "a dict")],
}


@dataclass(frozen=True)
class StudentConfig:
    """Dimensions of a :class:`PeekStudent` plus provenance.

    input_dim: width D of the frozen frame features the student reads.
    encoder:   name/parameters of the encoder that produced those features (checked, loosely,
               against ``FrameFeatures.encoder`` at selection time).
    trained:   False for a seed-initialised student (no distillation).
    info:      free-form training record (teacher, epochs, data).
    """

    input_dim: int = 512
    d_model: int = 256
    heads: int = 4
    layers: int = 2
    ffn: int = 1024
    dropout: float = 0.15
    encoder: str = "unknown"
    trained: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_fields(self, _STUDENT_CONSTRAINTS)
        if self.d_model % self.heads:
            raise param_error("StudentConfig", "d_model", f"divisible by heads={self.heads}", self.d_model)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudentConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def sinusoidal_positions(n: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """Transformer sine/cosine position table: float32 ``[n, dim]`` (dim even)."""
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim)
    )
    table = torch.zeros(n, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class PeekStudent(nn.Module):
    """The student ranker. ``forward(x [B, T, D], pad_mask [B, T] | None) -> logits [B, T]``.

    ``pad_mask`` is True at padding positions (their logits are meaningless).
    """

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.norm_in = nn.LayerNorm(c.input_dim)
        self.proj = nn.Linear(c.input_dim, c.d_model)
        layer = nn.TransformerEncoderLayer(
            d_model=c.d_model, nhead=c.heads, dim_feedforward=c.ffn, dropout=c.dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers=c.layers, norm=nn.LayerNorm(c.d_model), enable_nested_tensor=False
        )
        self.head = nn.Linear(c.d_model, 1)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.config.input_dim:
            raise ParameterError(
                f"PeekStudent expects features [B, T, {self.config.input_dim}]; got {tuple(x.shape)}."
            )
        h = self.proj(self.norm_in(x))
        h = h + sinusoidal_positions(x.shape[1], self.config.d_model, x.device)[None]
        h = self.encoder(h, src_key_padding_mask=pad_mask)
        return self.head(h).squeeze(-1)


def num_parameters(model: nn.Module) -> int:
    """Trainable parameter count."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def init_student(config: StudentConfig, seed: int = 0) -> PeekStudent:
    """A student with weights drawn deterministically from ``seed`` (torch's default inits under
    a private generator state; the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PeekStudent(config)
    return model.eval()


def save_student(model: PeekStudent, directory: str | Path, config: StudentConfig | None = None) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory`` (created)."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = config or model.config
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(d / WEIGHTS_FILE), metadata={"format": FORMAT})
    (d / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    return d


def load_student(directory: str | Path, device: str | torch.device = "cpu") -> PeekStudent:
    """Load a student saved by :func:`save_student` (eval mode)."""
    from safetensors.torch import load_file

    d = Path(directory)
    if not (d / WEIGHTS_FILE).is_file() or not (d / CONFIG_FILE).is_file():
        raise ParameterError(
            f"{d} is not a PEEK student checkpoint (needs {WEIGHTS_FILE} and {CONFIG_FILE}); "
            "make one with `vidsieve distill`."
        )
    try:
        raw = json.loads((d / CONFIG_FILE).read_text())
    except json.JSONDecodeError as e:
        raise ParameterError(f"{d / CONFIG_FILE} is not valid JSON: {e}") from None
    if raw.get("format") != FORMAT:
        raise ParameterError(f"{d / CONFIG_FILE} has format {raw.get('format')!r}; expected {FORMAT!r}.")
    cfg = StudentConfig.from_dict(raw)
    model = PeekStudent(cfg)
    state = load_file(str(d / WEIGHTS_FILE), device=str(device))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ParameterError(f"{d / WEIGHTS_FILE} does not match its config: missing {missing}, unexpected {unexpected}.")
    return model.to(device).eval()
