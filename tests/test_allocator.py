"""glibc's thresholds pinned by every command that runs networks (compiler/allocator.py)."""
from __future__ import annotations

import platform

import pytest

from spacelang.compiler import allocator
from spacelang.compiler.commands import common


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_pins_glibc_thresholds_once():
    assert allocator.keep_large_allocations() is True
    assert allocator.keep_large_allocations() is True  # idempotent


def test_commands_that_run_networks_pin_them(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "keep_large_allocations", lambda: calls.append(1) or True)
    common.set_threads(None)
    assert calls == [1]
