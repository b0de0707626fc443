"""Architecture rules the code must keep (issue 8): no module reads another's ``_private``
names, and the language core imports no torch."""
import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("spacelang", "compiler", "bench")
#: public APIs that happen to start with an underscore (namedtuple methods)
ALLOWED = {"_replace", "_asdict", "_fields", "_make"}


def _sources():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def _private_reads(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or name.startswith("__") or name in ALLOWED:
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            if isinstance(base, ast.Call) and isinstance(base.func, ast.Name) and base.func.id == "super":
                continue
            out.append(f"{path.relative_to(root)}:{node.lineno}: .{name}")
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    out.append(f"{path.relative_to(root)}:{node.lineno}: import {alias.name}")
    return out


def test_no_module_reads_another_modules_private_names():
    hits = [h for p in _sources() for h in _private_reads(p)]
    assert not hits, "private names read across modules:\n" + "\n".join(hits)


def test_the_rule_catches_a_private_read(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from x import _hidden\n\ndef f(space):\n    return space._dim, self._own, p._replace(a=1)\n")
    assert _private_reads(f, tmp_path) == ["m.py:1: import _hidden", "m.py:4: ._dim"]


@pytest.mark.parametrize("command", ["check", "fmt", "diff", "count", "sample", "show", "kinds"])
def test_language_commands_import_no_torch(command):
    code = ("import sys, spacelang.cli as c, importlib; importlib.import_module(c.COMMANDS[sys.argv[1]]);"
            "print(any(m == 'torch' or m.startswith('torch.') for m in sys.modules))")
    if command not in __import__("spacelang.cli", fromlist=["COMMANDS"]).COMMANDS:
        pytest.skip(f"no {command} command")
    out = subprocess.run([sys.executable, "-c", code, command], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_core_modules_import_no_torch():
    code = ("import sys, pkgutil, importlib, spacelang;"
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(spacelang.__path__, 'spacelang.')"
            " if not m.name.startswith('spacelang.compiler') and not m.name.endswith('__main__')];"
            "print(any(m == 'torch' or m.startswith('torch.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_every_package_is_installed():
    """A non-editable install ships only the packages pyproject.toml lists: every folder with an
    ``__init__.py`` under spacelang/ and compiler/ must be there (compiler/ as spacelang.compiler)."""
    import tomllib
    with open(ROOT / "pyproject.toml", "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = set()
    for init in list((ROOT / "spacelang").rglob("__init__.py")) + list((ROOT / "compiler").rglob("__init__.py")):
        parts = init.parent.relative_to(ROOT).parts
        found.add(".".join(("spacelang", *parts) if parts[0] == "compiler" else parts))
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
