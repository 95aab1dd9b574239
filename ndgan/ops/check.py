"""One-line validators shared by the ops, the networks and the commands: each raises a ValueError that names
the argument, what it expects and what it got."""

from __future__ import annotations

import torch


class ConfigError(ValueError):
    """A bad config: the message names the file or key, the problem and the fix."""


def check_choice(name: str, value, choices):
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")
    return value


def check_int(name: str, value, minimum: int = 1, none: str | None = None, hint: str = ""):
    """``value`` if it is an int (not a bool) of at least ``minimum``; None too when ``none`` says what None
    means (e.g. ``"(whole batch)"``). ``hint`` follows the expectation, e.g. ``"(3 for RGB)"``."""
    if value is None and none is not None:
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = {1: "a positive int", 0: "a non-negative int"}.get(minimum, f"an int >= {minimum}")
        kind += f" or None {none}" if none is not None else ""
        raise ValueError(f"{name}: expected {kind}{' ' + hint if hint else ''}, got {value!r}")
    return value


def check_device(device, flag: str = "--device") -> torch.device:
    """``device`` as a torch.device (``auto``: CUDA when there is one), or a ValueError naming ``flag`` and
    saying what this machine offers."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{flag}: {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{flag}: {device} is not supported; use cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{flag}: {device} requested, but this machine has no CUDA device; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{flag}: {device} requested, but this machine has {torch.cuda.device_count()} GPU(s)")
    return device
