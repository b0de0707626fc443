"""Training-free proxies (As-ViT L_E and NTK condition number): known answers, references, registry."""
import json
import math
import os
import random

import pytest

torch = pytest.importorskip("torch")

from spacelang.compiler import proxies as P  # noqa: E402
from spacelang.compiler.proxies.length_distortion import circle, curve_speeds, random_plane  # noqa: E402
from spacelang.compiler.proxies.ntk_condition import condition_number, per_sample_gradients  # noqa: E402
from spacelang.errors import OptionError  # noqa: E402
from spacelang.space import load  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits.space")


class Linear(torch.nn.Module):
    """Images (B, C, H, W) → W·flatten(x): a linear network with a known Jacobian."""

    def __init__(self, weight):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T


def _digits_arch():
    space = load(DIGITS)
    return space, space.sample(random.Random(0))


@pytest.mark.parametrize("name", P.registered())
def test_every_proxy_scores_a_network_deterministically(name):
    space, arch = _digits_arch()
    proxy = P.get(name)
    a = P.score_arch(space, arch, [proxy], seed=0, inits=2)
    b = P.score_arch(space, arch, [proxy], seed=0, inits=2)
    c = P.score_arch(space, arch, [proxy], seed=1, inits=2)
    assert math.isfinite(a[name]) and a[name] > 0
    assert a[name] == b[name] and a["values"] == b["values"] and c[name] != a[name]
    assert P.get(proxy.alias) is proxy and proxy.doc


def test_unknown_proxy_is_an_option_error():
    with pytest.raises(OptionError, match="unknown proxy 'foo'"):
        P.parse_list("le,foo")
    assert [p.name for p in P.parse_list("ntk, le,ntk")] == ["ntk_condition", "length_distortion"]


def test_length_distortion_of_a_scaled_identity_is_its_scale_times_sqrt_n():
    shape = (1, 4, 4)
    f = Linear(2.5 * torch.eye(16))
    le = P.get("le").fn(f, shape, torch.Generator().manual_seed(0))
    assert le == pytest.approx(2.5 * math.sqrt(16), rel=1e-5)


def test_length_distortion_of_a_linear_map_is_the_ellipse_perimeter_over_2pi():
    from scipy.special import ellipe
    n, s0, s1 = 12, 3.0, 1.0
    u0, u1 = random_plane(n, torch.Generator().manual_seed(3))
    e0, e1 = torch.eye(5)[0], torch.eye(5)[1]
    w = s0 * torch.outer(e0, u0) + s1 * torch.outer(e1, u1)  # u0 → s0·e0, u1 → s1·e1
    f = Linear(w)
    for angles in (10, 2000):
        theta = torch.arange(angles, dtype=torch.float64) * 2 * math.pi / angles
        exact_mean = (math.sqrt(n) * (s0 ** 2 * theta.sin() ** 2 + s1 ** 2 * theta.cos() ** 2).sqrt()).mean()
        le = P.get("le").fn(f, (n,), None, angles=angles, plane=(u0, u1))
        assert le == pytest.approx(float(exact_mean), rel=1e-5)
    a, b = math.sqrt(n) * s0, math.sqrt(n) * s1
    perimeter = 4 * a * ellipe(1 - (b / a) ** 2)
    assert le == pytest.approx(perimeter / (2 * math.pi), rel=1e-4)


def test_forward_mode_speeds_equal_autograd_and_finite_differences():
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7), torch.nn.GELU(), torch.nn.Linear(7, 3)).double()
    u0, u1 = random_plane(12, g, dtype=torch.float64)
    points, velocities = circle(u0, u1, (3, 2, 2), angles=6)
    with torch.no_grad():
        speeds = curve_speeds(net, points, velocities)
    for k in range(6):
        jac = torch.autograd.functional.jacobian(lambda x: net(x.unsqueeze(0))[0], points[k])
        v = jac.reshape(3, 12) @ velocities[k].reshape(12)
        assert float(speeds[k]) == pytest.approx(float(v.norm()), rel=1e-9)
    theta, eps = 2 * math.pi * 2 / 6, 1e-6

    def h(t):
        return (math.sqrt(12) * (u0 * math.cos(t) + u1 * math.sin(t))).view(1, 3, 2, 2)
    fd = (net(h(theta + eps)) - net(h(theta - eps))) / (2 * eps)
    assert float(speeds[2]) == pytest.approx(float(fd.norm()), rel=1e-6)


