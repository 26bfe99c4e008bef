"""What a relay hands to a destination: the contract between the outbox and its sinks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from acq import AcqError

__all__ = ["Outgoing", "Sink", "SinkError"]


class SinkError(AcqError):
    """A destination refused or could not take documents; the message names its URL."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One committed document on its way out.

    Attributes:
        run_uid: the uid of the run (its Start's uid).
        index: the document's number in its run (the Start is 0; each Event of a packed
            row counts as one), as ``Run.documents(index)`` gives it.
        name: the document's name ("start", "descriptor", "event", "event_page", ...).
        doc: the document.
    """

    run_uid: str
    index: int
    name: str
    doc: dict[str, Any]

    @property
    def msg_id(self) -> str:
        """The id a broker de-duplicates by: ``<run_uid>:<index>``."""
        return f"{self.run_uid}:{self.index}"


class Sink(Protocol):
    """A destination of a relay.

    ``send`` returns once the destination has durably accepted every document of the
    batch (the relay then records them as acknowledged), and raises :class:`SinkError`
    otherwise (the relay retries the same batch later: a sink must take a document it
    has already accepted again without duplicating it, e.g. by ``msg_id``).
    """

    url: str

    async def open(self) -> None:
        """Connect; raises SinkError naming the URL when the destination is unreachable."""
        ...

    async def send(self, batch: list[Outgoing]) -> None:
        """Deliver ``batch`` (in order, one or more runs); see the class."""
        ...

    async def close(self) -> None:
        """Disconnect (what was acknowledged stays acknowledged)."""
        ...
