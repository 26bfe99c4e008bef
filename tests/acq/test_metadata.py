"""Metadata of the Start document: every rule of reference/001 (SPEC §Metadata).

Four sources, highest precedence first: ``RE(...)`` keywords, the plan's ``md``
(``open_run`` keywords), inferred (``plan_name``, ``plan_type``, ``versions``), ``RE.md``.
Every violation is a MetadataError naming the key, raised before any document of the
run is emitted.

These are ``RE.md``'s rules, so the engines here have no catalog: with one, the catalog
numbers the runs it stores (``tests/catalog/test_scan_ids.py``).
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import numpy as np
import pytest
from support import DocChecker, Signal

from acq import MetadataError, Msg, RunEngine
from acq._persistent import PersistentDict


@pytest.fixture
def RE(bare_RE: RunEngine) -> RunEngine:
    """An engine without a catalog (scan_id from ``RE.md``), documents checked."""
    return bare_RE


def one_run(**md: Any):
    """A plan with one empty run whose ``open_run`` carries ``md`` (the plan's md)."""
    yield Msg("open_run", **md)
    yield Msg("close_run")


async def async_one_run(**md: Any):
    yield Msg("open_run", **md)
    yield Msg("close_run")


def runs(*mds: dict[str, Any]):
    """One empty run per mapping, each opened with that mapping as the plan's md."""
    for md in mds:
        yield Msg("open_run", **md)
        yield Msg("close_run")


def reference_plan(det: Signal, motor: Signal, purposes: tuple[str | None, ...] = (None,) * 3):
    """reference/001's three-run plan: count, scan, count (with optional per-run md)."""

    def md(purpose: str | None) -> dict[str, Any] | None:
        return None if purpose is None else {"purpose": purpose}

    yield from bp.count([det], md=md(purposes[0]))
    yield from bp.scan([det], motor, 1, 5, 5, md=md(purposes[1]))
    yield from bp.count([det], md=md(purposes[2]))


def start_of(checker: DocChecker) -> dict[str, Any]:
    (start,) = checker.of("start")
    return start


# -- the four sources -----------------------------------------------------------------------
async def test_re_keywords_reach_every_run_of_a_three_run_plan(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, motor = Signal("det", 1.0), Signal("motor")
    await RE(reference_plan(det, motor), sample_id="A", purpose="calibration", operator="Dan")
    starts = checker.of("start")
    assert [s["plan_name"] for s in starts] == ["count", "scan", "count"]
    for start in starts:
        assert (start["sample_id"], start["purpose"], start["operator"]) == (
            "A",
            "calibration",
            "Dan",
        )


async def test_plan_md_applies_to_its_own_run_and_combines_with_re_keywords(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, motor = Signal("det", 1.0), Signal("motor")
    purposes = ("calibration", "good data", "sanity check")
    await RE(reference_plan(det, motor, purposes), sample_id="A", operator="Dan")
    starts = checker.of("start")
    assert [s["purpose"] for s in starts] == list(purposes)
    assert all(s["sample_id"] == "A" and s["operator"] == "Dan" for s in starts)


async def test_open_run_keywords_are_the_plans_md_for_that_run_only(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE(runs({"purpose": "one", "only_first": 1}, {"purpose": "two"}))
    first, second = checker.of("start")
    assert (first["purpose"], first["only_first"]) == ("one", 1)
    assert second["purpose"] == "two"
    assert "only_first" not in second


async def test_re_keywords_override_plan_md_in_every_run(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, motor = Signal("det", 1.0), Signal("motor")
    purposes = ("calibration", "good data", "sanity check")
    await RE(reference_plan(det, motor, purposes), purpose="test")
    assert [s["purpose"] for s in checker.of("start")] == ["test"] * 3


async def test_re_md_is_copied_into_every_run_and_is_not_changed_by_the_run(
    RE: RunEngine, checker: DocChecker
) -> None:
    RE.md["proposal_id"] = 123456
    RE.md["project"] = "flying cars"
    RE.md["dimensions"] = (5, 3, 10)
    await RE(runs({}, {}), purpose="calibration")
    for start in checker.of("start"):
        assert start["proposal_id"] == 123456
        assert start["project"] == "flying cars"
        assert start["dimensions"] == (5, 3, 10)  # kept a tuple, as in bluesky
    assert "purpose" not in RE.md
    assert "plan_name" not in RE.md


async def test_all_four_sources_for_one_key_the_re_keyword_wins(
    RE: RunEngine, checker: DocChecker
) -> None:
    RE.md["plan_name"] = "from RE.md"  # 4; 'plan_name' is also inferred (3)
    await RE(one_run(plan_name="from the plan"), plan_name="from RE keywords")
    assert start_of(checker)["plan_name"] == "from RE keywords"


SOURCES = ("RE.md", "plan", "keywords")


@pytest.mark.parametrize(
    ("given", "winner"),
    [
        ((), "inferred"),
        (("RE.md",), "inferred"),  # inferred beats RE.md
        (("plan",), "plan"),  # plan beats inferred
        (("keywords",), "keywords"),  # keywords beat inferred
        (("RE.md", "plan"), "plan"),
        (("RE.md", "keywords"), "keywords"),
        (("plan", "keywords"), "keywords"),
        (("RE.md", "plan", "keywords"), "keywords"),
    ],
)
async def test_precedence_for_an_inferred_key_pairwise(
    RE: RunEngine, checker: DocChecker, given: tuple[str, ...], winner: str
) -> None:
    def my_plan(**md: Any):
        yield Msg("open_run", **md)
        yield Msg("close_run")

    if "RE.md" in given:
        RE.md["plan_name"] = "RE.md"
    plan_md = {"plan_name": "plan"} if "plan" in given else {}
    call_md = {"plan_name": "keywords"} if "keywords" in given else {}
    await RE(my_plan(**plan_md), **call_md)
    expected = "my_plan" if winner == "inferred" else winner
    assert start_of(checker)["plan_name"] == expected


@pytest.mark.parametrize(
    ("given", "winner"),
    [
        (("RE.md",), "RE.md"),
        (("plan",), "plan"),
        (("keywords",), "keywords"),
        (("RE.md", "plan"), "plan"),
        (("RE.md", "keywords"), "keywords"),
        (("plan", "keywords"), "keywords"),
        (("RE.md", "plan", "keywords"), "keywords"),
    ],
)
async def test_precedence_for_a_custom_key_pairwise(
    RE: RunEngine, checker: DocChecker, given: tuple[str, ...], winner: str
) -> None:
    if "RE.md" in given:
        RE.md["purpose"] = "RE.md"
    plan_md = {"purpose": "plan"} if "plan" in given else {}
    call_md = {"purpose": "keywords"} if "keywords" in given else {}
    await RE(one_run(**plan_md), **call_md)
    assert start_of(checker)["purpose"] == winner


# -- inferred: plan_name, plan_type ---------------------------------------------------------
async def test_plan_name_and_plan_type_inferred_for_a_generator_plan(
    RE: RunEngine, checker: DocChecker
) -> None:
    def calibrate_mirror():
        yield Msg("open_run")
        yield Msg("close_run")

    await RE(calibrate_mirror())
    start = start_of(checker)
    assert (start["plan_name"], start["plan_type"]) == ("calibrate_mirror", "generator")


async def test_plan_name_and_plan_type_inferred_for_an_async_generator_plan(
    RE: RunEngine, checker: DocChecker
) -> None:
    async def align_sample():
        yield Msg("open_run")
        yield Msg("close_run")

    await RE(align_sample())
    start = start_of(checker)
    assert (start["plan_name"], start["plan_type"]) == ("align_sample", "async_generator")


async def test_plan_name_inferred_from_the_outer_plan_for_runs_opened_in_sub_plans(
    RE: RunEngine, checker: DocChecker
) -> None:
    async def outer():
        yield async_one_run()
        yield one_run()

    await RE(outer())
    assert [(s["plan_name"], s["plan_type"]) for s in checker.of("start")] == [
        ("outer", "async_generator")
    ] * 2


async def test_plan_name_and_plan_type_overridden_by_plan_md(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE(async_one_run(plan_name="xafs", plan_type="custom"))
    start = start_of(checker)
    assert (start["plan_name"], start["plan_type"]) == ("xafs", "custom")


async def test_plan_name_and_plan_type_overridden_by_re_keywords(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE(one_run(), plan_name="xafs", plan_type="custom")
    start = start_of(checker)
    assert (start["plan_name"], start["plan_type"]) == ("xafs", "custom")


async def test_plan_name_and_plan_type_in_re_md_do_not_override_the_inferred_ones(
    RE: RunEngine, checker: DocChecker
) -> None:
    RE.md.update(plan_name="stale", plan_type="stale")
    await RE(one_run())
    start = start_of(checker)
    assert (start["plan_name"], start["plan_type"]) == ("one_run", "generator")


# -- reserved: uid, time --------------------------------------------------------------------
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("key", "value"), [("uid", "my-own-uid"), ("time", 1442521005.6)])
async def test_uid_and_time_are_reserved_in_every_source_and_nothing_is_emitted(
    RE: RunEngine, checker: DocChecker, source: str, key: str, value: Any
) -> None:
    RE.md["scan_id"] = 7
    plan_md: dict[str, Any] = {}
    call_md: dict[str, Any] = {}
    {"RE.md": RE.md, "plan": plan_md, "keywords": call_md}[source][key] = value
    with pytest.raises(MetadataError, match=f"'{key}'"):
        await RE(one_run(**plan_md), **call_md)
    assert checker.docs == []
    assert RE.md["scan_id"] == 7


async def test_uid_and_time_are_set_by_the_engine(RE: RunEngine, checker: DocChecker) -> None:
    await RE(runs({}, {}))
    first, second = checker.of("start")
    assert isinstance(first["uid"], str)
    assert first["uid"] != second["uid"]
    assert isinstance(first["time"], float)
    assert first["time"] <= second["time"]


# -- scan_id --------------------------------------------------------------------------------
async def test_scan_id_starts_at_one_on_a_new_run_engine(
    RE: RunEngine, checker: DocChecker
) -> None:
    assert "scan_id" not in RE.md
    await RE(one_run())
    assert start_of(checker)["scan_id"] == 1
    assert RE.md["scan_id"] == 1


async def test_scan_id_increments_across_runs_and_across_calls(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE(runs({}, {}, {}))
    await RE(runs({}, {}))
    assert [s["scan_id"] for s in checker.of("start")] == [1, 2, 3, 4, 5]
    assert RE.md["scan_id"] == 5


async def test_scan_id_continues_from_the_one_stashed_in_re_md(
    RE: RunEngine, checker: DocChecker
) -> None:
    RE.md["scan_id"] = 281
    await RE(one_run())
    assert start_of(checker)["scan_id"] == 282
    assert RE.md["scan_id"] == 282


async def test_scan_id_restarts_at_one_after_re_md_clear(
    RE: RunEngine, checker: DocChecker
) -> None:
    RE.md["proposal_id"] = 1
    await RE(runs({}, {}, {}))
    RE.md.clear()
    await RE(one_run())
    assert [s["scan_id"] for s in checker.of("start")] == [1, 2, 3, 1]
    assert dict(RE.md) == {"scan_id": 1}


@pytest.mark.parametrize("source", ["plan", "keywords"])
async def test_explicit_scan_id_is_used_for_that_run(
    RE: RunEngine, checker: DocChecker, source: str
) -> None:
    if source == "plan":
        await RE(one_run(scan_id=100))
    else:
        await RE(one_run(), scan_id=100)
    assert start_of(checker)["scan_id"] == 100


@pytest.mark.parametrize("bad", ["seven", 7.5, True, None])
async def test_scan_id_in_re_md_that_is_not_an_integer_is_refused_before_the_run(
    RE: RunEngine, checker: DocChecker, bad: Any
) -> None:
    RE.md["scan_id"] = bad
    with pytest.raises(MetadataError, match="scan_id"):
        await RE(one_run())
    assert checker.docs == []
    assert RE.md["scan_id"] == bad


async def test_explicit_scan_id_that_is_not_an_integer_is_refused(
    RE: RunEngine, checker: DocChecker
) -> None:
    with pytest.raises(MetadataError, match="scan_id"):
        await RE(one_run(), scan_id="12a")
    assert checker.docs == []


# -- special fields: owner, group, project, sample ------------------------------------------
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("key", ["owner", "group", "project"])
async def test_owner_group_project_must_be_strings_refused_before_any_document(
    RE: RunEngine, checker: DocChecker, source: str, key: str
) -> None:
    plan_md: dict[str, Any] = {}
    call_md: dict[str, Any] = {}
    {"RE.md": RE.md, "plan": plan_md, "keywords": call_md}[source][key] = 5
    with pytest.raises(MetadataError, match=f"'{key}'"):
        await RE(one_run(**plan_md), **call_md)
    assert checker.docs == []
    assert "scan_id" not in RE.md


@pytest.mark.parametrize("blank", ["", None])
async def test_blank_owner_group_project_are_allowed_and_left_out(
    RE: RunEngine, checker: DocChecker, blank: Any
) -> None:
    await RE(one_run(group=blank), owner=blank, project=blank)
    start = start_of(checker)
    assert not {"owner", "group", "project"} & set(start)


async def test_string_owner_group_project_are_recorded(RE: RunEngine, checker: DocChecker) -> None:
    RE.md["project"] = "flying cars"
    await RE(one_run(group="optics"), owner="dan")
    start = start_of(checker)
    assert (start["owner"], start["group"], start["project"]) == ("dan", "optics", "flying cars")


@pytest.mark.parametrize("sample", ["kryptonite", {"name": "Si", "thickness_mm": 0.5}])
async def test_sample_may_be_a_string_or_a_dict(
    RE: RunEngine, checker: DocChecker, sample: Any
) -> None:
    await RE(one_run(), sample=sample)
    assert start_of(checker)["sample"] == sample


@pytest.mark.parametrize("sample", [["Si", "Ge"], 5])
async def test_sample_that_is_neither_string_nor_dict_is_refused(
    RE: RunEngine, checker: DocChecker, sample: Any
) -> None:
    with pytest.raises(MetadataError, match="'sample'"):
        await RE(one_run(sample=sample))
    assert checker.docs == []


# -- allowed data types ---------------------------------------------------------------------
async def test_strings_numbers_lists_and_tuples_survive_into_the_start(
    RE: RunEngine, checker: DocChecker
) -> None:
    RE.md["dimensions"] = (5, 3, 10)
    await RE(one_run(attempt=5, ratio=0.25), task="calibration", shape=[1, 3], empty=[])
    start = start_of(checker)
    assert start["task"] == "calibration"
    assert start["attempt"] == 5
    assert start["ratio"] == 0.25
    assert start["shape"] == [1, 3]
    assert start["empty"] == []
    assert start["dimensions"] == (5, 3, 10)  # kept a tuple, as bluesky keeps it


async def test_nested_dicts_survive_into_the_start_as_plain_dicts(
    RE: RunEngine, checker: DocChecker
) -> None:
    nested = {"width": 1, "height": 3, "inner": {"a": [1, {"b": "c"}], "t": (1, 2)}}
    RE.md["from_stash"] = {"x": {"y": 1}}
    await RE(one_run(from_plan={"k": "v"}), dimensions=nested)
    start = start_of(checker)
    expected = {"width": 1, "height": 3, "inner": {"a": [1, {"b": "c"}], "t": (1, 2)}}
    for key, value in [
        ("dimensions", expected),
        ("from_stash", {"x": {"y": 1}}),
        ("from_plan", {"k": "v"}),
    ]:
        assert type(start[key]) is dict, (key, type(start[key]))
        assert start[key] == value
    # a document is plain JSON data (its tuples are JSON arrays)
    assert json.loads(json.dumps(start))["dimensions"]["inner"]["t"] == [1, 2]


async def test_metadata_given_by_the_caller_is_copied_not_shared(
    RE: RunEngine, checker: DocChecker
) -> None:
    nested = {"inner": {"a": 1}, "items": [1, 2]}
    await RE(one_run(), dimensions=nested)
    assert nested == {"inner": {"a": 1}, "items": [1, 2]}
    assert type(nested["inner"]) is dict  # validating the Start did not touch it
    assert start_of(checker)["dimensions"] is not nested


@pytest.mark.parametrize(
    ("md", "path"),
    [
        ({"thing": object()}, "thing"),
        ({"tags": {"a", "b"}}, "tags"),
        ({"outer": {"inner": {"a", "b"}}}, "outer.inner"),
        ({"items": [1, object()]}, "items[1]"),
        ({"outer": {"deep": [{"x": object()}]}}, "outer.deep[0].x"),
    ],
)
async def test_a_disallowed_value_is_refused_naming_its_key_path(
    RE: RunEngine, checker: DocChecker, md: dict[str, Any], path: str
) -> None:
    with pytest.raises(MetadataError) as info:
        await RE(one_run(), **md)
    assert f"'{path}'" in str(info.value)
    assert checker.docs == []


async def test_a_disallowed_value_in_re_md_is_refused_before_the_run(
    RE: RunEngine, checker: DocChecker
) -> None:
    RE.md["callback"] = print
    with pytest.raises(MetadataError, match="'callback'"):
        await RE(one_run())
    assert checker.docs == []


@pytest.mark.parametrize(
    ("value", "expected", "kind"),
    [
        (np.int64(7), 7, int),
        (np.float32(0.5), 0.5, float),
        (np.float64(2.5), 2.5, float),
        (np.bool_(True), True, bool),
        (np.array([1, 2, 3]), [1, 2, 3], list),
    ],
    ids=["int64", "float32", "float64", "bool_", "ndarray"],
)
async def test_numpy_values_are_converted_to_plain_python(
    RE: RunEngine, checker: DocChecker, value: Any, expected: Any, kind: type
) -> None:
    await RE(one_run(), value=value)
    start = start_of(checker)
    assert type(start["value"]) is kind
    assert start["value"] == expected


# -- RE.md is any mutable mapping -----------------------------------------------------------
class RecordingMapping(MutableMapping[str, Any]):
    """A custom MutableMapping (not a dict) that records every write."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.writes: list[tuple[str, Any]] = []

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes.append((key, value))
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.mark.parametrize("kind", ["dict", "custom", "persistent"])
async def test_re_md_can_be_any_mutable_mapping(
    RE: RunEngine, checker: DocChecker, tmp_path: Path, kind: str
) -> None:
    factories: dict[str, Callable[[], MutableMapping[str, Any]]] = {
        "dict": dict,
        "custom": RecordingMapping,
        "persistent": lambda: PersistentDict(tmp_path),
    }
    RE.md = factories[kind]()
    RE.md["proposal_id"] = 123456
    await RE(runs({}, {}), purpose="test")
    starts = checker.of("start")
    assert [s["scan_id"] for s in starts] == [1, 2]
    assert all(s["proposal_id"] == 123456 and s["purpose"] == "test" for s in starts)
    assert dict(RE.md) == {"proposal_id": 123456, "scan_id": 2}
    if isinstance(RE.md, RecordingMapping):
        assert RE.md.writes == [("proposal_id", 123456), ("scan_id", 1), ("scan_id", 2)]


async def test_re_md_given_to_the_constructor_is_used(checker: DocChecker) -> None:
    stash = RecordingMapping()
    stash["scan_id"] = 10
    RE = RunEngine(stash, catalog=None)
    RE.subscribe(checker, thread=False)
    assert RE.md is stash
    await RE(one_run())
    assert start_of(checker)["scan_id"] == 11
    assert stash["scan_id"] == 11


async def test_persistent_dict_keeps_scan_id_across_run_engines_sharing_its_directory(
    checker: DocChecker, tmp_path: Path
) -> None:
    first = RunEngine(PersistentDict(tmp_path), catalog=None)
    first.subscribe(checker, thread=False)
    first.md["beamline"] = "ISS"
    await first(runs({}, {}))
    # A new session: a new RunEngine with a new PersistentDict on the same directory.
    second = RunEngine(catalog=None)
    second.md = PersistentDict(tmp_path)
    second.subscribe(checker, thread=False)
    kept = dict(second.md)
    assert kept.pop("versions")["acq"]  # as bluesky's, the engine records its versions
    assert kept == {"beamline": "ISS", "scan_id": 2}
    await second(one_run())
    starts = checker.of("start")
    assert [s["scan_id"] for s in starts] == [1, 2, 3]
    assert starts[-1]["beamline"] == "ISS"
    on_disk = dict(PersistentDict(tmp_path))
    assert on_disk.pop("versions")["acq"]
    assert on_disk == {"beamline": "ISS", "scan_id": 3}


# -- md_validator ---------------------------------------------------------------------------
async def test_md_validator_is_called_with_the_final_metadata_before_each_run(
    RE: RunEngine, checker: DocChecker
) -> None:
    seen: list[dict[str, Any]] = []
    emitted: list[str] = []  # a critical subscriber is called inline, as documents leave
    emitted_at_call: list[list[str]] = []

    def validator(md: dict[str, Any]) -> None:
        seen.append(md)
        emitted_at_call.append(list(emitted))

    RE.md_validator = validator
    RE.subscribe(lambda name, doc: emitted.append(name), critical=True)
    RE.md["proposal_id"] = 5
    RE.md["purpose"] = "stash"
    await RE(runs({"purpose": "one"}, {"purpose": "two", "sample": "Si"}), operator="Dan")
    starts = checker.of("start")
    assert len(seen) == 2
    for md, start in zip(seen, starts, strict=True):
        assert set(md) == set(start) - {"uid", "time"}
        for key in ("scan_id", "plan_name", "plan_type", "proposal_id", "purpose", "operator"):
            assert md[key] == start[key]
    assert [md["purpose"] for md in seen] == ["one", "two"]
    assert [md["scan_id"] for md in seen] == [1, 2]
    assert seen[1]["sample"] == "Si"
    # each call comes before its run's Start: after run 1 ended, before run 2 began
    assert emitted_at_call == [[], ["start", "stop"]]
    assert emitted == ["start", "stop", "start", "stop"]


async def test_md_validator_refusal_is_a_metadata_error_and_nothing_is_emitted(
    RE: RunEngine, checker: DocChecker
) -> None:
    def ensure_sample_number(md: dict[str, Any]) -> None:
        if "sample_number" not in md:
            raise ValueError("You forgot the sample number.")

    RE.md_validator = ensure_sample_number
    RE.md["scan_id"] = 3
    with pytest.raises(MetadataError, match="You forgot the sample number") as info:
        await RE(one_run())
    assert isinstance(info.value.__cause__, ValueError)
    assert checker.docs == []
    assert RE.md["scan_id"] == 3
    await RE(one_run(), sample_number=12)
    assert start_of(checker)["scan_id"] == 4


async def test_md_validator_given_to_the_constructor_is_used(checker: DocChecker) -> None:
    def refuse_all(md: dict[str, Any]) -> None:
        raise ValueError("no runs today")

    RE = RunEngine(md_validator=refuse_all)
    RE.subscribe(checker, thread=False)
    with pytest.raises(MetadataError, match="no runs today"):
        await RE(one_run())
    assert checker.docs == []


async def test_md_validator_refuses_the_second_run_after_the_first_completed(
    RE: RunEngine, checker: DocChecker
) -> None:
    def only_good(md: dict[str, Any]) -> None:
        if md.get("purpose") != "good":
            raise ValueError(f"purpose {md.get('purpose')!r} is not allowed")

    RE.md_validator = only_good
    det = Signal("det", 1.0)

    def plan():
        yield from bp.count([det], 2, md={"purpose": "good"})
        yield from bp.count([det], 2, md={"purpose": "bad"})

    with pytest.raises(MetadataError, match="'bad' is not allowed"):
        await RE(plan())
    assert checker.names() == ["start", "descriptor", "event", "event", "stop"]
    (stop,) = checker.of("stop")
    assert stop["exit_status"] == "success"
    assert stop["num_events"] == {"primary": 2}
    assert RE.md["scan_id"] == 1


# -- versions -------------------------------------------------------------------------------
async def test_versions_of_acq_and_its_libraries_are_recorded(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE(one_run())
    versions = start_of(checker)["versions"]
    assert isinstance(versions, dict), type(versions)
    assert versions["python"] == platform.python_version()
    assert versions["acq"] == importlib.metadata.version("acq-daq")  # acq's PyPI name
    for dist in ("event-model", "bluesky", "ophyd-async"):
        assert versions[dist.replace("-", "_")] == importlib.metadata.version(dist)


@pytest.mark.parametrize("source", ["plan", "keywords"])
async def test_versions_can_be_overridden(RE: RunEngine, checker: DocChecker, source: str) -> None:
    mine = {"acq": "0.0.0-test", "beamline_profile": "2024.1"}
    if source == "plan":
        await RE(one_run(versions=mine))
    else:
        await RE(one_run(), versions=mine)
    versions = start_of(checker)["versions"]
    assert isinstance(versions, dict), type(versions)
    assert versions == mine


# -- an error in the middle of a multi-run plan ---------------------------------------------
async def test_bad_metadata_of_the_second_of_three_runs_stops_the_plan_after_run_one(
    RE: RunEngine, checker: DocChecker
) -> None:
    det, motor = Signal("det", 1.0), Signal("motor")
    reached: list[str] = []

    def plan():
        yield from bp.count([det], md={"purpose": "calibration"})
        reached.append("run 2")
        yield from bp.scan([det], motor, 1, 5, 5, md={"owner": 5})
        reached.append("run 3")
        yield from bp.count([det])

    with pytest.raises(MetadataError, match="'owner'"):
        await RE(plan())
    assert reached == ["run 2"]
    assert checker.names() == ["start", "descriptor", "event", "stop"]
    (start,) = checker.of("start")
    assert start["purpose"] == "calibration"
    (stop,) = checker.of("stop")
    assert stop["run_start"] == start["uid"]
    assert stop["exit_status"] == "success"
    assert motor.log == []  # the second run's scan never moved the motor
    assert RE.md["scan_id"] == 1


# -- plan_name must be a string -------------------------------------------------------------
@pytest.mark.parametrize("bad", [5, 2.5, True, None, ["scan"], {"name": "scan"}])
async def test_plan_name_that_is_not_a_string_in_re_keywords_is_refused_before_the_plan_runs(
    RE: RunEngine, checker: DocChecker, bad: Any
) -> None:
    det, motor = Signal("det", 1.0), Signal("motor")
    started: list[str] = []

    def plan():
        started.append("plan")
        yield from bp.scan([det], motor, 1, 5, 5)

    with pytest.raises(MetadataError, match=r"'plan_name' must be a string") as info:
        await RE(plan(), plan_name=bad)
    assert repr(bad) in str(info.value)
    assert started == []  # refused at RE(...), before the plan's first message
    assert motor.log == []
    assert checker.docs == []
    assert "scan_id" not in RE.md


@pytest.mark.parametrize("bad", [5, None, ["scan"]])
async def test_a_plans_own_plan_name_that_is_not_a_string_is_refused_before_any_move(
    RE: RunEngine, checker: DocChecker, bad: Any
) -> None:
    det, motor = Signal("det", 1.0), Signal("motor")
    with pytest.raises(MetadataError, match=r"'plan_name' must be a string"):
        await RE(bp.scan([det], motor, 1, 5, 5, md={"plan_name": bad}))
    assert motor.log == []
    assert checker.docs == []
    assert "scan_id" not in RE.md


async def test_a_stale_plan_name_in_re_md_that_is_not_a_string_is_ignored_like_any_stale_one(
    RE: RunEngine, checker: DocChecker
) -> None:
    RE.md["plan_name"] = 5  # the inferred plan_name always wins over RE.md's
    await RE(one_run())
    assert start_of(checker)["plan_name"] == "one_run"


async def test_a_string_plan_name_from_keywords_or_the_plan_is_recorded(
    RE: RunEngine, checker: DocChecker
) -> None:
    await RE(one_run(plan_name="xafs"))
    await RE(one_run(), plan_name="align")
    assert [s["plan_name"] for s in checker.of("start")] == ["xafs", "align"]
