"""The compiled ``linear`` head's optional parts: the token-labelling classifier is held and
extracted (its parameters count) but inference does not run it; ``token_logits`` does."""
from __future__ import annotations

import pytest

import spacelang as sl
from spacelang.errors import CompileError

torch = pytest.importorskip("torch")

from spacelang.compiler import build_supernet  # noqa: E402  (after the torch skip)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACE = """
space tl
input image 16 channels 3
classes 5
stem patch_embed {{ patch 4 }}
stage s1 {{
  dim 8
  depth 1
  block transformer {{ heads 2  head_dim 4  mlp_ratio 2 }}
}}
head linear {{ pool cls {extra} }}
"""


def test_token_label_head_is_held_but_not_run_at_inference():
    torch.manual_seed(0)
    with_tl, plain = sl.loads(SPACE.format(extra="token_label true")), sl.loads(SPACE.format(extra=""))
    net = build_supernet(with_tl).eval()
    sub = net.extract({}).eval()
    ref = build_supernet(plain).eval()
    ref.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("head.token_fc")})
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x, {}), ref(x, {}))
        assert (sub(x) - net(x, {})).abs().max().item() <= 1e-6
        tokens = sub.stages[0](sub.stem(x))
        logits = sub.head.token_logits(tokens)
    assert logits.shape == (2, 16, 5)  # one prediction per patch token, the class token left out
    expected = sub.head.token_fc(sub.head.norm(tokens)[:, 1:])
    assert torch.allclose(logits, expected)
    assert sum(p.numel() for p in sub.parameters()) == sl.cost(with_tl, {}).params


def test_token_logits_needs_the_token_label_head():
    sub = build_supernet(sl.loads(SPACE.format(extra=""))).extract({})
    with pytest.raises(CompileError, match="token-labelling"):
        sub.head.token_logits(torch.randn(1, 17, 8))
