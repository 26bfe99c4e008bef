"""acq's exceptions.

Every error acq raises on purpose derives from :class:`AcqError`; a bug in acq itself
raises :class:`AcqInternalError` instead, so it is never mistaken for bad input::

    * AcqError
      + PlanError             -- the plan yielded something invalid
        + UnknownCommandError -- a message whose command nobody handles
        + IllegalMessageSequence  -- e.g. save without create, create outside a run
      + DeviceError           -- an object lacks the method a message needs
      + StateError            -- e.g. resume while idle, RE(...) while already running
      + MetadataError         -- metadata rejected before the run opened
      + SubscriberError       -- a critical subscriber failed; the run fails with it
      + WaitTimeoutError      -- a wait group did not finish within its timeout
      + FailedStatus          -- a status reported failure
      + RunEngineInterrupted  -- the run was paused, not lost (see RE.resume())
      + RunAborted            -- RE.abort()/RE.halt() ended the plan (exit_status 'abort')
    * RequestStop, RequestAbort -- BaseExceptions thrown into a plan so that its cleanup
                                   (finally) runs; a plain ``except Exception`` cannot
                                   swallow them
    * AcqInternalError        -- a bug in acq; please report it

Messages say what happened and what to do, naming the message, device, key or argument.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RequestAbort",
    "RequestStop",
    "RunAborted",
    "AcqError",
    "AcqInternalError",
    "DeviceError",
    "FailedStatus",
    "IllegalMessageSequence",
    "MetadataError",
    "PlanError",
    "RunEngineInterrupted",
    "StateError",
    "SubscriberError",
    "UnknownCommandError",
    "WaitTimeoutError",
]


class AcqError(Exception):
    """Base class of every error acq raises on purpose."""


class PlanError(AcqError):
    """The plan yielded something the engine cannot execute."""


class UnknownCommandError(PlanError):
    """A message's command has no registered handler."""


class IllegalMessageSequence(PlanError):
    """A message arrived where it is not allowed (``save`` without ``create``, ...)."""


class DeviceError(AcqError):
    """A device cannot do what a message asks (missing method, bad return value)."""


class StateError(AcqError):
    """The engine is not in a state that allows the request."""


class MetadataError(AcqError, ValueError):
    """Metadata was rejected before any document of the run was emitted."""


class SubscriberError(AcqError):
    """A critical subscriber failed; the run fails rather than lose data silently."""


class WaitTimeoutError(AcqError, TimeoutError):
    """A ``wait`` message's group did not finish within its timeout."""


class FailedStatus(AcqError):
    """A status object reported failure."""


class RunEngineInterrupted(AcqError):
    """The plan was paused; the run is kept. Resume, stop or abort it."""


class RunAborted(AcqError):
    """The plan was aborted or halted; every open run got a Stop with exit_status 'abort'.

    Attributes:
        result: the :class:`~acq.RunResult` of the aborted call.
    """

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class RequestStop(BaseException):
    """Thrown into a plan by ``RE.stop()``: clean up and end; the runs count as success."""


class RequestAbort(BaseException):
    """Thrown into a plan by ``RE.abort()`` (or a cancellation): clean up and end."""


class AcqInternalError(Exception):
    """A bug in acq. Please report it with the traceback."""
