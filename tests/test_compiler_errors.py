"""Errors the compiler reports: archs outside the space (named by path, from ``space.validate``),
inputs of the wrong shape (a ValueError naming the expected (C, H, W)), kinds and fields not
compiled yet and supernets larger than memory (CompileError)."""
from __future__ import annotations

import pytest
import torch

import spacelang as sl
from spacelang.compiler import build_supernet
from spacelang.compiler.supernet import check_fits_memory
from spacelang.errors import CompileError

SMALL = """
space small
input image 32 channels 3
classes 10
stem patch_embed { patch 8 }
stage encoder {
  dim 16..32 step 8
  depth 1..2
  block transformer { heads 1..2  head_dim 8  mlp_ratio {2, 4} }
}
head linear { pool cls }
"""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def net():
    return build_supernet(sl.loads(SMALL)).eval()


@pytest.mark.parametrize("change, path", [
    ({"encoder.dim": 20}, "encoder.dim"),           # not a choice
    ({"encoder.0.heads": 7}, "encoder.0.heads"),
    ({"encoder.bogus": 1}, "encoder.bogus"),        # no such dimension
])
def test_bad_arch_names_the_path(net, change, path):
    arch = {**net.space.max_arch(), **change}
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(sl.ArchError, match=path.replace(".", r"\.")):
        net(x, arch)
    with pytest.raises(sl.ArchError, match=path.replace(".", r"\.")):
        net.extract(arch)


def test_missing_and_inactive_paths(net):
    arch = dict(net.space.max_arch())
    del arch["encoder.dim"]
    with pytest.raises(sl.ArchError, match=r"encoder\.dim"):
        net(torch.randn(1, 3, 32, 32), arch)
    arch = {**net.space.max_arch(), "encoder.depth": 1}  # encoder.1.* is now inactive
    with pytest.raises(sl.ArchError, match=r"encoder\.1\."):
        net(torch.randn(1, 3, 32, 32), arch)


@pytest.mark.parametrize("shape", [(1, 3, 28, 28), (1, 1, 32, 32), (3, 32, 32), (1, 3, 32, 32, 1)])
def test_bad_input_shape(net, shape):
    arch = net.space.max_arch()
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        net(torch.randn(*shape), arch)
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        net.extract(arch)(torch.randn(*shape))


def test_not_a_tensor(net):
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        net([[1.0]], net.space.max_arch())


def test_maps_and_tokens_are_not_mixed():
    space = sl.loads("""
space convs
input image 32 channels 3
classes 10
stem conv { kernel 3  stride 2 }
stage s1 {
  dim 8
  block mbconv { kernel 3  expand 2 }
}
head linear { pool avg }
""")
    # conv and mbconv compile now (NASViT); a linear head after them mixes feature maps and tokens
    with pytest.raises(CompileError, match="carries feature maps but head \\(linear\\) carries tokens"):
        build_supernet(space)


ABSURD = SMALL.replace("heads 1..2  head_dim 8", "heads 999999999999999")


def test_supernet_beyond_memory_is_refused_before_allocating():
    with pytest.raises(CompileError, match=r"encoder\.0 \(transformer\).*heads 999,999,999,999,999"):
        build_supernet(sl.loads(ABSURD))


def test_memory_guard_compares_with_the_given_memory():
    spec = sl.loads(SMALL).supernet_spec()
    check_fits_memory(spec, memory=10**9)
    with pytest.raises(CompileError, match=r"more than this machine's 0\.0 GiB.*encoder\.\d \(transformer\)"):
        check_fits_memory(spec, memory=1000)
