"""Which space a checkpoint, a search result or an exported subnet comes from.

Two hashes name a space's source: ``sha256`` (the bytes, for provenance) and ``semantic_sha256``
(the canonical text printed by the formatter with every comment left out), so that ``spacelang
fmt`` or a comment-only edit keeps a run resumable while any change of meaning does not.
Pure Python: importing this module imports no torch.
"""
from __future__ import annotations

import hashlib
from typing import Mapping

from spacelang.errors import ArchError, CheckpointError, SpacelangError


def text_sha256(text: str) -> str:
    """sha256 of ``text`` encoded as UTF-8 (the byte hash of a ``.space`` source)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_form(source: str, filename: str = "<space>") -> str:
    """The formatter's canonical text of ``source`` without its comments: equal for two sources
    that differ only in layout and comments."""
    import attrs
    from spacelang.fmt import print_tree
    from spacelang.parser import parse
    return print_tree(attrs.evolve(parse(source, filename), comments=()))


def semantic_sha256(source: str) -> str:
    """sha256 of :func:`canonical_form`: the hash that decides whether two sources are one space."""
    return text_sha256(canonical_form(source))


def space_identity(space) -> dict:
    """``{"name", "sha256", "semantic_sha256"}`` of a loaded space (recorded in outputs)."""
    return {"name": space.name, "sha256": text_sha256(space.source), "semantic_sha256": semantic_sha256(space.source)}


def what_differs(old_source: str, space) -> str:
    """A one-line summary of how ``space`` differs from ``old_source`` (sections of ``spacelang diff``)."""
    from spacelang import loads
    from spacelang.diff import SECTIONS, diff_spaces
    try:
        old = loads(old_source, filename="<checkpoint>")
    except SpacelangError:  # a stored source this build no longer reads: say so, no more
        return "the stored space no longer loads with this version"
    d = diff_spaces(old, space)
    parts = [] if old.name == space.name else [f"name {old.name} → {space.name}"]
    for key, title, _ in SECTIONS:
        entries = d.sections.get(key) or []
        if entries:
            shown = ", ".join(e.path for e in entries[:3]) + (f", … ({len(entries)})" if len(entries) > 3 else "")
            parts.append(f"{title}: {shown}")
    return "; ".join(parts) or "the texts differ beyond layout and comments (e.g. a derived expression)"


def check_same_space(recorded: Mapping | None, space, what: str) -> None:
    """Refuse an arch recorded for another space: ``recorded`` is the ``space`` object of a
    best.json / arch file (``{"name", "sha256", "semantic_sha256"}``); None passes (no record)."""
    if not recorded:
        return
    ident = space_identity(space)
    theirs = recorded.get("semantic_sha256")
    if theirs is not None and theirs == ident["semantic_sha256"]:
        return
    if theirs is None and recorded.get("sha256") in (None, ident["sha256"]):
        return
    name = recorded.get("name", "?")
    same = " (same name, other content)" if name == space.name else ""
    raise ArchError(None, f"{what} is from space {name}, not {space.name}{same}",
                    hint="search the run the arch belongs to, or pass an arch of this space")


def resume_check(stored_source: str, space, rundir: str) -> bool:
    """Whether a checkpoint compiled from ``stored_source`` can continue with ``space``.

    Returns True when the byte hashes differ but the meaning is the same (a note is due);
    raises :class:`CheckpointError` saying what differs otherwise.
    """
    if text_sha256(stored_source) == text_sha256(space.source):
        return False
    if semantic_sha256(stored_source) == semantic_sha256(space.source):
        return True
    raise CheckpointError(f"{rundir}: the checkpoint was compiled from another space ({what_differs(stored_source, space)})",
                          hint="resume with the space the run was trained on, or pass --force to start afresh")


__all__ = ["text_sha256", "canonical_form", "semantic_sha256", "space_identity", "what_differs",
           "check_same_space", "resume_check"]
