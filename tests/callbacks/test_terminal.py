"""A live table and a progress bar share a real terminal without breaking each other's lines.

The bar is text on stderr redrawn in place (``\\r``), the table prints rows on stdout; on
a terminal both land on the same screen. These tests run a scan in a child process on a
real pseudo-terminal of a known size (:mod:`pty`, with the window size set, so the bar
measures a real width), capture the raw bytes and replay them through :class:`Screen`,
a small emulation of what a VT100-style terminal does with them. Every table line must
end up whole on its own line and the bar, once, at 100%.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import selectors
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

_CSI = re.compile(r"\x1b\[(\d*)([A-Za-z])")


class Screen:
    """What a terminal of ``width`` columns shows after the bytes it was sent.

    Emulated: printable characters (one column each; a line reaching the last column
    wraps when the next character comes, as VT100 terminals do), ``\\r``, ``\\n`` (a
    pseudo-terminal sends ``\\r\\n`` for a program's ``\\n``), cursor up (``ESC [ n A``,
    tqdm's way to nested bars) and erase in line (``ESC [ K`` / ``ESC [ 2K``). Anything
    else is refused, so that a test never passes on output it did not understand. The
    screen grows downwards without scrolling away.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self._rows: list[list[str]] = [[]]
        self._row = 0
        self._col = 0

    def feed(self, text: str) -> None:
        """Apply ``text`` to the screen."""
        i = 0
        while i < len(text):
            char = text[i]
            if char == "\x1b":
                match = _CSI.match(text, i)
                if match is None:
                    raise AssertionError(f"unknown escape sequence {text[i : i + 8]!r}")
                self._escape(int(match[1] or 0), match[2])
                i = match.end()
                continue
            if char == "\r":
                self._col = 0
            elif char == "\n":
                self._move_to(self._row + 1)
            elif char.isprintable():
                self._put(char)
            else:
                raise AssertionError(f"unexpected control character {char!r}")
            i += 1

    def _escape(self, number: int, command: str) -> None:
        if command == "A":
            self._row = max(self._row - max(number, 1), 0)
        elif command == "K" and number in (0, 2):
            line = self._rows[self._row]
            start = 0 if number == 2 else self._col
            line[start:] = [" "] * max(len(line) - start, 0)
        else:
            raise AssertionError(f"unknown escape sequence ESC[{number}{command}")

    def _move_to(self, row: int) -> None:
        self._row = row
        while len(self._rows) <= row:
            self._rows.append([])

    def _put(self, char: str) -> None:
        if self._col == self.width:  # the pending wrap of a full line
            self._move_to(self._row + 1)
            self._col = 0
        line = self._rows[self._row]
        line.extend(" " * (self._col + 1 - len(line)))
        line[self._col] = char
        self._col += 1

    @property
    def lines(self) -> list[str]:
        """The screen's lines, right-stripped, without the blank ones at the bottom."""
        lines = ["".join(row).rstrip() for row in self._rows]
        while lines and not lines[-1]:
            lines.pop()
        return lines


def test_the_screen_emulation_overwrites_wraps_and_erases() -> None:
    screen = Screen(width=10)
    screen.feed("\rbar 0%\r       \rrow one\r\n\rbar 50%")
    assert screen.lines == ["row one", "bar 50%"]
    screen = Screen(width=10)
    screen.feed("0123456789\r\nabc")  # a full line does not wrap before the \r\n
    assert screen.lines == ["0123456789", "abc"]
    screen.feed("defghijklmn")  # but a longer one does
    assert screen.lines == ["0123456789", "abcdefghij", "klmn"]
    screen.feed("\x1b[2Aup\x1b[K")
    assert screen.lines == ["0123up", "abcdefghij", "klmn"]
    with pytest.raises(AssertionError, match="unknown escape"):
        screen.feed("\x1b[1;31m")


def run_on_terminal(
    argv: list[str], *, width: int, env: dict[str, str] | None = None, timeout: float = 60
) -> str:
    """Run ``argv`` with stdin, stdout and stderr on one new pseudo-terminal ``width`` wide.

    Returns:
        Everything the program wrote to the terminal, decoded.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, width, 0, 0))
    child_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    child_env.update(TERM="xterm", PYTHONIOENCODING="utf-8", **(env or {}))
    with subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=child_env, start_new_session=True
    ) as child:
        os.close(slave)
        output = bytearray()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(master, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    child.kill()
                    raise AssertionError(f"{argv} still running after {timeout} s: {output!r}")
                if not selector.select(left):
                    continue
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every end of the terminal's other side closed
                    break
                if not chunk:
                    break
                output += chunk
        os.close(master)
        assert child.wait(timeout=timeout) == 0, output.decode(errors="replace")
    return output.decode()


# The demo's wiring (callbacks/_cli.py), catalog=None, and the table's lines computed
# again afterwards from the same documents, into a file: what the screen must show.
_SCAN = """
import asyncio, json, sys
from acq import RunEngine
from acq.callbacks import LiveTable, ProgressBar
from acq.devices.sim import sim_beamline
from acq.plans import scan

async def main(num, min_interval, expected_path):
    RE = RunEngine(catalog=None)
    beamline = await sim_beamline(velocity=50.0, acquire_time=0.01, seed=0)
    docs = []
    await RE(
        scan([beamline.det], beamline.x, -3.0, 3.0, num=num),
        LiveTable(["x", "det"]),
        ProgressBar(min_interval=min_interval),
        lambda name, doc: docs.append((name, doc)),
    )
    expected = []
    table = LiveTable(["x", "det"], out=expected.append)
    for name, doc in docs:
        table(name, doc)
    with open(expected_path, "w") as f:
        json.dump(expected, f)

asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]))
"""


def bar_lines(lines: list[str], desc: str) -> list[str]:
    return [line for line in lines if line.startswith(desc)]


@pytest.mark.parametrize(
    ("num", "min_interval", "width"),
    [(11, 0.1, 80), (40, 0.0, 80), (25, 0.0, 60)],
    ids=["demo-scan", "a-redraw-per-point", "narrow-terminal"],
)
def test_table_rows_print_whole_through_the_progress_bar(
    tmp_path: Path, num: int, min_interval: float, width: int
) -> None:
    expected_path = tmp_path / "expected.json"
    argv = [sys.executable, "-c", _SCAN, str(num), str(min_interval), str(expected_path)]
    screen = Screen(width)
    screen.feed(run_on_terminal(argv, width=width))
    expected: list[str] = json.loads(expected_path.read_text())
    assert len(expected) == num + 6  # header, rule, headings, rule, rows, rule, footer

    bars = bar_lines(screen.lines, "scan 1:")
    table = [line for line in screen.lines if line not in bars]
    assert table == expected, "\n".join(screen.lines)
    assert len(bars) == 1, "\n".join(screen.lines)  # cleared and redrawn, left once at the end
    (bar,) = bars
    assert re.match(rf"scan 1: 100%\|.*\| {num}/{num} \[", bar), bar
    assert len(bar) <= width  # never wrapped: tqdm cuts its text to the terminal's width
    if width >= 80:
        assert bar.endswith(", exit_status=success]"), bar


def test_acq_demo_prints_its_table_and_bar_on_separate_whole_lines(tmp_path: Path) -> None:
    acq = Path(sys.executable).parent / "acq"  # the console script, as users run it
    assert acq.is_file(), f"acq's console script is not installed next to {sys.executable}"
    env = {"ACQ_DATA_DIR": str(tmp_path), "ACQ_CATALOG": str(tmp_path / "catalog.db")}
    argv = [str(acq), "demo", "--plot", str(tmp_path / "plot.html")]
    screen = Screen(80)
    screen.feed(run_on_terminal(argv, width=80, env=env))
    lines = screen.lines
    (bar,) = bar_lines(lines, "scan 1:")
    assert re.match(r"scan 1: 100%\|.*\| 11/11 \[.*exit_status=success\]$", bar), bar
    assert lines[0].startswith("scan_id=1  uid="), lines
    rows = [line for line in lines if line.startswith("|")]
    assert len(rows) == 1 + 11  # the headings and one row per point
    cell = r" +\S+(?: \[\w+\])? "
    for row in rows:
        assert re.fullmatch(rf"\|(?:{cell}\|){{4}}", row), row
    footer = [line for line in lines if line.startswith("exit_status=")]
    assert len(footer) == 1, lines
    assert re.fullmatch(r"exit_status=success  num_events=11  duration=[\d.]+ s", footer[0])
