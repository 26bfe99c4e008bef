"""The plans a service offers: arguments checked against each plan's signature.

Each plan gets a pydantic model built from its signature and type hints. Devices are
named in JSON: a parameter whose type JSON cannot carry (``Any``, a device class or a
protocol, a callable), or a sequence of such, takes a device *name*, which must be one
of the configuration's devices and is replaced by the device. Other JSON values pass
into an ``Any`` parameter as they are (``scan``'s ``*args`` mixes motors and numbers);
mappings (``md``) are never searched for devices.

Then the plan function is called once, its generator dropped unstarted, so that its own
checks (``acq.PlanError`` naming the argument) refuse bad items before they are queued.
"""

from __future__ import annotations

import collections.abc as cabc
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, ConfigDict, ValidationError, create_model

__all__ = ["ItemError", "PlanCall", "PlanRegistry"]

_SCALARS: tuple[type, ...] = (str, int, float, bool, type(None))
_SEQUENCES: tuple[Any, ...] = (
    list, tuple, set, frozenset, cabc.Sequence, cabc.Iterable, cabc.Collection, cabc.Set,
)  # fmt: skip
_MAPPINGS: tuple[Any, ...] = (dict, cabc.Mapping, cabc.MutableMapping)
_VAR_ARGS = "args"
_VAR_KWARGS = "kwargs"


class ItemError(ValueError):
    """A queue item that cannot run: unknown plan, unknown device, wrong arguments."""


@dataclass(frozen=True)
class PlanCall:
    """A checked call of an offered plan, devices resolved: ``make()`` gives the plan."""

    name: str
    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    def make(self) -> Any:
        """The plan (generator) of this call."""
        return self.function(*self.args, **self.kwargs)


class PlanRegistry:
    """Offered plans and devices; checks a queue item's plan name and arguments."""

    def __init__(self, plans: Mapping[str, Callable[..., Any]], devices: Mapping[str, Any]):
        self.plans = dict(plans)
        self.devices = dict(devices)
        self._models = {name: _model(name, f, self._device) for name, f in self.plans.items()}

    def check(self, name: object, args: object, kwargs: object) -> PlanCall:
        """Check one item's plan and arguments; every problem is in one :class:`ItemError`."""
        if not isinstance(name, str) or name not in self.plans:
            offered = ", ".join(sorted(self.plans)) or "none"
            raise ItemError(f"item.name: unknown plan {name!r} (plans offered: {offered})")
        if not isinstance(args, list):
            raise ItemError(f"item.args: must be a list, not {type(args).__name__}")
        if not isinstance(kwargs, dict):
            raise ItemError(f"item.kwargs: must be an object, not {type(kwargs).__name__}")
        kw = typing.cast(dict[str, Any], kwargs)  # JSON object keys are strings
        function = self.plans[name]
        try:
            bound = inspect.signature(function).bind(*args, **kw)
        except TypeError as exc:
            raise ItemError(f"{name}: {exc}") from None
        try:
            model = self._models[name].model_validate(_named(bound))
        except ValidationError as exc:
            raise ItemError(f"{name}: {_describe(exc)}") from None
        call = _call(name, function, model)
        _try(call)
        return call

    def describe_plans(self) -> dict[str, Any]:
        """``plans/allowed``: each plan's parameters, as queueserver describes them."""
        return {name: _plan_description(name, f) for name, f in self.plans.items()}

    def describe_devices(self) -> dict[str, Any]:
        """``devices/allowed``: each device's class and abilities."""
        return {name: _device_description(d) for name, d in self.devices.items()}

    def _device(self, value: str) -> Any:
        device = self.devices.get(value)
        if device is None:
            offered = ", ".join(sorted(self.devices)) or "none"
            raise ValueError(f"unknown device {value!r} (devices offered: {offered})")
        return device


def _try(call: PlanCall) -> None:
    """Make the plan once: its own argument checks run; its generator is dropped unstarted."""
    try:
        plan = call.make()
    except Exception as exc:  # noqa: BLE001 -- the plan refused its arguments: queue nothing
        raise ItemError(f"{call.name}: {exc}") from None
    close = getattr(plan, "close", None)
    if callable(close):  # a plain generator; an async one unstarted needs nothing
        close()


