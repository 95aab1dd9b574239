"""What an input will cost, checked before it is allocated: sizes that cannot fit in memory (or on disk) are a
one-line error naming the key or flag, the estimate and what the machine has, never an allocator traceback.

``check_fits(nbytes, what, fix)`` compares an estimate with the memory available now;
``out_of_memory_message`` turns a ``MemoryError`` (or torch's allocator error) that still happens into the one
line ``ndgan.cli`` prints.
"""

from __future__ import annotations

import os

import torch

class TooLarge(ValueError):
    """An input whose estimated size exceeds what the machine has."""


def gib(nbytes: float) -> str:
    """``nbytes`` for a message: GiB from half a GiB on, MiB below."""
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**29 else f"{nbytes / 2**20:,.0f} MiB"


def available_memory(device="cpu") -> int:
    """Bytes that can be allocated now: free GPU memory on CUDA, MemAvailable (Linux) or all RAM on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: do not refuse


def check_fits(nbytes: float, what: str, fix: str, device="cpu") -> None:
    """Raise ``TooLarge`` when ``nbytes`` exceeds the memory available on ``device``."""
    free = available_memory(device)
    if nbytes > free:
        where = "this GPU has" if torch.device(device).type == "cuda" else "this machine has"
        raise TooLarge(f"{what}: needs at least {gib(nbytes)}, {where} {gib(free)} available; {fix}")


def out_of_memory_message(e: BaseException, what: str | None = None):
    """The one-line message for an allocation failure (naming ``what`` was being built, if given), or None if
    ``e`` is not one."""
    text = str(e)
    if not (isinstance(e, MemoryError) or isinstance(e, torch.OutOfMemoryError)
            or (isinstance(e, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text))):
        return None
    doing = f" while building {what}" if what else ""
    detail = text.splitlines()[0][:160] if text else type(e).__name__
    return f"out of memory{doing} ({detail}); make it smaller or use a machine with more memory"


def module_bytes(module) -> int:
    """Bytes of a module's parameters and buffers (also for one built on the meta device, which allocates
    nothing)."""
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))
