"""Plan parameters from type hints: constraints, units and choices checked and served.

Each offered plan's signature gives a pydantic model: ``Annotated`` constraints, enums
and ``Literal`` choices are enforced when an item is submitted (every problem named at
once, the plan not called), and show in the plan's JSON Schema for UIs.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, Protocol

import acq.plans
import annotated_types as at
import httpx
import jsonschema
import numpy as np
import pytest
from acq.devices.sim import Motor, SimBeamline
from acq.plans import count
from acq.service import ItemError, PlanRegistry, ServiceConfig, Units
from bluesky_queueserver.manager.profile_ops import validate_plan
from pydantic import Field

CALLS: list[dict[str, Any]] = []


class Speed(enum.Enum):
    SLOW = "slow"
    FAST = "fast"


class Reader(Protocol):  # not runtime-checkable: any device fits
    def read(self) -> Any: ...


def move_to(
    motor: Motor,
    position: Annotated[float, Field(ge=-10, le=10), Units("mm")],
    settle: Annotated[float, at.Interval(gt=0, lt=5), Units("s")] = 1.0,
    *,
    repeats: Annotated[int, at.Ge(1), at.Le(100)] = 1,
    speed: Speed = Speed.SLOW,
    mode: Literal["step", "fly"] = "step",
    reader: Reader | None = None,
    md: Mapping[str, Any] | None = None,
) -> Any:
    """Move a motor to a position, then read it.

    Args:
        motor: the motor to move.
        position: where to go,
            in the motor's units.
        settle: seconds to wait there.
        repeats: readings to take.
        speed: how fast to go.
        mode: step or fly.
        reader: what to read instead of the motor.
        md: metadata merged into the Start document.
    """
    CALLS.append({"motor": motor, "position": position, "speed": speed})
    return count([motor], num=repeats, md=md)


def varied(
    first: Annotated[int, at.Ge(0)],
    /,
    *args: Annotated[float, at.Le(1)],
    **kwargs: Annotated[int, at.Ge(0)],
) -> Any:
    """A plan with every kind of parameter."""
    CALLS.append({"first": first, "args": args, "kwargs": kwargs})
    return iter(())


_NO_DEFAULT = object()
_ONE = np.float64(1.0)


def odd_types(level: np.float64 = _ONE, tag: object = _NO_DEFAULT) -> Any:
    """Hints and defaults JSON cannot show."""
    return iter(())


@pytest.fixture(autouse=True)
def _no_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


@pytest.fixture
def registry(bl: SimBeamline) -> PlanRegistry:
    plans = {"move_to": move_to, "varied": varied, "count": count, "odd_types": odd_types}
    return PlanRegistry(plans, bl.by_name())


@pytest.fixture
def config(bl: SimBeamline, tmp_path: Any) -> ServiceConfig:
    """Overrides conftest's: the service offers ``move_to`` beside ``count``."""
    return ServiceConfig(
        devices=bl.by_name(),
        plans={"count": count, "move_to": move_to},
        catalog=str(tmp_path / "catalog.db"),
    )


