"""``--device``: the name's form is checked by the language core; whether this machine has the
accelerator is checked here, where torch is (commands that take ``--device`` run networks)."""
from __future__ import annotations

import argparse

from spacelang.commands.options import device_name


def device(text: str) -> str:
    """argparse type: ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` — and, for an accelerator, one this
    machine has (one line naming the option otherwise)."""
    text = device_name(text)
    if text == "cpu":
        return text
    import torch  # at parse time only for an accelerator: `--help` and cpu runs stay light
    if text == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError("mps is not available on this machine")
        return text
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: no CUDA device is available on this machine (use cpu)")
    index = int(text.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return text


__all__ = ["device"]
