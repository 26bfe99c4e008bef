from __future__ import annotations

import json
import math
import os
import re
import selectors
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from acq._errors import MetadataError
from acq._persistent import PersistentDict

FILENAME = "metadata.json"


def _file_bytes(directory: Path) -> bytes | None:
    path = directory / FILENAME
    return path.read_bytes() if path.exists() else None


def _stray_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name != FILENAME)


# -- basics -----------------------------------------------------------------------------


def test_round_trip_across_instances(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["scan_id"] = 7
    md["operator"] = "Ada"
    md["sample"] = {"name": "Si", "size": [1.5, 2.0], "ok": True, "note": None}
    md["ratio"] = 0.25

    again = PersistentDict(tmp_path)

    assert dict(again) == {
        "scan_id": 7,
        "operator": "Ada",
        "sample": {"name": "Si", "size": [1.5, 2.0], "ok": True, "note": None},
        "ratio": 0.25,
    }
    assert list(again) == ["scan_id", "operator", "sample", "ratio"]  # order kept
    assert again == md


def test_new_directory_loads_empty_and_writes_nothing_until_mutated(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path / "md")

    assert len(md) == 0
    assert list((tmp_path / "md").iterdir()) == []


def test_expands_user_and_creates_parent_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))

    md = PersistentDict("~/.local/share/acq/md")
    md["x"] = 1

    expected = tmp_path / ".local" / "share" / "acq" / "md"
    assert md.directory == expected
    assert md.file == expected / FILENAME
    assert json.loads((expected / FILENAME).read_text()) == {"x": 1}


def test_relative_directory_is_fixed_at_construction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    md = PersistentDict("md")
    monkeypatch.chdir(tmp_path.parent)

    md["x"] = 1

    assert md.directory == tmp_path / "md"
    assert PersistentDict(tmp_path / "md") == {"x": 1}


