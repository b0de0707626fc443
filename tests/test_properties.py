"""Property tests: generated spaces survive print → parse → print, the formatter is idempotent and
keeps every comment, and the exact subnet count equals brute-force enumeration on small spaces."""
import itertools
import math

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import spacelang as sl
from spacelang.fmt import format_source
from spacelang.parser import parse

SETTINGS = dict(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYWORDS = {"space", "input", "image", "channels", "classes", "let", "template", "stem", "head", "stage",
            "downsample", "dim", "depth", "block", "optional", "repeat", "step", "constraint", "params",
            "flops", "true", "false", "min", "max"}

# ------------------------------------------------------------------ random syntax, random layout

names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
ints = st.integers(0, 100_000).map(str)
floats = st.sampled_from(["0.5", "3.5", "1.25", "2.0", "10.75", "1e-05", "2.5e3", "7E2"])
numbers = st.one_of(ints, floats)
comment_text = st.text(st.sampled_from(list("abc XYZ#{}()-:é→0")), max_size=12).map(lambda s: ("#" + s).rstrip())


@st.composite
def expr(draw, depth=0):
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return [draw(st.one_of(numbers, names, st.sampled_from(["true", "false"])))]
    form = draw(st.sampled_from(["bin", "bin", "neg", "paren", "call"]))
    if form == "bin":
        return draw(expr(depth + 1)) + [draw(st.sampled_from(["+", "-", "*", "/", "//", "%"]))] + draw(expr(depth + 1))
    if form == "neg":
        return ["-"] + draw(expr(depth + 1))
    if form == "paren":
        return ["("] + draw(expr(depth + 1)) + [")"]
    args = [draw(expr(depth + 1)) for _ in range(draw(st.integers(2, 3)))]
    out = [draw(st.sampled_from(["min", "max"])), "("]
    for i, a in enumerate(args):
        out += ([","] if i else []) + a
    return out + [")"]


@st.composite
def value(draw):
    form = draw(st.sampled_from(["choice", "range", "expr"]))
    if form == "choice":
        lits = draw(st.lists(st.one_of(numbers, names, st.sampled_from(["true", "false"]),
                                       ints.map(lambda s: "- " + s)), min_size=1, max_size=4))
        out = ["{"]
        for i, lit in enumerate(lits):
            out += ([","] if i else []) + lit.split()
        out += [","] if draw(st.booleans()) else []
        out += ["}"]
        if draw(st.booleans()):
            out += ["step", draw(numbers)]
        return out
    if form == "range":
        out = [draw(numbers), "..", draw(numbers)]
        return out + (["step", draw(numbers)] if draw(st.booleans()) else [])
    return draw(expr())


@st.composite
def fields(draw):
    out = []
    for _ in range(draw(st.integers(0, 4))):
        out += [draw(names)] + draw(value())
    return out


@st.composite
def block(draw):
    out = ["block", draw(names)]
    if draw(st.booleans()):
        out.append("optional")
    if draw(st.integers(0, 3)):
        out += ["{"] + draw(fields()) + ["}"]
    return out


@st.composite
def stage_item(draw):
    kind = draw(st.sampled_from(["dim", "depth", "let", "block", "block", "repeat", "downsample"]))
    if kind in ("dim", "depth"):
        return [kind] + draw(value())
    if kind == "let":
        return ["let", draw(names), "="] + draw(value())
    if kind == "block":
        return draw(block())
    if kind == "downsample":
        return ["downsample", draw(names)] + (["{"] + draw(fields()) + ["}"] if draw(st.booleans()) else [])
    out = ["repeat", draw(ints), "{"]
    for _ in range(draw(st.integers(0, 2))):
        out += draw(block())
    return out + ["}"]


@st.composite
def top_item(draw):
    kind = draw(st.sampled_from(["input", "classes", "let", "template", "stem", "stage", "stage", "head", "constraint"]))
    if kind == "input":
        return ["input", "image"] + draw(value()) + ["channels", draw(ints)]
    if kind == "classes":
        return ["classes", draw(ints)]
    if kind == "let":
        return ["let", draw(names), "="] + draw(value())
    if kind == "template":
        return ["template", draw(names), draw(names), "{"] + draw(fields()) + ["}"]
    if kind in ("stem", "head"):
        return [kind, draw(names)] + (["{"] + draw(fields()) + ["}"] if draw(st.booleans()) else [])
    if kind == "constraint":
        q = draw(st.one_of(ints, st.sampled_from(["9M", "1.5G", "500K", "2.25M", "3.5"])))
        return ["constraint", draw(st.sampled_from(["params", "flops"])), draw(st.sampled_from(["<=", ">=", "<", ">"])), q]
    out = ["stage", draw(names), "{"]
    for _ in range(draw(st.integers(0, 4))):
        out += draw(stage_item())
    return out + ["}"]


@st.composite
def source(draw):
    """A syntactically valid .space text with random whitespace, blank lines and comments."""
    tokens = ["space", draw(names)]
    for _ in range(draw(st.integers(0, 6))):
        tokens += draw(top_item())
    seps = st.one_of(st.sampled_from([" ", " ", " ", "  ", "\n", "\n  ", "\n\n\n", "\t", "\r\n"]),
                     comment_text.map(lambda c: f"  {c}\n"), comment_text.map(lambda c: f"\n{c}\n\n"))
    parts = []
    if draw(st.booleans()):
        parts.append(draw(comment_text) + "\n")
    for tok in tokens:
        parts += [tok, draw(seps)]
    if draw(st.booleans()):
        parts.append(draw(comment_text))
    return "".join(parts)


def _comments(tree):
    return [c.text for c in tree.comments]


@settings(**SETTINGS)
@given(source())
def test_print_parse_print_is_stable_and_keeps_comments(text):
    tree = parse(text)
    out = format_source(text)          # raises if a built-in proof fails
    again = parse(out)
    assert again == tree
    assert _comments(again) == _comments(tree)
    assert format_source(out) == out   # idempotent
    assert out.endswith("\n") and "\n\n\n" not in out and not out.startswith("\n")
    assert all(line == line.rstrip() for line in out.split("\n"))


# ------------------------------------------------------------------ exact size vs brute force

@st.composite
def small_space(draw):
    lines = ["space p"]
    res = draw(st.sampled_from(["32", "{32, 64}"]))
    lines += [f"input image {res} channels 3", "classes 10"]
    space_let = draw(st.booleans())
    if space_let:
        lines.append("let g = {1, 2, 4}")
    lines.append("stem patch_embed { patch 16 }")
    n_stages = draw(st.integers(1, 2))
    for si in range(n_stages):
        lines.append(f"stage s{si} {{")
        if si:
            lines.append("  downsample patch_merging")
        lines.append("  dim " + draw(st.sampled_from(["16", "{16, 32}"])))
        stage_let = draw(st.booleans())
        if stage_let:
            lines.append("  let r = {1, 2}")
        n_blocks = draw(st.integers(1, 3))
        if draw(st.booleans()):
            top = n_blocks if n_blocks > 1 else draw(st.integers(1, 3))
            extra = draw(st.sets(st.integers(1, top), max_size=2))
            lines.append("  depth {" + ", ".join(map(str, sorted(extra | {top}))) + "}")
        ratios = ["1", "{1, 2}"] + (["r"] if stage_let else []) + (["g"] if space_let else [])
        for _ in range(n_blocks):
            heads = draw(st.sampled_from(["1", "{1, 2}", "1..2"]))
            ratio = draw(st.sampled_from(ratios))
            qkv = draw(st.sampled_from(["", "  qkv_dim heads * 8", "  qkv_dim max(heads * 8, 8)"]))
            opt = " optional" if draw(st.integers(0, 2)) == 0 else ""
            lines.append(f"  block transformer{opt} {{ heads {heads}  head_dim 8{qkv}  mlp_ratio {ratio} }}")
        lines.append("}")
    pools = ["cls", "avg"] if n_stages == 1 else ["avg"]  # patch merging cannot carry a class token
    lines.append("head linear { pool " + draw(st.sampled_from(pools)) + " }")
    return "\n".join(lines) + "\n"


def brute_force(space) -> set:
    dims = list(space.dims)
    out = set()
    for values in itertools.product(*[d.choices for d in dims]):
        full = dict(zip([d.path for d in dims], values))
        canon = {p: full[p] for p in space.active_paths(full)}
        out.add(tuple(sorted(space.validate(canon).items())))
    return out


@settings(**SETTINGS)
@given(small_space())
def test_exact_size_equals_brute_force(text):
    space = sl.loads(text)
    assume(math.prod(d.size for d in space.dims) <= 3000)
    archs = brute_force(space)
    assert space.size() == len(archs)
    assert tuple(sorted(space.max_arch().items())) in archs
    assert tuple(sorted(space.min_arch().items())) in archs
    assert format_source(format_source(text)) == format_source(text)
