"""The engine's states and the transitions allowed between them: pure data, no I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from ._errors import StateError

__all__ = ["State", "transition"]


class State(enum.StrEnum):
    """What the RunEngine is doing; equal to its value, as bluesky's ``RE.state == "idle"``."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    SUSPENDING = "suspending"
    STOPPING = "stopping"
    ABORTING = "aborting"
    HALTING = "halting"


_S = State
_ALLOWED: Final[Mapping[State, frozenset[State]]] = {
    _S.IDLE: frozenset({_S.RUNNING}),
    _S.RUNNING: frozenset(
        {_S.IDLE, _S.PAUSING, _S.SUSPENDING, _S.STOPPING, _S.ABORTING, _S.HALTING}
    ),
    _S.PAUSING: frozenset({_S.PAUSED, _S.RUNNING, _S.STOPPING, _S.ABORTING, _S.HALTING, _S.IDLE}),
    _S.PAUSED: frozenset({_S.RUNNING, _S.STOPPING, _S.ABORTING, _S.HALTING}),
    _S.SUSPENDING: frozenset(
        {_S.RUNNING, _S.PAUSING, _S.STOPPING, _S.ABORTING, _S.HALTING, _S.IDLE}
    ),
    _S.STOPPING: frozenset({_S.IDLE, _S.HALTING}),
    _S.ABORTING: frozenset({_S.IDLE, _S.HALTING}),
    _S.HALTING: frozenset({_S.IDLE}),
}


def transition(current: State, new: State) -> State:
    """Return ``new`` if the engine may go there from ``current``.

    Raises:
        StateError: the transition is not allowed.
    """
    if new not in _ALLOWED[current]:
        raise StateError(f"the RunEngine cannot go from {current.value!r} to {new.value!r}")
    return new
