"""Peak memory of a benchmark's work, above the level once its model is loaded.

On CUDA the allocator's own peak; on the CPU the process's peak resident set (VmHWM),
reset at construction (Linux >= 4.0), so loading the model does not count.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakMemory:
    """Peak memory above the level at construction: CUDA allocator or process RSS."""

    def __init__(self, device: str) -> None:
        import torch

        self.torch = torch
        self.cuda = device.startswith("cuda")
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        self.base = _rss_kib("VmRSS") * 1024
        try:  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            print("could not reset VmHWM; peak includes model loading", file=sys.stderr)

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def peak_bytes(self) -> int:
        if self.cuda:
            return self.torch.cuda.max_memory_allocated() - self.base
        return _rss_kib("VmHWM") * 1024 - self.base