def test_ntk_condition_of_a_linear_map_on_orthonormal_inputs_is_one():
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(0)))
    f = Linear(q)  # orthogonal
    inputs = q[:8].reshape(8, 1, 4, 4)  # orthonormal images
    kappa = P.get("ntk").fn(f, (1, 4, 4), None, inputs=inputs)
    assert kappa == pytest.approx(1.0, rel=1e-5)
    scaled = inputs * torch.tensor([1.0] * 7 + [3.0]).view(8, 1, 1, 1)
    assert P.get("ntk").fn(f, (1, 4, 4), None, inputs=scaled) == pytest.approx(9.0, rel=1e-5)


def test_per_sample_gradients_equal_a_loop_of_backward_passes():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    x = torch.randn(4, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    j = per_sample_gradients(net, x)
    for i in range(4):
        net.zero_grad()
        net(x[i:i + 1]).sum().backward()
        ref = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
        torch.testing.assert_close(j[i], ref)


def test_singular_ntk_gets_a_finite_cap():
    assert condition_number(torch.zeros(3, 3)) == 1e12
    assert condition_number(torch.diag(torch.tensor([4.0, 1.0]))) == pytest.approx(4.0)


def test_network_features_are_pooled_and_norm_free():
    space, arch = _digits_arch()
    f = P.features(P.build_network(space, arch, seed=0))
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in f.modules())
    out = f(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, space.resolve(arch).stages[-1].dim)
    kept = P.features(P.build_network(space, arch, seed=0), norms="keep")
    assert any(isinstance(m, torch.nn.LayerNorm) for m in kept.modules())
    # As-ViT's forward_features()[1]: pooled *before* the final norm — after a LayerNorm with unit
    # gain the sum of the features would be constant and the NTK's gradients would vanish
    assert kept.head.norm is None
    with torch.no_grad():
        sums = kept(torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))).sum(1)
    assert float(sums.std()) > 1e-3 * float(sums.abs().mean())


