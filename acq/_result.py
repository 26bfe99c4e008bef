"""What ``await RE(plan)`` returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._dispatch import CallbackError

__all__ = ["RunResult"]


@dataclass(frozen=True)
class RunResult:
    """The outcome of one ``await RE(plan)``.

    Attributes:
        run_start_uids: uids of every run the plan opened, in order.
        exit_status: ``"success"``, ``"abort"`` or ``"fail"``.
        reason: why, when it was not a success.
        plan_result: what the plan returned (``return`` / ``yield Return(value)``).
        callback_errors: errors raised by non-critical subscribers (the scan went on).
        dropped: documents dropped per subscriber whose overflow policy is ``"drop"``.
    """

    run_start_uids: tuple[str, ...]
    exit_status: Literal["success", "abort", "fail"]
    reason: str = ""
    plan_result: Any = None
    callback_errors: Sequence[CallbackError] = ()
    dropped: dict[str, int] = field(default_factory=dict[str, int])

    @property
    def interrupted(self) -> bool:
        """True unless the plan ran to its end."""
        return self.exit_status != "success"