def refusal(registry: PlanRegistry, name: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    with pytest.raises(ItemError) as info:
        registry.check(name, args, kwargs)
    return str(info.value)


def test_constraints_units_and_choices_appear_in_the_json_schema(registry: PlanRegistry) -> None:
    schema = registry.json_schema("move_to")
    jsonschema.Draft202012Validator.check_schema(schema)
    props = schema["properties"]
    assert schema["title"] == "move_to"
    assert schema["description"] == "Move a motor to a position, then read it."
    assert schema["required"] == ["motor", "position"]
    assert props["motor"] == {**props["motor"], "type": "string", "enum": ["x", "y"]}
    assert (props["position"]["minimum"], props["position"]["maximum"]) == (-10, 10)
    assert props["position"]["units"] == "mm"
    assert props["position"]["description"] == "where to go, in the motor's units."
    assert (props["settle"]["exclusiveMinimum"], props["settle"]["exclusiveMaximum"]) == (0, 5)
    assert (props["settle"]["units"], props["settle"]["default"]) == ("s", 1.0)
    assert (props["repeats"]["minimum"], props["repeats"]["maximum"]) == (1, 100)
    speed = schema["$defs"][props["speed"]["$ref"].rsplit("/", 1)[1]]
    assert (speed["enum"], props["speed"]["default"]) == (["slow", "fast"], "slow")
    assert props["mode"]["enum"] == ["step", "fly"]
    reader = props["reader"]["anyOf"][0]
    assert reader["enum"] == sorted(registry.devices)  # a plain protocol: any device
    assert [props[p]["kind"] for p in ("motor", "repeats")] == [
        "POSITIONAL_OR_KEYWORD",
        "KEYWORD_ONLY",
    ]
    assert schema["additionalProperties"] is False


def test_json_schema_accepts_what_check_accepts_and_refuses_what_it_refuses(
    registry: PlanRegistry,
) -> None:
    validator = jsonschema.Draft202012Validator(registry.json_schema("move_to"))
    good = {"motor": "x", "position": 2.5, "speed": "fast", "mode": "fly", "reader": "det"}
    assert list(validator.iter_errors(good)) == []
    registry.check("move_to", [], good)
    bad = {"motor": "det", "position": 11, "settle": 0, "repeats": 0, "mode": "jog"}
    assert {e.path[0] for e in validator.iter_errors(bad)} == set(bad)
    message = refusal(registry, "move_to", [], bad)
    assert all(f"{name}: " in message for name in bad)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"position": 11}, "position: Input should be less than or equal to 10"),
        ({"position": -10.5}, "position: Input should be greater than or equal to -10"),
        ({"settle": 0}, "settle: Input should be greater than 0"),
        ({"settle": 5}, "settle: Input should be less than 5"),
        ({"repeats": 0}, "repeats: Input should be greater than or equal to 1"),
        ({"repeats": 101}, "repeats: Input should be less than or equal to 100"),
        ({"speed": "medium"}, "speed: Input should be 'slow' or 'fast'"),
        ({"mode": "jog"}, "mode: Input should be 'step' or 'fly'"),
        ({"motor": "det"}, "motor: device 'det' is not a Motor (devices that fit: x, y)"),
        ({"motor": "nope"}, "motor: unknown device 'nope' (devices offered: area_detector"),
        ({"reader": "nope"}, "reader: unknown device 'nope'"),
    ],
)
def test_a_value_outside_its_bounds_is_refused_naming_field_and_bound(
    registry: PlanRegistry, kwargs: dict[str, Any], named: str
) -> None:
    message = refusal(registry, "move_to", [], {"motor": "x", "position": 1, **kwargs})
    assert message.startswith("move_to: ")
    assert named in message
    assert CALLS == []


def test_a_valid_item_resolves_devices_and_enum_members(
    registry: PlanRegistry, bl: SimBeamline
) -> None:
    call = registry.check("move_to", ["x", 10], {"speed": "fast", "reader": "det"})
    assert call.args == ()
    assert call.kwargs == {"motor": bl.x, "position": 10, "speed": Speed.FAST, "reader": bl.det}
    assert [{"motor": bl.x, "position": 10, "speed": Speed.FAST}] == CALLS  # the plan's check
    call.make()
    assert len(CALLS) == 2


def test_every_problem_is_named_at_once_and_the_plan_is_not_called(
    registry: PlanRegistry,
) -> None:
    kwargs = {"position": 99, "repeats": 0, "speed": "warp", "colour": "red"}
    message = refusal(registry, "move_to", ["nope"], kwargs)
    parts = message.removeprefix("move_to: ").split("; ")
    assert len(parts) == 5
    for part in (
        "motor: unknown device 'nope'",
        "position: Input should be less than or equal to 10",
        "repeats: Input should be greater than or equal to 1",
        "speed: Input should be 'slow' or 'fast'",
        "colour: got an unexpected keyword argument 'colour'",
    ):
        assert any(p.startswith(part) for p in parts), (part, parts)
    assert CALLS == []  # the plan function runs only once the model validated


def test_the_plan_own_checks_still_refuse_valid_looking_arguments(
    registry: PlanRegistry,
) -> None:
    message = refusal(registry, "count", [["det"]], {"num": -1})
    assert message.startswith("count: ")
    assert "num" in message


