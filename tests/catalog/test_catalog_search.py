"""Finding runs: by position, scan_id and uid, and by any metadata key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from acq.plans import count
from support import Signal

from acq import RunEngine
from acq.catalog import Catalog, DocumentStore, Key, Query, TimeRange

# (metadata, scan_id) of the runs every search below looks through; scan_ids from 1
RUNS: list[dict[str, Any]] = [
    {"sample": {"name": "Si", "temperature": 300}, "purpose": "Calibration of the ring"},
    {"sample": {"name": "Ge", "temperature": 77.5}, "purpose": "alignment", "tags": ["a", "b"]},
    {"sample": {"name": "Si", "temperature": 10}, "purpose": "CALIBRATION again", "tags": ["b"]},
    {"sample": "Cu foil", "purpose": "100% sure", "flag": True, "zero": 0},
    {"purpose": "'; DROP TABLE runs; --", "quote": 'say "hi"', "flag": False, "zero": "0"},
    {
        "purpose": "unicode",
        'qu"ote': 2,
        "it's": 3,
        "ключ": "значение",
        "emoji🙂": "🧪 ẞ",
        "zero\u200bwidth": None,
        "back\\slash": "a\\b",
    },
]


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    """A catalog holding the RUNS (written by a RunEngine), one second apart in time."""
    import asyncio

    RE = RunEngine(catalog=catalog_url, handle_sigint=False)
    det = Signal("det", 1.0)

    async def write() -> None:
        for md in RUNS:
            await RE(count([det], 1), **md)

    asyncio.run(write())
    assert RE.catalog is not None
    yield RE.catalog
    RE.catalog.close()


def scan_ids(results: Any) -> list[int]:
    return [run.scan_id for run in results]


def test_runs_come_newest_first_and_by_position_scan_id_and_uid(catalog: Catalog) -> None:
    assert len(catalog) == len(RUNS)
    assert scan_ids(catalog) == [6, 5, 4, 3, 2, 1]
    assert catalog[-1].scan_id == 6
    assert catalog[-6].scan_id == 1
    with pytest.raises(IndexError):
        catalog[-7]
    assert catalog[2].start["sample"] == {"name": "Ge", "temperature": 77.5}
    with pytest.raises(KeyError, match="scan_id 99"):
        catalog[99]
    uid = catalog[3].uid
    assert catalog[uid].scan_id == 3
    assert catalog[uid[:13]].scan_id == 3
    for wildcard in ("%", "_", uid[:4] + "%"):
        with pytest.raises(KeyError):
            catalog[wildcard]
    with pytest.raises(TypeError):
        catalog[1.5]  # type: ignore[index]


def test_pages(catalog: Catalog) -> None:
    assert [scan_ids(catalog.page(n, size=4)) for n in (1, 2, 3)] == [[6, 5, 4, 3], [2, 1], []]
    results = catalog.search(Key("purpose").contains("a"))
    assert scan_ids(results) == [5, 3, 2, 1]  # "DROP TABLE" has an a too
    assert scan_ids(results.page(2, size=2)) == [2, 1]
    with pytest.raises(ValueError, match="from 1"):
        catalog.page(0)


SEARCHES: list[tuple[str, list[Query] | dict[str, Any], list[int]]] = [
    ("keyword equality", {"purpose": "alignment"}, [2]),
    ("nested keyword", {"sample.name": "Si"}, [3, 1]),
    ("nested key", [Key("sample.name") == "Si"], [3, 1]),
    ("tuple path", [Key(("sample", "name")) == "Ge"], [2]),
    ("not equal includes missing", [Key("sample.name") != "Si"], [6, 5, 4, 2]),
    ("number range", [Key("sample.temperature") > 50], [2, 1]),
    ("range both ends", [Key("sample.temperature") >= 10, Key("sample.temperature") < 300], [3, 2]),
    ("int equals float", [Key("sample.temperature") == 300.0], [1]),
    ("text range", [Key("purpose") < "C"], [5, 4]),  # by code point: "'" < "1" < "C" < "Ca"
    ("contains ignores case", [Key("purpose").contains("calibration")], [3, 1]),
    ("contains a percent sign", [Key("purpose").contains("%")], [4]),
    ("contains an underscore", [Key("purpose").contains("_")], []),
    ("list includes", [Key("tags").includes("b")], [3, 2]),
    ("one of", [Key("sample.name").one_of(["Ge", "Cu"])], [2]),
    ("exists", [Key("tags").exists()], [3, 2]),
    ("booleans are not numbers", [Key("flag") == True], [4]),  # noqa: E712
    ("numbers are not booleans", [Key("zero") == 0], [4]),
    ("text is not a number", [Key("zero") == "0"], [5]),
    ("null", [Key(("zero\u200bwidth",)) == None], [6]),  # noqa: E711
    ("or", [(Key("sample.name") == "Ge") | (Key("flag") == True)], [4, 2]),  # noqa: E712
    ("not", [~Key("sample").exists()], [6, 5]),
    ("and of keyword and term", {"sample.name": "Si", "purpose": "CALIBRATION again"}, [3]),
    ("sample as text", {"sample": "Cu foil"}, [4]),
    ("whole dict", {"sample": {"temperature": 77.5, "name": "Ge"}}, [2]),
    ("whole list", {"tags": ["a", "b"]}, [2]),
    ("sql in a value", {"purpose": "'; DROP TABLE runs; --"}, [5]),
    ("quotes in a value", {"quote": 'say "hi"'}, [5]),
    ("sql injection attempt", [Key("purpose") == "x' OR '1'='1"], []),
    ("sql in a key", [Key("purpose' OR 1=1 --") == "alignment"], []),
    ("double quote in a key", [Key('qu"ote') == 2], [6]),
    ("apostrophe in a key", [Key("it's") == 3], [6]),
    ("cyrillic", {"ключ": "значение"}, [6]),
    ("emoji key and value", [Key("emoji🙂").contains("🧪")], [6]),
    ("unicode case", [Key("emoji🙂").contains("ß")], [6]),
    ("backslash", [Key("back\\slash") == "a\\b"], [6]),
    ("dotted path that is not there", [Key("sample.name.first") == "Si"], []),
]


@pytest.mark.parametrize(("what", "terms", "expected"), SEARCHES, ids=[s[0] for s in SEARCHES])
def test_search(catalog: Catalog, what: str, terms: Any, expected: list[int]) -> None:
    results = catalog.search(**terms) if isinstance(terms, dict) else catalog.search(*terms)
    assert scan_ids(results) == expected
    assert len(results) == len(expected)
    assert bool(results) == bool(expected)


def test_searches_narrow_down_and_the_tables_survive(catalog: Catalog) -> None:
    si = catalog.search(**{"sample.name": "Si"})
    assert scan_ids(si.search(Key("sample.temperature") < 100)) == [3]
    assert si.search(Key("sample.temperature") < 100)[-1].scan_id == 3
    assert si[1].scan_id == 1
    with pytest.raises(KeyError):
        si[2]  # a run, but not one of these
    assert len(catalog) == len(RUNS)  # the DROP TABLE in the metadata was data
    assert catalog[5].start["purpose"] == "'; DROP TABLE runs; --"
    assert catalog[6].start["emoji🙂"] == "🧪 ẞ"


def test_time_ranges(catalog: Catalog) -> None:
    times = [run.start["time"] for run in catalog]  # newest first
    assert scan_ids(catalog.search(TimeRange(since=times[2]))) == [6, 5, 4]
    assert scan_ids(catalog.search(TimeRange(until=times[4]))) == [1]
    assert scan_ids(catalog.search(TimeRange(since=times[3], until=times[1]))) == [4, 3]
    assert scan_ids(catalog.search(Key("time") >= times[1])) == [6, 5]
    now = time.time()
    assert len(catalog.search(TimeRange(since=now + 60))) == 0
    today = time.strftime("%Y-%m-%d")
    assert len(catalog.search(TimeRange(since=today))) == len(RUNS)
    assert len(catalog.search(TimeRange(until="2001-01-01 12:00"))) == 0


def test_bad_search_terms_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="between every two dots"):
        Key("a..b")
    with pytest.raises(TypeError, match="ranges compare numbers or text"):
        _ = Key("a") > [1]
    with pytest.raises(ValueError, match="stored as null"):
        _ = Key("a") == float("nan")
    with pytest.raises(ValueError, match="ISO"):
        TimeRange(since="yesterday-ish")
    with pytest.raises(TypeError, match="not a search term"):
        Catalog("/nonexistent/never-opened.db").search("sample == 'Si'")  # type: ignore[arg-type]


def test_ambiguous_uid_prefixes_name_the_candidates(catalog_url: str) -> None:
    store = DocumentStore(catalog_url)
    for i, uid in enumerate(["abcd0001-0000", "abcd0002-0000"]):
        store.write("start", {"uid": uid, "time": 1000.0 + i, "scan_id": 100 + i})
        store.write("stop", {"uid": f"s{i}", "run_start": uid, "time": 1001.0 + i,
                             "exit_status": "success", "num_events": {}})  # fmt: skip
    store.flush()
    catalog = Catalog(store=store)
    try:
        with pytest.raises(KeyError, match=r"abcd0002-0000, abcd0001-0000, \.\.\."):
            catalog["abcd"]
        assert catalog["abcd0002"].scan_id == 101
        assert catalog[-1].uid == "abcd0002-0000"
    finally:
        catalog.close()


def test_keys_with_dots_and_slashes_are_data(catalog_url: str) -> None:
    """The engine refuses such metadata keys; documents from elsewhere may have them."""
    store = DocumentStore(catalog_url)
    odd = {"we.ird": {"a/b": 1}, "x": {"y.z": "dotted"}, "'; DROP TABLE runs; --": "key"}
    store.write("start", {"uid": "odd-run", "time": 1.0, "scan_id": 7, **odd})
    store.flush()
    catalog = Catalog(store=store)
    try:
        assert scan_ids(catalog.search(Key(("we.ird", "a/b")) == 1)) == [7]
        assert scan_ids(catalog.search(Key(("x", "y.z")) == "dotted")) == [7]
        assert scan_ids(catalog.search(Key("x.y.z") == "dotted")) == []
        assert scan_ids(catalog.search(**{"'; DROP TABLE runs; --": "key"})) == [7]
        assert catalog[-1].start["we.ird"] == {"a/b": 1}
    finally:
        catalog.close()