def test_file_is_an_indented_json_object(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["a"] = 1
    md["b"] = "Ångström"

    text = (tmp_path / FILENAME).read_text(encoding="ascii")

    assert json.loads(text) == {"a": 1, "b": "Ångström"}
    assert text.startswith('{\n  "a": 1,')


def test_repr_shows_path_and_contents(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["scan_id"] = 3

    assert repr(md) == f"PersistentDict({str(tmp_path)!r}, {{'scan_id': 3}})"


def test_module_exports_only_persistent_dict() -> None:
    import acq._persistent

    assert acq._persistent.__all__ == ["PersistentDict"]


# -- every mutation is on disk when the call returns --------------------------------------

MUTATIONS: dict[str, tuple[Callable[[PersistentDict], Any], dict[str, Any]]] = {
    "setitem_new": (lambda md: md.__setitem__("c", 3), {"a": 1, "b": [2], "c": 3}),
    "setitem_replace": (lambda md: md.__setitem__("a", "one"), {"a": "one", "b": [2]}),
    "delitem": (lambda md: md.__delitem__("a"), {"b": [2]}),
    "pop": (lambda md: md.pop("a"), {"b": [2]}),
    "pop_missing_with_default": (lambda md: md.pop("zz", None), {"a": 1, "b": [2]}),
    "popitem": (lambda md: md.popitem(), {"b": [2]}),
    "setdefault_missing": (lambda md: md.setdefault("c", (3,)), {"a": 1, "b": [2], "c": [3]}),
    "setdefault_present": (lambda md: md.setdefault("a", 9), {"a": 1, "b": [2]}),
    "update_mapping": (lambda md: md.update({"a": 5, "d": 4}), {"a": 5, "b": [2], "d": 4}),
    "update_pairs": (lambda md: md.update([("d", 4)]), {"a": 1, "b": [2], "d": 4}),
    "update_kwargs": (lambda md: md.update(d=4), {"a": 1, "b": [2], "d": 4}),
    "update_both": (
        lambda md: md.update({"d": 4}, e=5),
        {"a": 1, "b": [2], "d": 4, "e": 5},
    ),
    "clear": (lambda md: md.clear(), {}),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_every_mutating_method_persists(tmp_path: Path, name: str) -> None:
    mutate, expected = MUTATIONS[name]
    md = PersistentDict(tmp_path)
    md["a"] = 1
    md["b"] = [2]

    mutate(md)

    assert dict(md) == expected
    assert dict(PersistentDict(tmp_path)) == expected
    assert json.loads((tmp_path / FILENAME).read_text()) == expected
    assert _stray_files(tmp_path) == []


def test_popitem_and_setdefault_return_values(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["a"] = 1

    assert md.setdefault("t", (1, 2)) == [1, 2]  # the stored JSON form
    assert md.popitem() == ("a", 1)
    assert md.pop("t") == [1, 2]
    with pytest.raises(KeyError):
        md.popitem()


def test_clear_then_reload_is_empty(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md.update(a=1, b=2)

    md.clear()
    md.reload()

    assert dict(md) == {}
    assert dict(PersistentDict(tmp_path)) == {}


def test_deleting_a_missing_key_raises_key_error_and_writes_nothing(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["a"] = 1
    before = _file_bytes(tmp_path)

    with pytest.raises(KeyError):
        del md["missing"]

    assert _file_bytes(tmp_path) == before
    assert dict(md) == {"a": 1}


# -- what can be stored, and the copy that is stored ---------------------------------------


def test_tuples_come_back_as_lists(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["shape"] = (1, (2, 3))

    assert md["shape"] == [1, [2, 3]]
    assert PersistentDict(tmp_path)["shape"] == [1, [2, 3]]


def test_numpy_values_are_stored_as_plain_python(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["n"] = np.int64(3)
    md["x"] = np.float32(0.5)
    md["flag"] = np.bool_(True)
    md["arr"] = np.array([[1, 2], [3, 4]])
    md["nested"] = {"v": np.arange(2.0)}

    for loaded in (md, PersistentDict(tmp_path)):
        assert dict(loaded) == {
            "n": 3,
            "x": 0.5,
            "flag": True,
            "arr": [[1, 2], [3, 4]],
            "nested": {"v": [0.0, 1.0]},
        }
        assert type(loaded["n"]) is int
        assert type(loaded["flag"]) is bool
        assert type(loaded["nested"]["v"][0]) is float


def test_non_finite_floats_round_trip(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["values"] = [math.nan, math.inf, -math.inf]

    values = PersistentDict(tmp_path)["values"]

    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf]


def test_assigned_value_is_copied(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    sample = {"names": ["Si"]}
    md["sample"] = sample

    sample["names"].append("Ge")

    assert md["sample"] == {"names": ["Si"]}


def test_nested_in_place_mutation_is_written_only_by_flush(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["sample"] = {"temperature": 290}

    md["sample"]["temperature"] = 300

    assert PersistentDict(tmp_path)["sample"] == {"temperature": 290}
    md.flush()
    assert PersistentDict(tmp_path)["sample"] == {"temperature": 300}


@pytest.mark.parametrize("key", [1, None, ("a",), b"a"])
def test_non_str_key_raises_type_error_and_changes_nothing(tmp_path: Path, key: Any) -> None:
    md = PersistentDict(tmp_path)
    md["a"] = 1
    before = _file_bytes(tmp_path)

    with pytest.raises(TypeError, match=re.escape(f"keys must be str; got {key!r}")):
        md[key] = 2
    with pytest.raises(TypeError, match="keys must be str"):
        md.update({"ok": 1, key: 2})
    with pytest.raises(TypeError, match="keys must be str"):
        md.setdefault(key, 2)

    assert dict(md) == {"a": 1}
    assert _file_bytes(tmp_path) == before


def _cyclic() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


UNSTORABLE: dict[str, tuple[Any, str]] = {
    "set": ({1, 2}, r"md\['bad'\]: a value of type set"),
    "bytes": (b"raw", r"md\['bad'\]: a value of type bytes"),
    "object": (object(), r"md\['bad'\]: a value of type object"),
    "int_dict_key": ({"ok": {1: "x"}}, r"md\['bad'\]\['ok'\]: dict keys must be str; got 1"),
    "nested_in_list": ([1, [2, {3}]], r"md\['bad'\]\[1\]\[1\]: a value of type set"),
    "numpy_complex": (np.complex128(1j), r"md\['bad'\]: a value of type complex"),
    "cycle": (_cyclic(), r"md\['bad'\]\[0\]: it contains itself"),
}


@pytest.mark.parametrize("name", list(UNSTORABLE))
def test_unstorable_value_raises_type_error_naming_key_and_changes_nothing(
    tmp_path: Path, name: str
) -> None:
    value, message = UNSTORABLE[name]
    md = PersistentDict(tmp_path)
    md["a"] = 1
    before = _file_bytes(tmp_path)

    with pytest.raises(TypeError, match=message):
        md["bad"] = value
    with pytest.raises(TypeError, match=message):
        md.update({"good": 2, "bad": value})  # all or nothing: "good" is not stored
    with pytest.raises(TypeError, match=message):
        md.setdefault("bad", value)

    assert dict(md) == {"a": 1}
    assert _file_bytes(tmp_path) == before
    assert _stray_files(tmp_path) == []


def test_flush_rejects_unstorable_nested_value_without_writing(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["sample"] = {"tags": []}
    before = _file_bytes(tmp_path)

    md["sample"]["tags"].append({"a", "b"})

    with pytest.raises(TypeError, match=r"md\['sample'\]\['tags'\]\[0\]: a value of type set"):
        md.flush()
    with pytest.raises(TypeError, match=r"md\['sample'\]\['tags'\]\[0\]"):
        md["other"] = 1  # every write checks everything
    assert _file_bytes(tmp_path) == before
    assert "other" not in md


def test_failed_write_leaves_mapping_and_file_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    md = PersistentDict(tmp_path)
    md["a"] = 1
    before = _file_bytes(tmp_path)

    def fail(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        md["b"] = 2
    with pytest.raises(OSError, match="No space left"):
        md.clear()
    monkeypatch.undo()

    assert dict(md) == {"a": 1}
    assert _file_bytes(tmp_path) == before
    assert _stray_files(tmp_path) == []  # the temporary file was removed


# -- reloading, several instances, threads ------------------------------------------------


def test_reload_sees_changes_made_by_another_instance(tmp_path: Path) -> None:
    first = PersistentDict(tmp_path)
    first["a"] = 1
    second = PersistentDict(tmp_path)
    second["b"] = 2

    assert dict(first) == {"a": 1}  # memory is not re-read per access
    first.reload()
    assert dict(first) == {"a": 1, "b": 2}


def test_last_writer_wins_between_instances(tmp_path: Path) -> None:
    first = PersistentDict(tmp_path)
    second = PersistentDict(tmp_path)
    first["a"] = 1
    second["b"] = 2

    assert dict(PersistentDict(tmp_path)) == {"b": 2}


def test_concurrent_writes_from_threads_end_consistent(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)

    def write(prefix: str) -> None:
        for i in range(20):
            md[f"{prefix}{i}"] = i

    threads = [threading.Thread(target=write, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(md) == 80
    assert dict(PersistentDict(tmp_path)) == dict(md)


# -- a damaged data file is reported, never overwritten -------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b'{"a": 1', b"[1, 2]", b'"text"', b"\xff\xfe\x00"],
    ids=["empty", "garbage", "truncated", "list", "string", "not_utf8"],
)
def test_corrupt_file_raises_naming_the_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / FILENAME).write_bytes(content)

    with pytest.raises(MetadataError, match=r"metadata\.json") as info:
        PersistentDict(tmp_path)

    assert str(tmp_path / FILENAME) in str(info.value)
    assert "will not overwrite" in str(info.value)
    assert (tmp_path / FILENAME).read_bytes() == content


def test_reload_of_corrupt_file_raises_and_keeps_memory(tmp_path: Path) -> None:
    md = PersistentDict(tmp_path)
    md["a"] = 1
    (tmp_path / FILENAME).write_text("{oops")

    with pytest.raises(MetadataError, match=r"metadata\.json"):
        md.reload()

    assert dict(md) == {"a": 1}


def test_unreadable_file_raises_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / FILENAME).mkdir()  # exists, but cannot be read as a file (even by root)

    with pytest.raises(MetadataError, match="cannot read") as info:
        PersistentDict(tmp_path)

    assert str(tmp_path / FILENAME) in str(info.value)


def test_stray_temporary_files_are_ignored(tmp_path: Path) -> None:
    PersistentDict(tmp_path)["a"] = 1
    (tmp_path / ".metadata-abc123.tmp").write_text('{"a": 2, "half')

    assert dict(PersistentDict(tmp_path)) == {"a": 1}


# -- a real crash ------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from acq._persistent import PersistentDict

    md = PersistentDict(sys.argv[1])
    i = md.get("last", -1) + 1
    payload = "x" * 500
    while True:
        md.update({f"k{i}": f"{payload}{i}", "last": i})
        print(i, flush=True)
        i += 1
    """
)


def _wait_for_marker(
    proc: subprocess.Popen[bytes], target: int, deadline: float
) -> tuple[int, bytes]:
    """Read ``proc``'s stdout until it prints a marker >= ``target``, or fail.

    Returns the last marker read and the bytes read after it (a partial line).
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no marker {target} from the writer before the deadline")
            if not selector.select(remaining):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                stderr = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"the writer exited early:\n{stderr}")
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if lines and int(lines[-1]) >= target:
                return int(lines[-1]), buffer


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_during_writes_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    start = -1
    for _round in range(8):  # each round resumes from what the previous kill left
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            seen, partial = _wait_for_marker(proc, start + 25, deadline=time.monotonic() + 30)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stderr.close()
        # Every marker printed before the kill, including those not read yet; a partial
        # last line (no newline) is not counted.
        unread = (partial + proc.stdout.read()).split(b"\n")[:-1]
        proc.stdout.close()
        acknowledged = max([seen, *map(int, unread)])

        md = PersistentDict(tmp_path)

        last = md["last"]
        # At most one write finished whose marker the kill prevented.
        assert acknowledged <= last <= acknowledged + 1
        expected: dict[str, Any] = {f"k{j}": f"{'x' * 500}{j}" for j in range(last + 1)}
        expected["last"] = last
        assert dict(md) == expected  # one consistent state: nothing missing, nothing extra
        start = last