def test_var_positional_elements_are_named_by_their_place_in_item_args(
    registry: PlanRegistry,
) -> None:
    message = refusal(registry, "varied", [-1, 0.5, 2, "det"], {"a": -3, "b": 1})
    assert "first: Input should be greater than or equal to 0" in message
    assert "args[2]: Input should be less than or equal to 1" in message
    assert "args[3]: Input should be a valid number" in message
    assert "a: Input should be greater than or equal to 0" in message
    assert "args[1]" not in message
    assert "b:" not in message
    call = registry.check("varied", [0, 0.5, 1], {"first": 7})  # **kwargs takes 'first'
    assert (call.args, call.kwargs) == ((0, 0.5, 1.0), {"first": 7})


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "named"),
    [
        ("move_to", ["x", 1, 1, 2], {}, "args[3]: too many positional arguments (move_to takes "
         "at most 3, got 4)"),
        ("move_to", ["x", 1], {"position": 2}, "position: given twice, in args and in kwargs"),
        ("move_to", [], {"position": 2}, "motor: required, and not given"),
        ("count", [["det"]], {"speed": 3}, "speed: got an unexpected keyword argument 'speed' "
         "(keywords of count: detectors, num, delay, per_shot, md)"),
        ("odd_types", [], {"x": 1}, "x: got an unexpected keyword argument"),
        ("count", [["det"]], {"delay": "soon"}, "delay: Input should be a valid number, unable "
         "to parse string as a number, or Input should be a valid list"),
    ],
    ids=["too-many", "twice", "missing", "unexpected", "unexpected-no-kwargs", "union"],
)  # fmt: skip
def test_misfits_of_args_and_kwargs_are_named(
    registry: PlanRegistry, name: str, args: list[Any], kwargs: dict[str, Any], named: str
) -> None:
    assert named in refusal(registry, name, args, kwargs)


def test_positional_only_given_by_keyword_is_named(bl: SimBeamline) -> None:
    def only(a: int, /, b: int = 0) -> Any:
        return iter(())

    registry = PlanRegistry({"only": only}, bl.by_name())
    assert "a: positional-only, give it in args" in refusal(registry, "only", [], {"a": 1})


def test_every_acq_plan_has_a_valid_json_schema(registry: PlanRegistry) -> None:
    plans = {
        name: getattr(acq.plans, name)
        for name in acq.plans.__all__
        if inspect.isfunction(getattr(acq.plans, name))
    }
    assert {"count", "scan", "grid_scan", "spiral", "tune_centroid"} <= set(plans)
    everything = PlanRegistry(plans, registry.devices)
    for name in plans:
        schema = everything.json_schema(name)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["title"] == name
    scan = jsonschema.Draft202012Validator(everything.json_schema("scan"))
    assert scan.is_valid({"detectors": ["det"], "args": ["x", -1, 1], "num": 5})
    assert not scan.is_valid({"detectors": ["nope"], "num": 5})
    assert not scan.is_valid({"detectors": ["det"], "num": "five"})
    assert everything.json_schema("scan")["properties"]["args"]["type"] == "array"


def test_json_schema_of_types_json_cannot_show_warns_nothing(registry: PlanRegistry) -> None:
    schema = registry.json_schema("odd_types")  # a warning would fail the test
    jsonschema.Draft202012Validator.check_schema(schema)
    assert "default" not in schema["properties"]["tag"]
    assert schema["properties"]["level"]["type"] == "number"
    call = registry.check("odd_types", [2.5], {"tag": "det"})
    assert call.kwargs == {"level": 2.5, "tag": registry.devices["det"]}


def test_json_schema_of_an_unknown_plan_is_an_item_error(registry: PlanRegistry) -> None:
    with pytest.raises(ItemError, match=r"name: unknown plan 'mv' \(plans offered: count, "):
        registry.json_schema("mv")


def test_json_schema_is_a_copy(registry: PlanRegistry) -> None:
    registry.json_schema("move_to")["properties"].clear()
    assert "position" in registry.json_schema("move_to")["properties"]