def test_proxy_command_json(capsys):
    from spacelang.cli import main
    assert main(["proxy", DIGITS, "-n", "2", "--inits", "1", "--json", "--seed", "4"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(r["length_distortion"] > 0 and r["ntk_condition"] >= 1 for r in rows)


def test_proxy_command_refuses_a_bad_arch(tmp_path, capsys):
    from spacelang.cli import main
    bad = tmp_path / "a.json"
    bad.write_text('{"s1.dim": 7}')
    assert main(["proxy", DIGITS, "--arch", str(bad)]) == 2
    assert "error:" in capsys.readouterr().err


def test_reinforce_search_wiring_runs_on_a_space_file(tmp_path, capsys):
    """What `spacelang search FILE --strategy reinforce` runs (the search command delegates to it)."""
    import argparse
    from spacelang.compiler.proxies.search import add_reinforce_arguments, run_proxy_search
    p = argparse.ArgumentParser()
    p.add_argument("rundir")
    p.add_argument("-o", "--output")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    add_reinforce_arguments(p)
    args = p.parse_args([DIGITS, "-o", str(tmp_path), "--steps", "3", "--inits", "1", "--json"])
    assert run_proxy_search(args) == 0
    best = json.loads(capsys.readouterr().out)
    assert set(best["arch"]) == set(load(DIGITS).validate(best["arch"]))
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 3
    args = p.parse_args([str(tmp_path), "-o", str(tmp_path / "x"), "--steps", "3"])
    assert run_proxy_search(args) == 2 and "searches a .space file" in capsys.readouterr().err


def test_the_search_wiring_imports_no_torch():
    import subprocess
    import sys
    code = ("import sys; from spacelang.compiler.proxies.search import add_reinforce_arguments; "
            "import spacelang.compiler.commands.proxy, spacelang.compiler.commands.scale; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _asvit_digits(path="digits-asvit.space"):
    space = load(os.path.join(ROOT, "examples", path))
    arch = {**space.sample(random.Random(2)), "s1.split": 2, "s2.split": 2}
    return space, arch


@pytest.mark.parametrize("params", ["all", "weights"])
@pytest.mark.parametrize("norms", ["identity", "keep"])
def test_hooked_per_sample_gradients_equal_vmap_through_split_attention(params, norms):
    """The one-backward hook path (fused attention, windows folded into the batch) = torch.func's."""
    from spacelang.compiler.proxies.ntk_condition import _selected, _vmap_per_sample_gradients, ntk_gram
    from spacelang.compiler.proxies.sample_grads import hooked_per_sample_gradients
    space, arch = _asvit_digits("digits-asvit-unfold.space" if norms == "keep" else "digits-asvit.space")
    f = P.features(P.build_network(space, arch, seed=0), norms)
    x = torch.randn(5, *space.input_shape(arch), generator=torch.Generator().manual_seed(0))
    selected = {k: p for k, p in f.named_parameters() if _selected(k, params)}
    hooked = hooked_per_sample_gradients(f, x, selected)
    assert hooked is not None and list(hooked) == list(selected)
    reference = _vmap_per_sample_gradients(f, x, params)
    for name in selected:
        ref = reference[name]
        torch.testing.assert_close(hooked[name], ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
    j = torch.cat([g.reshape(5, -1) for g in reference.values()], 1).double()
    torch.testing.assert_close(ntk_gram(f, x, params), j @ j.T, rtol=1e-5, atol=0)
    if params == "weights":
        assert not any(k.endswith("bias") for k in selected)


def test_per_sample_gradients_fall_back_to_vmap_for_other_parameters():
    """A parameter outside linear/conv/LayerNorm layers (a position embedding) takes the torch.func path."""
    from spacelang.compiler.proxies.sample_grads import hooked_per_sample_gradients
    space, arch = _digits_arch()
    f = P.features(P.build_network(space, arch, seed=0))
    x = torch.randn(3, *space.input_shape(arch), generator=torch.Generator().manual_seed(0))
    params = dict(f.named_parameters())
    assert any(not isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.LayerNorm))
               for m in f.modules() if list(m.parameters(recurse=False)))
    assert hooked_per_sample_gradients(f, x, params) is None
    j = per_sample_gradients(f, x)
    for i in range(3):
        f.zero_grad()
        f(x[i:i + 1]).sum().backward()
        ref = torch.cat([p.grad.reshape(-1) for p in f.parameters()])
        torch.testing.assert_close(j[i], ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("with_bias", [False, True])
def test_forward_mode_attention_equals_jvp_of_the_explicit_attention(monkeypatch, with_bias):
    from torch.func import jvp
    from spacelang.compiler.proxies import forward_attention as FA
    monkeypatch.setattr(FA, "CHUNK_BYTES", 3 * 7 * 7 * 4)  # several chunks
    g = torch.Generator().manual_seed(0)
    q, k, v, dq, dk, dv = (torch.randn(2, 3, 2, 7, 4, generator=g, dtype=torch.float64) for _ in range(6))
    bias = torch.randn(3, 1, 7, 7, generator=g, dtype=torch.float64) if with_bias else None

    def explicit(q, k, v):
        s = (q * 0.4) @ k.transpose(-2, -1)
        return (s if bias is None else s + bias).softmax(-1) @ v

    def fused(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.4)

    ref_out, ref_tangent = jvp(explicit, (q, k, v), (dq, dk, dv))
    with FA.forward_mode_attention():
        out, tangent = jvp(fused, (q, k, v), (dq, dk, dv))
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(tangent, ref_tangent)


def test_length_distortion_of_a_network_with_attention_equals_the_explicit_path():
    from torch.func import jvp
    from spacelang.compiler.ops.functional import explicit_attention
    space, arch = _asvit_digits()
    f = P.features(P.build_network(space, arch, seed=1))
    u0, u1 = random_plane(32 * 32, torch.Generator().manual_seed(0))
    points, velocities = circle(u0, u1, (1, 32, 32))
    with torch.no_grad():
        speeds = curve_speeds(f, points, velocities)
        with explicit_attention():
            _, t = jvp(f, (points,), (velocities,))
    torch.testing.assert_close(speeds, t.flatten(1).norm(dim=1), rtol=1e-5, atol=0)


def test_length_distortion_radius_scales_a_linear_network_linearly():
    f = Linear(torch.randn(5, 16, generator=torch.Generator().manual_seed(0)))
    plane = random_plane(16, torch.Generator().manual_seed(1))
    paper = P.get("le").fn(f, (1, 4, 4), None, plane=plane)
    code = P.get("le").fn(f, (1, 4, 4), None, plane=plane, radius=1.0)
    assert code == pytest.approx(paper / 4, rel=1e-6)  # √N = 4


def test_score_arch_takes_norms_per_proxy():
    space, arch = _asvit_digits()
    proxies = P.parse_list("le,ntk")
    mixed = P.score_arch(space, arch, proxies, inits=1, norms={"length_distortion": "identity", "ntk_condition": "keep"})
    same = P.score_arch(space, arch, proxies, inits=1)
    kept = P.score_arch(space, arch, proxies, inits=1, norms="keep")
    assert mixed["length_distortion"] == same["length_distortion"]
    assert mixed["ntk_condition"] == kept["ntk_condition"] != same["ntk_condition"]