def _named(bound: inspect.BoundArguments) -> dict[str, Any]:
    """Bound arguments as model fields: ``*args`` and ``**kwargs`` under fixed names."""
    named: dict[str, Any] = {}
    params = bound.signature.parameters
    for key, value in bound.arguments.items():
        kind = params[key].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            named[_VAR_ARGS] = list(value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named[_VAR_KWARGS] = value
        else:
            named[key] = value
    return named


def _call(name: str, function: Callable[..., Any], model: pydantic.BaseModel) -> PlanCall:
    """The validated model back as positional and keyword arguments of ``function``."""
    values = {key: getattr(model, key) for key in model.model_fields_set}
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    params = list(inspect.signature(function).parameters.values())
    has_var = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    for p in params:
        field_name = _field_name(p)
        if field_name not in values:
            continue
        value = values[field_name]
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            args.extend(value)
        elif p.kind is inspect.Parameter.VAR_KEYWORD:
            kwargs.update(value)
        elif p.kind is inspect.Parameter.POSITIONAL_ONLY or (
            has_var and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ):
            args.append(value)
        else:
            kwargs[p.name] = value
    return PlanCall(name, function, tuple(args), kwargs)


def _field_name(p: inspect.Parameter) -> str:
    if p.kind is inspect.Parameter.VAR_POSITIONAL:
        return _VAR_ARGS
    if p.kind is inspect.Parameter.VAR_KEYWORD:
        return _VAR_KWARGS
    return p.name


def _model(
    name: str, function: Callable[..., Any], device: Callable[[str], Any]
) -> type[pydantic.BaseModel]:
    """A pydantic model of ``function``'s parameters, device slots resolving names."""
    hints = _hints(function)
    fields: dict[str, Any] = {}
    for p in inspect.signature(function).parameters.values():
        hint = _json_type(hints.get(p.name, Any), device)
        default = ... if p.default is inspect.Parameter.empty else p.default
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            fields[_VAR_ARGS] = (list[hint], [])
        elif p.kind is inspect.Parameter.VAR_KEYWORD:
            fields[_VAR_KWARGS] = (dict[str, hint], {})
        else:
            fields[p.name] = (hint, default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return create_model(f"{name}_arguments", __config__=config, **fields)


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    """``function``'s type hints; a hint that cannot be evaluated counts as ``Any``."""
    try:
        return typing.get_type_hints(function, include_extras=True)
    except (NameError, AttributeError, TypeError):  # a TYPE_CHECKING-only name: one by one
        found: dict[str, Any] = {}
        space = getattr(function, "__globals__", {})
        for key, text in getattr(function, "__annotations__", {}).items():
            try:
                found[key] = eval(text, space) if isinstance(text, str) else text
            except (NameError, AttributeError, TypeError, SyntaxError):
                found[key] = Any
        return found


def _json_type(hint: Any, device: Callable[[str], Any]) -> Any:
    """``hint`` with every slot JSON cannot carry replaced by a device-name slot."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return Annotated[Any, AfterValidator(_names_devices(device))]
    if origin is Annotated:
        inner, *extras = typing.get_args(hint)
        return Annotated[(_json_type(inner, device), *extras)]  # pyright: ignore[reportInvalidTypeArguments]
    if origin in (typing.Union, types.UnionType):
        members = tuple(_json_type(a, device) for a in typing.get_args(hint))
        return typing.Union[members]  # noqa: UP007 -- built from a tuple
    if origin is typing.Literal or hint in _SCALARS:
        return hint
    if isinstance(hint, type) and issubclass(hint, (str, int, float)):  # enums and the like
        return hint
    if origin in _MAPPINGS or hint in _MAPPINGS:
        return dict[str, Any]
    if origin in _SEQUENCES or hint in _SEQUENCES:
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        element = _json_type(args[0], device) if len(args) == 1 else Any
        if len(args) > 1:  # a fixed tuple: each place keeps its type
            return tuple[tuple(_json_type(a, device) for a in args)]  # pyright: ignore[reportInvalidTypeArguments]
        return list[element]
    return Annotated[str, AfterValidator(device)]  # a device class, a protocol, a callable


def _names_devices(device: Callable[[str], Any]) -> Callable[[Any], Any]:
    def resolve(value: Any) -> Any:
        return device(value) if isinstance(value, str) else value

    return resolve


def _describe(exc: ValidationError) -> str:
    """Every error of a validation, each naming its field: ``detectors.0: unknown ...``."""
    parts: list[str] = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "not a parameter of this plan"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _plan_description(name: str, function: Callable[..., Any]) -> dict[str, Any]:
    doc = inspect.getdoc(function) or ""
    parameters: list[dict[str, Any]] = []
    for p in inspect.signature(function).parameters.values():
        entry: dict[str, Any] = {
            "name": p.name,
            "kind": {"name": p.kind.name, "value": int(p.kind)},
        }
        if p.annotation is not inspect.Parameter.empty:
            entry["annotation"] = {"type": str(p.annotation)}
        if p.default is not inspect.Parameter.empty:
            entry["default"] = repr(p.default)
        parameters.append(entry)
    return {
        "name": name,
        "description": doc.split("\n\n", 1)[0],
        "parameters": parameters,
        "module": getattr(function, "__module__", ""),
        "properties": {"is_generator": True},
    }


def _device_description(device: Any) -> dict[str, Any]:
    kind = typing.cast(type[object], type(device))
    return {
        "classname": kind.__name__,
        "module": kind.__module__,
        "is_readable": hasattr(device, "read") and hasattr(device, "describe"),
        "is_movable": hasattr(device, "set"),
        "is_flyable": hasattr(device, "kickoff") and hasattr(device, "complete"),
    }
