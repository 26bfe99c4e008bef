"""The plans a service offers: arguments checked against each plan's signature.

Each plan gets a pydantic model built from its signature and type hints. ``Annotated``
hints add constraints (``Field(ge=0, le=10)``, ``annotated_types.Interval(...)``),
``Literal[...]`` and enums give choices, and :class:`Units` names a parameter's units;
all are enforced at submission and shown in the plan's JSON Schema
(:meth:`PlanRegistry.json_schema`, for UIs; units under the key ``units``).

Devices are named in JSON: a parameter whose type JSON cannot carry (a device class or a
protocol, a callable), or a sequence of such, takes a device *name*, which must be one
of the configuration's devices that fit the type (an instance of the class, when that
can be checked at run time) and is replaced by the device. ``Any`` takes any JSON value,
a string in it naming a device (``scan``'s ``*args`` mixes motors and numbers); mappings
(``md``) are never searched for devices.

Every problem of an item is reported at once, each naming its place: the parameter and
the path in it (``detectors.0: unknown device 'nope'``), an element of ``*args`` by its
place in the item's ``args`` (``args[3]: ...``). Only when there is none is the plan
function called once, its generator dropped unstarted, so that its own checks
(``acq.PlanError`` naming the argument) refuse bad items before they are queued.
"""

from __future__ import annotations

import collections
import collections.abc as cabc
import copy
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import pydantic
from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic.json_schema import (
    GenerateJsonSchema,
    JsonSchemaValue,
    JsonSchemaWarningKind,
)
from pydantic_core import CoreSchema

__all__ = ["ItemError", "PlanCall", "PlanRegistry", "Units"]

_SCALARS: tuple[type, ...] = (bool, str, int, float, type(None))  # bool before int
_SEQUENCES: tuple[Any, ...] = (
    list, tuple, set, frozenset, cabc.Sequence, cabc.Iterable, cabc.Collection, cabc.Set,
)  # fmt: skip
_MAPPINGS: tuple[Any, ...] = (dict, cabc.Mapping, cabc.MutableMapping)
_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
_KEYWORD = (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)


class ItemError(ValueError):
    """A queue item that cannot run: unknown plan, unknown device, wrong arguments."""


@dataclass(frozen=True)
class Units:
    """The units of a plan parameter: ``Annotated[float, Units("mm")]``.

    Information for people and UIs, not a conversion: the value reaches the plan as
    given. It appears in the parameter's JSON Schema under the key ``units`` and in
    :meth:`PlanRegistry.describe_plans`.

    Args:
        symbol: the units, as written in Event descriptors' data keys (``"mm"``, ``"s"``).
    """

    symbol: str

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:  # pyright: ignore[reportUnnecessaryIsInstance]
            raise TypeError(f"Units(symbol): a non-empty string is needed, not {self.symbol!r}")

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "units": self.symbol}


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
        self._models = {name: _model(name, f, self.devices) for name, f in self.plans.items()}
        self._schemas: dict[str, dict[str, Any]] = {}
        self._descriptions: dict[str, dict[str, Any]] = {}

    def check(self, name: object, args: object, kwargs: object) -> PlanCall:
        """Check one item's plan and arguments; every problem is in one :class:`ItemError`."""
        function = self._plan(name, "item.name")
        if not isinstance(args, list):
            raise ItemError(f"item.args: must be a list, not {type(args).__name__}")
        if not isinstance(kwargs, dict):
            raise ItemError(f"item.kwargs: must be an object, not {type(kwargs).__name__}")
        kw = typing.cast(dict[str, Any], kwargs)  # JSON object keys are strings
        plan = typing.cast(str, name)
        params = list(inspect.signature(function).parameters.values())
        named, problems = _bind(plan, params, typing.cast(list[Any], args), kw)
        try:
            model = self._models[plan].model_validate(named)
        except ValidationError as exc:
            problems.extend(_describe(exc, params))
            model = None
        if model is None or problems:  # the plan's own checks run only on valid arguments
            raise ItemError(f"{plan}: {'; '.join(problems)}")
        call = _call(plan, function, params, model)
        _try(call)
        return call

    def json_schema(self, name: str) -> dict[str, Any]:
        """The JSON Schema of plan ``name``'s parameters, for UIs building a queue item.

        One property per parameter (``*args`` an array, ``**kwargs`` an object), each with
        ``kind`` (as :class:`inspect.Parameter` names it: a ``POSITIONAL_ONLY`` or
        ``VAR_POSITIONAL`` one goes in the item's ``args``), its constraints (``minimum``,
        ``maximum``, ``enum``, ...), ``units`` and its docstring description. A device
        slot is a string whose ``enum`` is the names of the configured devices that fit.

        Raises:
            ItemError: ``name`` is not an offered plan.
        """
        self._plan(name, "name")
        if name not in self._schemas:
            self._schemas[name] = _schema(name, self.plans[name], self._models[name])
        return copy.deepcopy(self._schemas[name])

    def describe_plans(self) -> dict[str, Any]:
        """``plans/allowed``: each plan's parameters, as queueserver describes them.

        Beside queueserver's keys, each plan has its parameters' JSON Schema under
        ``json_schema`` (see :meth:`json_schema`).
        """
        if len(self._descriptions) < len(self.plans):  # made once: ~10 ms a plan
            self._descriptions = {name: self._plan_description(name) for name in self.plans}
        return copy.deepcopy(self._descriptions)

    def describe_devices(self) -> dict[str, Any]:
        """``devices/allowed``: each device's class and abilities."""
        return {name: _device_description(d) for name, d in self.devices.items()}

    def _plan(self, name: object, where: str) -> Callable[..., Any]:
        if not isinstance(name, str) or name not in self.plans:
            offered = ", ".join(sorted(self.plans)) or "none"
            raise ItemError(f"{where}: unknown plan {name!r} (plans offered: {offered})")
        return self.plans[name]

    def _plan_description(self, name: str) -> dict[str, Any]:
        function = self.plans[name]
        schema = self.json_schema(name)
        doc = inspect.getdoc(function) or ""
        hints = {k: _queueserver_annotation(h, self.devices) for k, h in _hints(function).items()}
        parameters = [
            _parameter_description(p, hints.get(p.name), schema["properties"].get(p.name, {}))
            for p in inspect.signature(function).parameters.values()
        ]
        return {
            "name": name,
            "description": doc.split("\n\n", 1)[0],
            "parameters": parameters,
            "module": getattr(function, "__module__", ""),
            "properties": {"is_generator": True},
            "json_schema": schema,
        }


