"""Unique ids for documents, fast enough for the hot path.

``str(uuid.uuid4())`` costs about 2.7 µs (and a system call); this formats 128 random
bits into the same RFC 4122 version-4 text form in under 1 µs.

Events are numbered instead (:class:`EventUids`): a random uid's first 24 characters,
once per stream, and a 12-digit hexadecimal counter -- unique like uuid4, cheap one at
a time, and for an Event Page of a fly scan made all at once with numpy (a tenth of the
cost of formatting each). The catalog recognises such uids and stores a page's as two
numbers (``acq/catalog/_columns.py``), using :meth:`EventUids.text` to check them.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np

__all__ = ["EventUids", "new_uid"]

_VARIANT = "89ab"
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))
_bits = _random.getrandbits


def new_uid() -> str:
    """Return a random (version 4) UUID as a string, like ``str(uuid.uuid4())``.

    The 128 bits come from a generator seeded with 256 bits from the OS (re-seeded in a
    forked child): unique, not cryptographic, and free of a system call per id (which
    costs about 10 µs in some sandboxes).
    """
    h = f"{_bits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


PREFIX_LENGTH = 24  # "8-4-4-4-" characters of a uuid4: the part an event stream keeps
_COUNTER_BYTES = 6  # 12 hexadecimal digits
_UID_LENGTH = PREFIX_LENGTH + 2 * _COUNTER_BYTES
# each byte value as its two lower-case hexadecimal digits, in memory order
_HEX_PAIRS = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode(), dtype="<u2")


class EventUids:
    """The uids of one stream's events: ``next(uids)`` one, :meth:`take` many.

    Each is the first :attr:`PREFIX_LENGTH` characters of a random uuid4 (one prefix
    per stream) and a 12-digit lower-case hexadecimal counter from 1; the counter never
    goes back, so a replay after a rewind never repeats a uid. The catalog recognises
    such uids in an Event Page (:meth:`text` makes them all at once) and stores them as
    two numbers.
    """

    __slots__ = ("next", "prefix")

    PREFIX_LENGTH = PREFIX_LENGTH
    LENGTH = _UID_LENGTH

    def __init__(self) -> None:
        self.prefix = new_uid()[:PREFIX_LENGTH]
        self.next = 1  # never goes back: a replay after a rewind never repeats a uid

    def __iter__(self) -> EventUids:
        return self

    def __next__(self) -> str:
        n = self.next
        self.next = n + 1
        return f"{self.prefix}{n:012x}"

    def take(self, n: int) -> list[str]:
        """The next ``n`` uids."""
        lines = _uid_table(self.prefix, self.next, n, newline=True).tobytes().decode("ascii")
        self.next += n
        return lines.split("\n")[:n]

    @staticmethod
    def text(prefix: str, first: int, n: int) -> str:
        """The uids ``prefix`` + counter ``first`` .. ``first + n - 1``, joined."""
        return _uid_table(prefix, first, n, newline=False).tobytes().decode("ascii")


def _uid_table(prefix: str, first: int, n: int, newline: bool) -> np.ndarray[Any, Any]:
    """One row of ASCII per uid (and a newline after each, if asked)."""
    table = np.empty((n, _UID_LENGTH + newline), dtype=np.uint8)
    table[:, :PREFIX_LENGTH] = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    counters = np.arange(first, first + n, dtype=">u8").view(np.uint8).reshape(n, 8)
    digits = _HEX_PAIRS[counters[:, 8 - _COUNTER_BYTES :]].view(np.uint8).reshape(n, -1)
    table[:, PREFIX_LENGTH:_UID_LENGTH] = digits
    if newline:
        table[:, _UID_LENGTH] = ord("\n")
    return table
