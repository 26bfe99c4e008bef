"""The replay log: what a resume rewinds to and the messages it handles again.

A pause (or a suspension) parks the plan; ``RE.resume()`` rewinds it to its last
``checkpoint`` and handles again the messages handled since, so that a point the pause cut
in half is measured whole (bluesky's contract). :class:`ReplayLog` keeps those messages
and the rules for them:

* a ``checkpoint`` starts a new log; ``clear_checkpoint`` means nothing can be rewound
  until the next one; ``rewindable=False`` (``RE.rewindable`` or
  ``Msg('rewindable', None, False)``) turns rewinding off altogether;
* ``stage``/``unstage`` start a new log too: a resume never rewinds past them;
* a bundle (``create`` ... ``save``/``drop``) that ended is cut out of the log: its
  event stands and is never emitted twice;
* a device whose ``pause()`` raises ``NoReplayAllowed`` makes the next resume replay
  nothing (it goes on where the plan paused).

Which commands are logged at all is a flag of each command (``Command.replayed`` in
``_commands.py``); the drive loop appends them while :attr:`ReplayLog.recording`.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

__all__ = ["ReplayLog"]


class ReplayLog:
    """The messages handled since the last checkpoint, replayed on resume."""

    __slots__ = ("_has_checkpoint", "_marks", "_refused", "_rewindable", "messages", "recording")

    def __init__(self, rewindable: bool = True) -> None:
        self.messages: list[Any] = []
        """Messages since the checkpoint; the drive loop appends to it while recording."""
        self.recording = False
        """There is a checkpoint and rewinding is allowed (kept up to date)."""
        self._rewindable = rewindable
        self._has_checkpoint = False
        self._marks: dict[Hashable, int] = {}  # run key -> where its open bundle starts
        self._refused = False

    @property
    def rewindable(self) -> bool:
        """May a resume rewind to the last checkpoint?"""
        return self._rewindable

    @rewindable.setter
    def rewindable(self, flag: bool) -> None:
        self._rewindable = flag
        self.recording = self._has_checkpoint and flag

    def checkpoint(self) -> None:
        """A point to rewind to: forget the messages before it."""
        self._forget()
        self._has_checkpoint = True
        self.recording = self._rewindable

    def clear_checkpoint(self) -> None:
        """From here on the plan cannot be rewound (until the next checkpoint)."""
        self._forget()
        self._has_checkpoint = False
        self.recording = False

    def restart(self) -> None:
        """Rewind no further back than here (``stage``/``unstage``), if rewinding at all."""
        if self.recording:
            self._forget()

    def mark_bundle(self, key: Hashable) -> None:
        """``create`` for run ``key``: where its bundle starts in the log."""
        if self.recording:
            self._marks[key] = len(self.messages)

    def forget_bundle(self, key: Hashable) -> None:
        """``save``/``drop``: a finished bundle is never replayed (its event stands)."""
        mark = self._marks.pop(key, None)
        if mark is not None:
            del self.messages[mark:]

    def refuse(self) -> None:
        """A device cannot be replayed: the next resume replays nothing."""
        self._refused = True

    @property
    def can_park(self) -> bool:
        """May the plan be paused here without losing what is in flight?

        Not when rewinding is on but there is no checkpoint to rewind to: a resume could
        neither replay the point in flight nor go on from the middle of it.
        """
        return self.recording or not self._rewindable

    def take(self) -> list[Any]:
        """The messages a resume replays (none if refused or not recording); log emptied.

        The replayed messages are logged again by whoever handles them (:meth:`log`).
        """
        messages = self.messages if self.recording and not self._refused else []
        self._refused = False
        self.messages = []
        self._marks.clear()
        return messages

    def log(self, msg: Any) -> None:
        """Log ``msg`` (off the hot path: a replayed message)."""
        if self.recording:
            self.messages.append(msg)

    def _forget(self) -> None:
        self.messages.clear()
        self._marks.clear()