def _try(call: PlanCall) -> None:
    """Make the plan once: its own argument checks run; its generator is dropped unstarted."""
    try:
        plan = call.make()
    except Exception as exc:  # noqa: BLE001 -- the plan refused its arguments: queue nothing
        raise ItemError(f"{call.name}: {exc}") from None
    close = getattr(plan, "close", None)
    if callable(close):  # a plain generator; an async one unstarted needs nothing
        close()


def _bind(
    plan: str, params: list[inspect.Parameter], args: list[Any], kwargs: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The item's arguments by parameter name (as Python binds them), and every misfit."""
    problems: list[str] = []
    positional = [p for p in params if p.kind in _POSITIONAL]
    var = {p.kind: p for p in params if p.kind in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)}
    named: dict[str, Any] = {p.name: value for p, value in zip(positional, args, strict=False)}
    if len(args) > len(positional):
        if _P.VAR_POSITIONAL in var:
            named[var[_P.VAR_POSITIONAL].name] = args[len(positional) :]
        else:
            problems.append(
                f"args[{len(positional)}]: too many positional arguments "
                f"({plan} takes at most {len(positional)}, got {len(args)})"
            )
    keywords = {p.name for p in params if p.kind in _KEYWORD}
    extra: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in keywords and key in named:
            problems.append(f"{key}: given twice, in args and in kwargs")
        elif key in keywords:
            named[key] = value
        elif _P.VAR_KEYWORD in var:
            extra[key] = value
        elif any(p.name == key for p in positional):
            problems.append(f"{key}: positional-only, give it in args")
        else:
            offered = ", ".join(p.name for p in params if p.kind in _KEYWORD) or "none"
            problems.append(
                f"{key}: got an unexpected keyword argument {key!r} (keywords of {plan}: {offered})"
            )
    if extra:
        named[var[_P.VAR_KEYWORD].name] = extra
    return named, problems


def _call(
    name: str, function: Callable[..., Any], params: list[inspect.Parameter], model: Any
) -> PlanCall:
    """The validated model back as positional and keyword arguments of ``function``."""
    given = model.model_fields_set
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    has_var = any(p.kind is _P.VAR_POSITIONAL for p in params)
    for i, p in enumerate(params):
        if _field(i) not in given:
            continue
        value = getattr(model, _field(i))
        if p.kind is _P.VAR_POSITIONAL:
            args.extend(value)
        elif p.kind is _P.VAR_KEYWORD:
            kwargs.update(value)
        elif p.kind is _P.POSITIONAL_ONLY or (has_var and p.kind is _P.POSITIONAL_OR_KEYWORD):
            args.append(value)
        else:
            kwargs[p.name] = value
    return PlanCall(name, function, tuple(args), kwargs)


def _field(index: int) -> str:
    """The model's name of parameter ``index`` (its alias is the parameter's name)."""
    return f"p{index}"


