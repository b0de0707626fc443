"""Weight entanglement without copies: every subnet runs views of the supernet's largest weights,
and its gradients land in the leading block of the shared tensors."""
from __future__ import annotations

import random

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import spacelang as sl
from spacelang.compiler import build_supernet
from spacelang.compiler.ops.elastic import lead

SPACE = """
space views
input image 32 channels 3
classes 10
stem patch_embed { patch 8 }
stage encoder {
  dim 16..32 step 8
  depth 1..2
  block transformer { heads 1..2  head_dim 8  mlp_ratio {2, 4}  rel_pos true  rel_dist 2 }
}
head linear { pool cls }
"""

COPIES = {"clone", "copy_", "_to_copy", "index_select"}
CONSUMERS = {"mm", "addmm", "bmm", "convolution", "native_layer_norm"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Recorder(TorchDispatchMode):
    """Records which ops receive a tensor whose storage is a supernet parameter's."""

    def __init__(self, storages):
        super().__init__()
        self.storages = storages
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        for t in tree_leaves((args, kwargs or {})):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() in self.storages:
                self.ops.append(name)
        return func(*args, **(kwargs or {}))


def test_lead_is_a_view():
    w = torch.randn(12, 8)
    v = lead(w, 6, 4)
    assert v._base is w and v.untyped_storage().data_ptr() == w.untyped_storage().data_ptr()
    assert lead(w, 12, 8) is w  # a full "slice" is the tensor itself


def test_forward_uses_parameter_storage_without_copies():
    space = sl.loads(SPACE)
    net = build_supernet(space)
    storages = {p.untyped_storage().data_ptr() for p in net.parameters()}
    arch = space.min_arch()  # every width sliced
    x = torch.randn(2, 3, 32, 32)
    net(x, arch)  # resolve once outside the recorder
    rec = _Recorder(storages)
    with rec:
        net(x, arch)
    assert not COPIES & set(rec.ops), f"parameters were copied: {sorted(COPIES & set(rec.ops))}"
    # the matmuls, the patch conv and the norms read the parameters' own storage
    assert {"addmm", "convolution", "native_layer_norm"} <= set(rec.ops)


def test_gradients_land_in_the_leading_block():
    space = sl.loads(SPACE)
    net = build_supernet(space)
    arch = space.min_arch()  # dim 16, one block, 1 head of 8, mlp ratio 2
    net(torch.randn(2, 3, 32, 32), arch).sum().backward()
    qkv = net.stages[0].blocks[0].attn.qkv
    assert qkv.weight.shape == (3 * 16, 32)  # (q | k | v) × largest qkv_dim 16, largest dim 32
    g = qkv.weight.grad.view(3, 16, 32)
    assert (g[:, :8, :16].abs().sum(dim=(1, 2)) > 0).all()  # q, k and v each use their leading block
    assert g[:, 8:].abs().sum() == 0 and g[:, :, 16:].abs().sum() == 0
    fc1 = net.stages[0].blocks[0].mlp.fc1
    assert fc1.weight.grad[32:].abs().sum() == 0 and fc1.weight.grad[:32, :16].abs().sum() > 0
    # the second slot is beyond depth 1: untouched
    assert net.stages[0].blocks[1].attn.qkv.weight.grad is None


def test_resolution_is_cached_per_arch():
    space = sl.loads(SPACE)
    net = build_supernet(space)
    arch = space.sample(random.Random(0))
    assert net.resolve(arch) is net.resolve(dict(arch))
