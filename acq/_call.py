"""What ``RE(plan)`` returns: a coroutine that says what to do when it is not awaited.

``RE(plan)`` runs nothing by itself: the plan runs when the result is awaited
(``await RE(plan)``, ``asyncio.run(...)``, ``asyncio.create_task(...)``). Typed at a
prompt without ``await``, a plain coroutine shows ``<coroutine object
RunEngine.__call__ at 0x...>`` and Python warns, much later, that it was never awaited.
:class:`RunCall` is that coroutine (it is one to asyncio: ``send``, ``throw``, ``close``,
``__await__``) with a ``repr`` that says to write ``await RE(...)``, and a warning that
names the plan if it is dropped without ever running.
"""

from __future__ import annotations

import warnings
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

__all__ = ["RunCall"]

T = TypeVar("T")


class RunCall(Coroutine[Any, Any, T], Generic[T]):
    """The coroutine of one ``RE(plan)`` call; awaiting it runs the plan."""

    __slots__ = ("_coro", "_plan", "_started")

    def __init__(self, coro: Coroutine[Any, Any, T], plan: str) -> None:
        self._coro = coro
        self._plan = plan
        self._started = False

    def __await__(self) -> Generator[Any, None, T]:
        self._started = True
        return self._coro.__await__()

    def send(self, value: Any) -> Any:
        """Advance the call (what asyncio does with a coroutine)."""
        self._started = True
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        """Raise an exception in the call (what asyncio does with a coroutine)."""
        self._started = True
        return self._coro.throw(*args)

    def close(self) -> None:
        """Close the call without running it (no warning)."""
        self._started = True
        self._coro.close()

    def __repr__(self) -> str:
        if self._started:
            return f"<RE({self._plan}) running or done>"
        return (
            f"<RE({self._plan}): not run. Write 'await RE(...)' to run the plan "
            "(in a script: asyncio.run(main()) with 'await RE(...)' inside main)>"
        )

    def __del__(self) -> None:
        if self._started:
            return
        self._coro.close()  # instead of Python's "coroutine ... was never awaited"
        warnings.warn(
            f"RE({self._plan}) was never awaited, so the plan did not run: write 'await RE(...)'",
            RuntimeWarning,
            stacklevel=2,
        )
