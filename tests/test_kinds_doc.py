"""``spacelang kinds`` and the generated kinds section of docs/language.md, over the whole registry."""
from __future__ import annotations

import json

import pytest

from spacelang import cli
from spacelang.commands import kinds as kinds_cmd
from spacelang.kinds import KINDS

DOC = "docs/language.md"


def _run(argv, capsys):
    try:
        code = cli.main(["kinds", *argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_docs_section_equals_the_generated_one():
    text = open(DOC, encoding="utf-8").read()
    start, end = text.index(kinds_cmd.BEGIN), text.index(kinds_cmd.END) + len(kinds_cmd.END) + 1
    assert text[start:end] == kinds_cmd.markdown([KINDS[k] for k in sorted(KINDS)]), (
        "docs/language.md's kinds section is stale: run `spacelang kinds --markdown --into docs/language.md`")


def test_into_replaces_only_the_section(tmp_path, capsys):
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{kinds_cmd.BEGIN}\nstale-section-7f3a\n{kinds_cmd.END}\nafter\n")
    code, _, _ = _run(["--markdown", "--into", str(doc)], capsys)
    text = doc.read_text()
    assert code == 0 and text.startswith("before\n") and text.endswith(f"{kinds_cmd.END}\nafter\n")
    assert "stale-section-7f3a" not in text and "### `transformer`" in text


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_shows_its_fields_and_example(name, capsys):
    kind = KINDS[name]
    code, out, _ = _run([name], capsys)
    assert code == 0 and out.startswith(f"{name}  (roles: ")
    for field in kind.fields.values():
        assert any(ln.split()[:1] == [field.name] for ln in out.splitlines()), field.name
    example = getattr(kind, "example", None)
    if example:
        assert example.strip().splitlines()[0] in out
    code, out, _ = _run([name, "--json"], capsys)
    data = json.loads(out)
    assert data["name"] == name and data["roles"] == sorted(kind.roles)
    assert [f["name"] for f in data["fields"]] == list(kind.fields)
    assert all(f["required"] == kind.fields[f["name"]].required for f in data["fields"])


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_example_is_a_valid_space(name):
    import spacelang as sl
    example = getattr(KINDS[name], "example", None)
    if example is None:
        pytest.skip("no example yet")
    sl.loads(example, filename=f"<{name} example>")


def test_list_names_every_kind(capsys):
    code, out, _ = _run([], capsys)
    assert code == 0 and [ln.split()[0] for ln in out.splitlines()] == sorted(KINDS)


def test_unknown_kind_is_one_error_with_a_suggestion(capsys):
    code, out, err = _run(["transfomer"], capsys)
    assert code == 2 and not out
    assert err == "error: unknown kind 'transfomer'\n  hint: did you mean 'transformer'?\n"
