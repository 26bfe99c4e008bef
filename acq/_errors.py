"""acq's exceptions.

Every error acq raises on purpose derives from :class:`AcqError`; a bug in acq itself
raises :class:`AcqInternalError` instead, so it is never mistaken for bad input::

    * AcqError
      + PlanError             -- the plan yielded something invalid
        + UnknownCommandError -- a message whose command nobody handles
        + IllegalMessageSequence  -- e.g. save without create, create outside a run
        + UnsupportedMessageError -- e.g. collect(stream=True); also a RuntimeError
      + DeviceError           -- an object lacks the method a message needs
        + DataKeyCollisionError -- one data key in two streams; also a RuntimeError
      + StateError            -- e.g. resume while idle, RE(...) while already running
      + MetadataError         -- metadata rejected before the run opened
      + SubscriberError       -- a critical subscriber failed; the run fails with it
      + WaitTimeoutError      -- a wait group or wait_for did not finish within its timeout
      + FailedStatus          -- a status reported failure
      + RunEngineInterrupted  -- the run was paused, not lost (see RE.resume())
      + RunAborted            -- RE.abort()/RE.halt() ended the plan (exit_status 'abort')
      + CatalogError          -- (acq.catalog) a run cannot be stored or found
    * RequestStop, RequestAbort -- thrown into a plan by RE.stop()/RE.abort() so that its
                                   cleanup runs; bluesky's own classes (see below)
    * AcqInternalError        -- a bug in acq; please report it

Where bluesky has an exception of the same meaning (``FailedStatus``,
``IllegalMessageSequence``, ``RunEngineInterrupted``, ``InvalidCommand`` for an unknown
command, ``WaitForTimeoutError`` for a wait's timeout), acq's also derives from it, so a
bluesky plan's ``except`` clause catches acq's.
``RequestStop`` and ``RequestAbort`` are bluesky's own classes, subclasses of ``Exception`` as
in bluesky: bluesky's ``run_wrapper`` closes its run as a success on a stop (and as an
abort on an abort) by catching them, and plans catch them to clean up.

Messages say what happened and what to do, naming the message, device, key or argument.
"""

from __future__ import annotations

from typing import Any

# bluesky's plans catch these by bluesky's classes (``except FailedStatus:`` to retry a
# move); acq's own errors derive from them so those clauses keep working on acq. Only the
# exception classes are taken from bluesky, never its engine (WaitForTimeoutError is
# defined in bluesky.run_engine, which ``import bluesky`` loads anyway: only the class).
from bluesky.run_engine import WaitForTimeoutError as _BlueskyWaitForTimeoutError
from bluesky.utils import FailedStatus as _BlueskyFailedStatus
from bluesky.utils import IllegalMessageSequence as _BlueskyIllegalMessageSequence
from bluesky.utils import InvalidCommand as _BlueskyInvalidCommand
from bluesky.utils import NoReplayAllowed as NoReplayAllowed
from bluesky.utils import RequestAbort as _BlueskyRequestAbort
from bluesky.utils import RequestStop as _BlueskyRequestStop
from bluesky.utils import RunEngineInterrupted as _BlueskyRunEngineInterrupted

__all__ = [
    "RequestAbort",
    "RequestStop",
    "RunAborted",
    "AcqError",
    "AcqInternalError",
    "DataKeyCollisionError",
    "DeviceError",
    "FailedStatus",
    "IllegalMessageSequence",
    "NoReplayAllowed",
    "MetadataError",
    "PlanError",
    "RunEngineInterrupted",
    "StateError",
    "SubscriberError",
    "UnknownCommandError",
    "UnsupportedMessageError",
    "WaitTimeoutError",
]


class AcqError(Exception):
    """Base class of every error acq raises on purpose."""


class PlanError(AcqError):
    """The plan yielded something the engine cannot execute."""


class UnknownCommandError(PlanError, _BlueskyInvalidCommand):
    """A message's command has no registered handler (a ``KeyError``, as in bluesky)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""  # not KeyError's quoted repr


class IllegalMessageSequence(PlanError, _BlueskyIllegalMessageSequence):
    """A message arrived where it is not allowed (``save`` without ``create``, ...)."""


class UnsupportedMessageError(PlanError, RuntimeError):
    """A message asks for what acq, as bluesky, no longer does (``collect(stream=True)``).

    Also a ``RuntimeError``: bluesky raises one there.
    """


class DeviceError(AcqError, RuntimeError):
    """A device cannot do what a message asks (missing method, bad return value).

    A ``RuntimeError`` too: what bluesky raises when a device returns something unusable.
    """


class DataKeyCollisionError(DeviceError, RuntimeError):
    """A device names the same data key in two streams (``describe_collect()``).

    Also a ``RuntimeError``: bluesky raises one there.
    """


class StateError(AcqError):
    """The engine is not in a state that allows the request."""


class MetadataError(AcqError, ValueError):
    """Metadata was rejected before any document of the run was emitted."""


class SubscriberError(AcqError):
    """A critical subscriber failed; the run fails rather than lose data silently."""


class WaitTimeoutError(AcqError, _BlueskyWaitForTimeoutError):
    """A ``wait`` message's group, or a ``wait_for``'s awaitables, did not finish in time.

    A ``TimeoutError``, and bluesky's ``WaitForTimeoutError`` (which bluesky plans catch).
    """


class FailedStatus(AcqError, _BlueskyFailedStatus):
    """A status object reported failure; the device's own error is its ``__cause__``.

    The plan sees this whatever the device raised, as in bluesky, so that a plan can
    catch a failed move or acquisition (to retry it, say) without knowing the device.

    Attributes:
        status: the status that failed (None if it was not a status object).
    """

    def __init__(self, message: str, status: Any = None) -> None:
        super().__init__(message)
        self.status = status


class RunEngineInterrupted(AcqError, _BlueskyRunEngineInterrupted):
    """The plan was paused; the run is kept. Resume, stop or abort it."""


class RunAborted(AcqError):
    """The plan was aborted or halted; every open run got a Stop with exit_status 'abort'.

    Attributes:
        result: the :class:`~acq.RunResult` of the aborted call.
    """

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class RequestStop(_BlueskyRequestStop):
    """Thrown into a plan by ``RE.stop()``: clean up and end; the runs count as success."""


class RequestAbort(_BlueskyRequestAbort):
    """Thrown into a plan by ``RE.abort()`` (or a cancellation): clean up and end."""


class AcqInternalError(Exception):
    """A bug in acq. Please report it with the traceback."""
