"""A live status line on stderr, rewritten in place (or printed every few seconds when stderr
is not a terminal, so a log file still shows the run advancing)."""

from __future__ import annotations

import sys
import time


class Progress:
    """One line that a scenario keeps updating while it runs."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._last_print = 0.0
        self._width = 0

    def update(self, text: str, *, force: bool = False) -> None:
        """Show ``text`` as the current status."""
        now = time.monotonic()
        if self._tty:
            if not force and now - self._last_print < 0.2:
                return
            padded = text.ljust(self._width)
            self._width = len(text)
            sys.stderr.write(f"\r{padded}")
            sys.stderr.flush()
        elif force or now - self._last_print >= 5.0:
            sys.stderr.write(f"{text}\n")
            sys.stderr.flush()
        self._last_print = now

    def done(self, text: str) -> None:
        """Finish the line with a final status and move on."""
        if self._tty:
            sys.stderr.write("\r" + text.ljust(self._width) + "\n")
        else:
            sys.stderr.write(f"{text}\n")
        sys.stderr.flush()
        self._width = 0
        self._last_print = 0.0


def bar(fraction: float, width: int = 20) -> str:
    """A text progress bar: ``[######......]``."""
    filled = round(max(0.0, min(fraction, 1.0)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"
