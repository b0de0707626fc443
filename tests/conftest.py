import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACES = os.path.join(ROOT, "spaces")
EXAMPLES = os.path.join(ROOT, "examples")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: on a shared 2-core machine OpenMP threads that wait on
    each other at barriers make small models tens of times slower."""
    import torch  # here, not at the top: the language tests never import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