def test_describe_plans_keeps_queueserver_shape_and_adds_the_schema(
    registry: PlanRegistry,
) -> None:
    described = registry.describe_plans()["move_to"]
    assert {"name", "description", "parameters", "module", "properties"} < set(described)
    assert described["json_schema"] == registry.json_schema("move_to")
    params = {p["name"]: p for p in described["parameters"]}
    assert list(params) == list(inspect.signature(move_to).parameters)
    assert params["position"]["kind"] == {"name": "POSITIONAL_OR_KEYWORD", "value": 1}
    assert (params["position"]["min"], params["position"]["max"]) == ("-10", "10")
    assert params["position"]["units"] == "mm"
    assert params["settle"]["default"] == "1.0"
    assert params["motor"]["description"] == "the motor to move."
    assert "min" not in params["motor"]
    assert (params["repeats"]["min"], params["repeats"]["max"]) == ("1", "100")


@pytest.mark.parametrize(
    ("item", "valid"),
    [
        ({"name": "count", "args": [["det"]], "kwargs": {"num": 3}}, True),
        ({"name": "move_to", "args": ["x", 3], "kwargs": {"speed": "fast", "mode": "fly"}}, True),
        ({"name": "move_to", "args": ["x", 11], "kwargs": {}}, False),
        ({"name": "move_to", "args": ["det", 1], "kwargs": {}}, False),
        ({"name": "move_to", "args": ["x", 1], "kwargs": {"speed": "warp"}}, False),
    ],
)
def test_queueserver_own_validator_reads_the_descriptions_and_agrees(
    registry: PlanRegistry, item: dict[str, Any], valid: bool
) -> None:
    plans, devices = registry.describe_plans(), registry.describe_devices()
    ok, message = validate_plan(item, allowed_plans=plans, allowed_devices=devices)
    assert ok is valid, message
    try:
        registry.check(item["name"], item["args"], item["kwargs"])
    except ItemError:
        assert not valid
    else:
        assert valid


def test_queueserver_annotations_name_devices_and_enums(registry: PlanRegistry) -> None:
    params = {p["name"]: p for p in registry.describe_plans()["move_to"]["parameters"]}
    assert params["motor"]["annotation"] == {"type": "Motor", "devices": {"Motor": ["x", "y"]}}
    assert params["speed"]["annotation"] == {"type": "Speed", "enums": {"Speed": ["slow", "fast"]}}
    assert (params["speed"]["default"], params["position"]["annotation"]) == (
        "'slow'",
        {"type": "float"},
    )
    assert "annotation" not in params["reader"]  # no spelling queueserver reads back


def test_units_must_be_a_nonempty_string() -> None:
    with pytest.raises(TypeError, match=r"Units\(symbol\): a non-empty string"):
        Units("")


# -- through the served service ------------------------------------------------------------
async def test_served_422_names_every_bad_field_and_queues_nothing(url: str) -> None:
    item = {
        "name": "move_to",
        "args": ["det", 11],
        "kwargs": {"repeats": 0, "mode": "jog"},
        "item_type": "plan",
    }
    async with httpx.AsyncClient(base_url=url) as client:
        reply = await client.post("/api/queue/item/add", json={"item": item})
        assert reply.status_code == 422
        detail = reply.json()["detail"]
        for part in (
            "motor: device 'det' is not a Motor (devices that fit: x, y)",
            "position: Input should be less than or equal to 10",
            "repeats: Input should be greater than or equal to 1",
            "mode: Input should be 'step' or 'fly'",
        ):
            assert part in detail
        status = (await client.get("/api/status")).json()
        assert status["items_in_queue"] == 0
        item = {**item, "args": ["x", 1], "kwargs": {"speed": "fast"}}
        reply = await client.post("/api/queue/item/add", json={"item": item})
        assert reply.status_code == 200, reply.text
        assert (await client.get("/api/status")).json()["items_in_queue"] == 1
    assert CALLS  # the plan's own checks ran for the good item only, not for the bad one
    assert all((c["position"], c["speed"]) == (1, Speed.FAST) for c in CALLS)


async def test_plans_allowed_carry_each_plan_json_schema(RM: Any) -> None:
    allowed = (await RM.plans_allowed())["plans_allowed"]
    assert set(allowed) == {"count", "move_to"}
    schema = allowed["move_to"]["json_schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["position"]["units"] == "mm"
    detectors = allowed["count"]["json_schema"]["properties"]["detectors"]
    assert "det" in detectors["items"]["anyOf"][0]["enum"]
