"""The message: what a plan yields to ask the engine for something.

:class:`Msg` has bluesky's fields and field order (command, obj, args, kwargs, run), so a
``bluesky.utils.Msg`` and an ``acq.Msg`` are interchangeable wherever the engine reads
them: both are tuples whose fields the engine reads by name.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

__all__ = ["Msg"]


class _MsgFields(NamedTuple):
    command: str
    obj: Any
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    run: Hashable | None


class Msg(_MsgFields):
    """One instruction for the RunEngine.

    ``Msg(command, obj=None, *args, run=None, **kwargs)``, as in bluesky:

    >>> Msg("set", "motor", 5, group="A")
    Msg('set', obj='motor', args=(5,), kwargs={'group': 'A'}, run=None)
    """

    __slots__ = ()

    def __new__(
        cls, command: str, obj: Any = None, *args: Any, run: Hashable | None = None, **kwargs: Any
    ) -> Msg:
        # tuple.__new__ directly: the namedtuple's own __new__ is one more Python call
        # per message, and plans build one Msg per message
        return tuple.__new__(cls, (command, obj, args, kwargs, run))  # pyright: ignore[reportUnknownMemberType]

    def __repr__(self) -> str:
        return (
            f"Msg({self.command!r}, obj={self.obj!r}, args={self.args!r}, "
            f"kwargs={dict(self.kwargs)!r}, run={self.run!r})"
        )
