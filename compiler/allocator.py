"""glibc's allocator settings for CPU training: keep large tensors in the heap.

PyTorch allocates CPU tensors with ``malloc``.  glibc serves a request above its *mmap
threshold* with a fresh ``mmap`` and returns it to the kernel on ``free``, so the next step's
activation of the same size page-faults its memory in again (every 4 KiB page zeroed by the
kernel).  The threshold adapts to the allocation pattern, and how fast it does is a matter of
luck: measured on AutoFormer-T's largest subnet (batch 8, 224², one thread), the supernet's
forward pass took 13% longer than the extracted subnet's — the same kernels on the same shapes,
only the order of allocations differing — and both ran 10% faster with the threshold pinned
above the activations' size (bench/bench_fused.py prints the ratios; docs/decisions.md).

:func:`keep_large_allocations` pins the threshold (which also stops glibc adapting it) and raises
the trim threshold, so freed activations stay in the heap for the next step.  The price: the
process keeps up to :data:`TRIM` of freed memory instead of returning it at once.  Commands that
run networks call it (through ``commands.common.set_threads``); benches call it to time what a
user runs.  Elsewhere than glibc (macOS, Windows, musl) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: requests up to this size come from the heap (a batch-64 activation at 224² is ~48 MiB)
MMAP_THRESHOLD = 256 << 20
#: free memory at the top of the heap beyond this is returned to the kernel
TRIM = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h

_done = False


def keep_large_allocations() -> bool:
    """Pin glibc's mmap and trim thresholds (once per process); False where it cannot."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM))
    return _done