def _model(
    name: str, function: Callable[..., Any], devices: Mapping[str, Any]
) -> type[pydantic.BaseModel]:
    """A pydantic model of ``function``'s parameters, device slots resolving names."""
    hints = _hints(function)
    docs = _arg_docs(inspect.getdoc(function) or "")
    fields: dict[str, Any] = {}
    for i, p in enumerate(inspect.signature(function).parameters.values()):
        hint = _json_type(hints.get(p.name, Any), devices)
        default: Any = ... if p.default is _P.empty else p.default
        if p.kind is _P.VAR_POSITIONAL:
            hint, default = list[hint], []
        elif p.kind is _P.VAR_KEYWORD:
            hint, default = dict[str, hint], {}
        info = Field(
            default,
            alias=p.name,
            description=docs.get(p.name),
            json_schema_extra={"kind": p.kind.name},
        )
        fields[_field(i)] = (hint, info)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return create_model(name, __config__=config, **fields)


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


def _json_type(hint: Any, devices: Mapping[str, Any]) -> Any:
    """``hint`` with every slot JSON cannot carry replaced by a device-name slot."""
    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        return _any_slot(devices)
    if origin is Annotated:
        inner, *extras = typing.get_args(hint)
        return Annotated[(_json_type(inner, devices), *extras)]  # pyright: ignore[reportInvalidTypeArguments]
    if origin in (typing.Union, types.UnionType):
        members = tuple(_json_type(a, devices) for a in typing.get_args(hint))
        return typing.Union[members]  # noqa: UP007 -- built from a tuple
    if origin is typing.Literal or hint in _SCALARS:
        return hint
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint
    if isinstance(hint, type) and issubclass(hint, (str, int, float)):  # numpy.float64, ...
        return next(base for base in _SCALARS if issubclass(hint, base))
    if origin in _MAPPINGS or hint in _MAPPINGS:
        return dict[str, Any]
    if origin in _SEQUENCES or hint in _SEQUENCES:
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(args) > 1:  # a fixed tuple: each place keeps its type
            return tuple[tuple(_json_type(a, devices) for a in args)]  # pyright: ignore[reportInvalidTypeArguments]
        return list[_json_type(args[0], devices) if args else _any_slot(devices)]
    return _device_slot(hint, devices)  # a device class, a protocol, a callable


def _device_slot(hint: Any, devices: Mapping[str, Any]) -> Any:
    """A device name, of a device that is an instance of ``hint`` if that can be checked."""
    fits, what = _fitting(hint, devices)

    def resolve(value: str) -> Any:
        device = _device(devices, value)
        if what is not None and value not in fits:
            raise ValueError(
                f"device {value!r} is not a {what} (devices that fit: {', '.join(fits) or 'none'})"
            )
        return device

    return Annotated[str, AfterValidator(resolve), WithJsonSchema({"type": "string", "enum": fits})]


def _fitting(hint: Any, devices: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """The names of the devices that are instances of ``hint``, and its name (None: any)."""
    kind = typing.get_origin(hint) or hint
    try:
        fits = sorted(n for n, d in devices.items() if isinstance(d, kind))
    except TypeError:  # not checkable at run time (a plain protocol, a TypeVar): any device
        return sorted(devices), None
    return fits, getattr(kind, "__name__", str(kind))


def _any_slot(devices: Mapping[str, Any]) -> Any:
    """Any JSON value; a string must name a device, and is replaced by it."""

    def resolve(value: Any) -> Any:
        return _device(devices, value) if isinstance(value, str) else value

    schema = {"anyOf": [{"type": "string", "enum": sorted(devices)}, {"not": {"type": "string"}}]}
    return Annotated[Any, AfterValidator(resolve), WithJsonSchema(schema)]


def _device(devices: Mapping[str, Any], name: str) -> Any:
    device = devices.get(name)
    if device is None:
        offered = ", ".join(sorted(devices)) or "none"
        raise ValueError(f"unknown device {name!r} (devices offered: {offered})")
    return device


def _describe(exc: ValidationError, params: list[inspect.Parameter]) -> list[str]:
    """Every error of a validation, each naming its place: ``detectors.0: unknown ...``.

    A value that fits no member of a union gets one entry, the members' reasons joined
    by "or" (in these models, only a union puts a name inside a parameter's path: every
    mapping but ``**kwargs`` takes any value).
    """
    skip = sum(p.kind in _POSITIONAL for p in params)  # *args starts at args[skip]
    var_positional = {p.name for p in params if p.kind is _P.VAR_POSITIONAL}
    var_keyword = {p.name for p in params if p.kind is _P.VAR_KEYWORD}
    found: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        head, *rest = error["loc"] or ("arguments",)
        if head in var_positional and rest and isinstance(rest[0], int):
            head, rest = f"args[{skip + rest[0]}]", rest[1:]
        elif head in var_keyword and rest:
            head, rest = rest[0], rest[1:]  # a key of **kwargs: named as given
        where = ".".join(str(p) for p in (head, *rest) if not isinstance(p, str) or p is head)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "required, and not given"
        reasons = found.setdefault(where, [])
        if message not in reasons:
            reasons.append(message)
    return [f"{where}: {', or '.join(reasons)}" for where, reasons in found.items()]


class _Schema(GenerateJsonSchema):
    """Pydantic's JSON Schema, quiet about what JSON cannot show (a default, a class)."""

    ignored_warning_kinds: set[JsonSchemaWarningKind] = {  # noqa: RUF012 -- pydantic's attribute
        "skipped-choice",
        "non-serializable-default",
    }

    def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> JsonSchemaValue:
        return {}  # a type JSON cannot show (a numpy scalar class): any value


def _schema(
    name: str, function: Callable[..., Any], model: type[pydantic.BaseModel]
) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, schema_generator=_Schema)
    doc = inspect.getdoc(function) or ""
    schema["title"] = name
    if doc:
        schema["description"] = doc.split("\n\n", 1)[0]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


