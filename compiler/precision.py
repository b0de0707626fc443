"""Mixed precision: ``--amp none|bf16|fp16`` as one autocast context and one gradient scaler.

bf16 needs no loss scaling (its exponent range is fp32's); fp16 does, through
``torch.amp.GradScaler``.  On CPU, autocast supports bf16 (fp16 autocast on CPU is refused with a
clear message).  Parameters and optimizer state stay fp32; checkpoints are unaffected.
"""
from __future__ import annotations

import contextlib

import torch

from spacelang.errors import OptionError

MODES = ("none", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def device_type(device) -> str:
    return torch.device(device).type


def check_mode(amp: str, device) -> None:
    """Refuse a mode the device cannot run (one line, :class:`OptionError`)."""
    if amp not in MODES:
        raise OptionError(f"--amp takes {', '.join(MODES)}, got {amp!r}")
    if amp == "fp16" and device_type(device) == "cpu":
        raise OptionError("--amp fp16 needs a GPU (CPU autocast runs bf16: use --amp bf16)")


def autocast(device, amp: str):
    """The autocast context of ``amp`` on ``device`` (a no-op context for ``none``)."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type(device), dtype=_DTYPES[amp])


def grad_scaler(device, amp: str) -> "torch.amp.GradScaler":
    """A gradient scaler, enabled for fp16 only (a pass-through otherwise)."""
    return torch.amp.GradScaler(device_type(device), enabled=amp == "fp16")


__all__ = ["MODES", "check_mode", "autocast", "grad_scaler"]
