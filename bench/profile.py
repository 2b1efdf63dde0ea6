"""Sampling profiles of the services under load, with py-spy, and a summary of the top costs.

py-spy attaches to a running process by pid (it needs ptrace rights: root here) and samples its
Python stacks ``rate`` times a second without changing the program. Idle samples (the event
loop waiting in ``epoll``) are left out, so the shares below are shares of busy time. Each
process gets a collapsed-stack file (``--format raw``, readable by speedscope and flamegraph
tools) and a text summary: the functions where samples land (self) and the functions on the
stack (inclusive), as a share of the process's busy samples.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


async def record(
    pid: int, output: Path, *, duration_s: int, native: bool = False
) -> asyncio.subprocess.Process:
    """Start ``py-spy record`` on ``pid`` (returns at once; await ``.wait()`` for the file).

    Raises:
        RuntimeError: py-spy is not installed (``make bench`` installs it).
    """
    executable = py_spy()
    if executable is None:
        raise RuntimeError("py-spy not found: install the bench extras (make bench)")
    argv = [executable, "record", "--pid", str(pid), "--duration", str(duration_s)]
    argv += ["--format", "raw", "--output", str(output), "--nonblocking"]
    if native:
        argv.append("--native")
    return await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


def _frame_name(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    return f"{match['func']} ({match['file']})"


def summarize(collapsed: Path, *, top: int = 25) -> str:
    """Top functions by self and inclusive share of the samples in a collapsed-stack file."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    lines = [f"{collapsed.name}: {total} busy samples", "", "self %  function (file)"]
    lines += [f"{100 * n / total:6.1f}  {name}" for name, n in self_counts.most_common(top)]
    lines += ["", "incl %  function (file)"]
    lines += [f"{100 * n / total:6.1f}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n" if total else f"{collapsed.name}: no samples\n"
