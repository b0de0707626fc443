"""The deployable formats of an exported subnet, each written and then checked against the supernet.

Every writer takes the extracted subnet, the parity batch ``x``, the supernet's output ``ref`` on it
and the (temporary) export folder; it writes its files there, runs them back — the way a user
would load them — on ``x``, and returns ``{"files": [...], "max_abs_diff": d, ...}``.  A difference
above :data:`TOLERANCE` is a :class:`~spacelang.errors.CompileError`; the exporter then removes the
folder, so a format that does not match the supernet is never published.

- ``safetensors``: ``model.safetensors`` (the subnet's ``state_dict``), reloaded into a fresh extract;
- ``pytorch``: ``model.py`` (:mod:`.export_pytorch`), imported and built from the folder;
- ``onnx``: ``model.onnx`` by ``torch.onnx.export`` (the TorchScript exporter, ``dynamo=False``,
  opset :data:`ONNX_OPSET`, batch dimension dynamic), run in onnxruntime on the CPU;
- ``pt2``: ``model.pt2`` by ``torch.export.export`` (batch dimension dynamic where the program
  allows it) and ``torch.export.save``, reloaded with ``torch.export.load``.
"""
from __future__ import annotations

import importlib.util
import io
import os
import warnings
from typing import Callable

import torch

from spacelang.errors import CompileError
from spacelang.util.atomic import write_bytes, write_text

FORMATS = ("safetensors", "pytorch", "onnx", "pt2")
#: largest |format(x) - supernet(x, arch)| accepted, per format
TOLERANCE = {"safetensors": 1e-5, "pytorch": 1e-5, "pt2": 1e-5, "onnx": 1e-4}
ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "logits"


def max_abs_diff(a, b) -> float:
    """``max |a - b|`` of two arrays or tensors of one shape (inf when the shapes differ)."""
    a, b = torch.as_tensor(a).float(), torch.as_tensor(b).float()
    if a.shape != b.shape:
        return float("inf")
    return float((a - b).abs().max()) if a.numel() else 0.0


def check(fmt: str, diff: float) -> float:
    """``diff`` when within :data:`TOLERANCE` of ``fmt``; a :class:`CompileError` otherwise."""
    if not diff <= TOLERANCE[fmt]:  # also catches NaN
        raise CompileError(f"{fmt} export differs from the supernet by {diff:.3g} (tolerance {TOLERANCE[fmt]:g}); "
                           "nothing was written",
                           hint="this is a bug of the exporter for this kind of layer: please report it")
    return diff


def write_safetensors(sub, x, ref, folder: str, rebuild: Callable[[], torch.nn.Module], **_) -> dict:
    """``model.safetensors``; checked by loading the bytes into ``rebuild()`` (a fresh extract)."""
    from safetensors.torch import load as from_bytes, save as to_bytes
    data = to_bytes({k: v.detach().contiguous().cpu() for k, v in sub.state_dict().items()}, metadata={"format": "pt"})
    fresh = rebuild()
    fresh.load_state_dict(from_bytes(data))
    with torch.no_grad():
        diff = check("safetensors", max_abs_diff(fresh.eval()(x), ref))
    write_bytes(os.path.join(folder, "model.safetensors"), data)
    return {"files": ["model.safetensors"], "max_abs_diff": diff}


def write_pytorch(sub, x, ref, folder: str, title: str = "", version: str = "", **_) -> dict:
    """``model.py`` next to ``model.safetensors`` (written by :func:`write_safetensors` first)."""
    from .export_pytorch import generate
    path = os.path.join(folder, "model.py")
    write_text(path, generate(sub, x, title=title, version=version))
    spec = importlib.util.spec_from_file_location(f"spacelang_export_{id(sub):x}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # our own generated source, never a user's file
    model = module.build(os.path.join(folder, "model.safetensors"))
    with torch.no_grad():
        diff = check("pytorch", max_abs_diff(model(x), ref))
    return {"files": ["model.py", "model.safetensors"], "max_abs_diff": diff, "entry": "model.build()"}


def write_onnx(sub, x, ref, folder: str, **_) -> dict:
    """``model.onnx`` (opset :data:`ONNX_OPSET`, TorchScript exporter), checked in onnxruntime."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise CompileError("the onnx format is checked in onnxruntime, which is not installed",
                           hint="pip install onnx onnxruntime (or spacelang[onnx])") from None
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(sub, (x,), buf, dynamo=False, opset_version=ONNX_OPSET, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
        except (RuntimeError, torch.onnx.errors.OnnxExporterError) as e:  # an op without an ONNX form
            raise CompileError(f"onnx export failed: {str(e).splitlines()[0][:300]}") from None
    data = buf.getvalue()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    out = session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().cpu().numpy()})[0]
    diff = check("onnx", max_abs_diff(out, ref))
    write_bytes(os.path.join(folder, "model.onnx"), data)
    import onnx
    return {"files": ["model.onnx"], "max_abs_diff": diff, "opset": ONNX_OPSET, "exporter": "torch.onnx.export(dynamo=False)",
            "input": INPUT_NAME, "output": OUTPUT_NAME, "checked_in": f"onnxruntime {ort.__version__} (CPU)",
            "onnx_version": onnx.__version__}


def write_pt2(sub, x, ref, folder: str, **_) -> dict:
    """``model.pt2``: ``torch.export`` program (dynamic batch where possible), reloaded and run."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        program, dynamic = torch.export.export(sub, (x,), dynamic_shapes=({0: batch},)), True
    except Exception:  # torch.export raises many types; a fixed batch still deploys
        dynamic = False
        try:
            program = torch.export.export(sub, (x,))
        except Exception as e:  # any failure of torch.export, said in one line
            raise CompileError(f"pt2 export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}") from None
    buf = io.BytesIO()
    torch.export.save(program, buf)
    data = buf.getvalue()
    loaded = torch.export.load(io.BytesIO(data)).module()
    with torch.no_grad():
        diff = check("pt2", max_abs_diff(loaded(x), ref))
    write_bytes(os.path.join(folder, "model.pt2"), data)
    return {"files": ["model.pt2"], "max_abs_diff": diff,
            "batch": "dynamic (1..4096)" if dynamic else f"fixed at {x.shape[0]}",
            "load": "torch.export.load('model.pt2').module()"}


WRITERS = {"safetensors": write_safetensors, "pytorch": write_pytorch, "onnx": write_onnx, "pt2": write_pt2}


__all__ = ["FORMATS", "TOLERANCE", "ONNX_OPSET", "WRITERS", "max_abs_diff", "check"]
