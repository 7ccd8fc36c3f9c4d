"""Progress lines: durations as people read them, and the time left at the current rate."""

from __future__ import annotations


def format_duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``2h05m``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def time_left(elapsed: float, done: int, remaining: int) -> str:
    """The time ``remaining`` more steps take at the rate of ``done`` steps in ``elapsed`` seconds
    (``?`` before the first step)."""
    if done <= 0:
        return "?"
    return format_duration(elapsed / done * max(remaining, 0))
