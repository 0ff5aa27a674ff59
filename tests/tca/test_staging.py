"""The staging file: round trip, fsynced private appends, torn tails set aside, corrupt lines refused by line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from tca_builders import make_close, make_execution, make_unfilled

from core.errors import StateCorruptError
from tca.records import ExecutionRecord
from tca.staging import StagingWriter, encode_record, read_staging
from utils.crc_lines import crc_of


def test_records_come_back_in_order_and_equal(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tca_staging.jsonl"
    records = [
        make_execution(exec_id="E1", algo="ADAPTIVE", algo_params={"adaptivePriority": "Normal", "levels": [1, 2]}),
        make_execution(exec_id="E2", quantity=40, order_quantity=100, client_order_id="O2", arrival_price=None),
        make_unfilled(client_order_id="O2", unfilled_quantity=60),
        make_close(),
    ]
    with StagingWriter(path) as writer:
        assert all(writer.append(r) for r in records)
    contents = read_staging(path)
    assert contents.records == records
    assert contents.torn_tail is None
    lines = [json.loads(line) for line in path.read_text(encoding="ascii").splitlines()]
    assert [(line["v"], line["seq"], line["kind"]) for line in lines] == [
        (1, 1, "execution"), (1, 2, "execution"), (1, 3, "unfilled"), (1, 4, "close"),
    ]  # fmt: skip


def test_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with StagingWriter(tmp_path / "s.jsonl") as writer:
            writer.append(make_execution())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "s.jsonl").stat().st_mode) == 0o600


def test_an_execution_staged_again_is_not_written_twice_even_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    with StagingWriter(path) as writer:
        assert writer.append(make_execution(exec_id="E1"))
        assert not writer.append(make_execution(exec_id="E1"))
    with StagingWriter(path) as writer:
        assert not writer.append(make_execution(exec_id="E1"))
        assert writer.append(make_execution(exec_id="E2"))
    assert [r.exec_id for r in read_staging(path).records] == ["E1", "E2"]


def test_torn_last_line_is_ignored_by_readers_and_set_aside_by_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    with StagingWriter(path) as writer:
        writer.append(make_execution(exec_id="E1"))
    fragment = encode_record(make_execution(exec_id="E2"), 2)[:37]
    with path.open("ab") as f:
        f.write(fragment)  # a crash in the middle of the second append
    contents = read_staging(path)
    assert [r.exec_id for r in contents.records] == ["E1"]
    assert contents.torn_tail is not None and contents.torn_tail.line_number == 2
    assert contents.torn_tail.length == len(fragment)
    with StagingWriter(path) as writer:
        assert writer.recovered_torn_tail == contents.torn_tail
        writer.append(make_execution(exec_id="E2"))
    assert [r.exec_id for r in read_staging(path).records] == ["E1", "E2"]
    aside = tmp_path / "s.jsonl.torn"
    assert aside.read_bytes() == fragment + b"\n"
    assert stat.S_IMODE(aside.stat().st_mode) == 0o600


def _write_three(path: Path) -> list[bytes]:
    with StagingWriter(path) as writer:
        for i in range(3):
            writer.append(make_execution(exec_id=f"E{i}"))
    return path.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda line: line.replace(b'"price":10.0', b'"price":10.5'), "crc"),
        (lambda line: b"{not json\n", "not a JSON record"),
        (lambda line: b"[1, 2]\n", "crc field"),
        (lambda line: b"", "seq 3, expected 2"),  # a record missing
    ],
)
def test_a_bad_line_that_is_not_the_last_raises_naming_file_and_line(tmp_path: Path, damage, message: str) -> None:
    path = tmp_path / "s.jsonl"
    lines = _write_three(path)
    path.write_bytes(lines[0] + damage(lines[1]) + lines[2])
    with pytest.raises(StateCorruptError, match=message) as caught:
        read_staging(path)
    assert f"{path}:2:" in str(caught.value)
    with pytest.raises(StateCorruptError):
        StagingWriter(path)  # the writer refuses to append to a file it cannot trust


def _relabel(line: bytes, **changes: object) -> bytes:
    """The line with ``changes`` applied and a valid crc (damage that a crc does not catch)."""
    body = json.loads(line)
    body.pop("crc")
    body.update(changes)
    return (json.dumps({**body, "crc": crc_of(body)}, sort_keys=True, separators=(",", ":")) + "\n").encode()


def test_unknown_version_kind_or_invalid_record_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    (line,) = _write_three(path)[:1]
    cases = {
        "format version 2": _relabel(line, v=2),
        "kind: must be one of": _relabel(line, kind="quote"),
        "quantity: must be a whole number": _relabel(line, record={**json.loads(line)["record"], "quantity": -5}),
    }
    for message, bad in cases.items():
        path.write_bytes(bad)
        with pytest.raises(StateCorruptError, match=message):
            read_staging(path)


def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    contents = read_staging(tmp_path / "nothing.jsonl")
    assert contents.records == [] and contents.torn_tail is None


def test_record_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"^price: must be a finite number > 0"):
        make_execution(price=float("nan"))
    with pytest.raises(ValueError, match=r"^side: must be one of"):
        make_execution(side="SHORT")
    with pytest.raises(ValueError, match=r"^algo: must be one of"):
        make_execution(algo="VWAP")
    with pytest.raises(ValueError, match=r"^quantity: must not exceed order_quantity 100"):
        make_execution(quantity=101)
    with pytest.raises(ValueError, match=r"^propensity: must be a probability"):
        make_execution(propensity=1.5)
    with pytest.raises(ValueError, match=r"^algo_params: must be JSON"):
        make_execution(algo_params={"x": float("inf")})
    with pytest.raises(ValueError, match=r"^unfilled_quantity: must be a whole number >= 1"):
        make_unfilled(unfilled_quantity=0)
    with pytest.raises(ValueError, match=r"^session_date: must be a date"):
        make_close(session_date="yesterday")
    assert isinstance(make_execution(price=10), ExecutionRecord) and make_execution(price=10).price == 10.0