_ARGS_SECTION = re.compile(r"^(Args|Arguments|Parameters):\s*$")
_ARG_ENTRY = re.compile(r"^\*{0,2}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def _arg_docs(doc: str) -> dict[str, str]:
    """Each parameter's description from a Google-style ``Args:`` section."""
    found: dict[str, str] = {}
    lines = doc.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if _ARGS_SECTION.match(line)), None)
    if start is None:
        return found
    indent: int | None = None
    current = ""
    for line in lines[start:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth == 0:
            break  # the next section
        indent = depth if indent is None else indent
        entry = _ARG_ENTRY.match(line.strip()) if depth == indent else None
        if entry:
            current = entry.group(1) or ""
            found[current] = entry.group(2) or ""
        elif current and depth > indent:
            found[current] = f"{found[current]} {line.strip()}".strip()
    return found


def _parameter_description(
    p: inspect.Parameter, annotation: dict[str, Any] | None, schema: Mapping[str, Any]
) -> dict[str, Any]:
    """A parameter as queueserver describes it (``min``/``max`` strings), plus ``units``."""
    entry: dict[str, Any] = {"name": p.name, "kind": {"name": p.kind.name, "value": int(p.kind)}}
    if "description" in schema:
        entry["description"] = schema["description"]
    if annotation is not None:
        entry["annotation"] = annotation
    if p.default is not _P.empty:  # as JSON has it where it can (an enum member's value)
        entry["default"] = repr(schema.get("default", p.default))
    for place in (schema, *schema.get("anyOf", ())):
        for key, keywords in (("min", ("minimum", "exclusiveMinimum")),
                              ("max", ("maximum", "exclusiveMaximum")),
                              ("units", ("units",))):  # fmt: skip
            for keyword in keywords:
                if keyword in place and key not in entry:
                    entry[key] = str(place[keyword])
    return entry


_QUEUESERVER_SPACE: Mapping[str, Any] = {
    "typing": typing, "collections": collections, "NoneType": type(None),
}  # fmt: skip


def _queueserver_annotation(hint: Any, devices: Mapping[str, Any]) -> dict[str, Any] | None:
    """``hint`` encoded as queueserver does, or None where it cannot be (then it has none).

    queueserver's client rebuilds the type by ``eval`` of ``type`` with ``typing`` and
    ``collections`` in scope; a device class or an enum of strings is a name whose
    choices are listed under ``devices`` or ``enums``. ``Annotated`` extras are dropped
    (the bounds are the parameter's ``min`` and ``max``).
    """
    while typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        if all(isinstance(v, str) for v in values):
            return {"type": hint.__name__, "enums": {hint.__name__: values}}
        return None
    plain = typing.cast(Any, hint)  # narrowed to type[Unknown] above
    text = plain.__name__ if plain in _SCALARS[:-1] else repr(plain)
    try:
        if eval(text, dict(_QUEUESERVER_SPACE)) == hint:
            return {"type": text}
    except Exception:  # noqa: BLE001 -- no spelling queueserver can read back
        pass
    fits, what = _fitting(hint, devices)
    if what is not None and what.isidentifier() and isinstance(hint, type):
        return {"type": what, "devices": {what: fits}}
    return None


def _device_description(device: Any) -> dict[str, Any]:
    kind = typing.cast(type[object], type(device))
    return {
        "classname": kind.__name__,
        "module": kind.__module__,
        "is_readable": hasattr(device, "read") and hasattr(device, "describe"),
        "is_movable": hasattr(device, "set"),
        "is_flyable": hasattr(device, "kickoff") and hasattr(device, "complete"),
    }
