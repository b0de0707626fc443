import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACES = os.path.join(ROOT, "spaces")
EXAMPLES = os.path.join(ROOT, "examples")

#: a space small enough to train in seconds on synthetic data (training, progress, export tests)
TINY = """\
space tiny
input image 8 channels 1
classes 4
stem patch_embed { patch 2 }
stage s1 {
  dim   {8, 16}
  depth 1..2
  block transformer { heads 1..2  head_dim 4  mlp_ratio {1, 2} }
}
head linear { pool avg }
"""


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: on a shared 2-core machine OpenMP threads that wait on
    each other at barriers make small models tens of times slower."""
    import torch  # here, not at the top: the language tests never import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
