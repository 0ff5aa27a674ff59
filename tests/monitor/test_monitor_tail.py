"""``monitor.tail``: complete lines only, from the end at start-up, across rotation, truncation and torn writes."""

from __future__ import annotations

import os
from pathlib import Path

from monitor.tail import LineTail, last_line_start, scan_back


def append(path: Path, data: str) -> None:
    with path.open("a", encoding="utf-8", newline="") as f:
        f.write(data)


def test_partial_last_line_is_held_until_its_newline_arrives(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("")
    tail = LineTail(path, start_at_end=True)
    append(path, "a,1\nb,")
    assert tail.read_lines() == ["a,1"]
    assert tail.read_lines() == []
    append(path, "2\r\nc,3\n")
    assert tail.read_lines() == ["b,2", "c,3"]


def test_start_at_end_skips_history_but_reads_an_unfinished_last_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("header\nold,1\nold,2\nhalf,")
    tail = LineTail(path, start_at_end=True)
    assert tail.start_offset == len("header\nold,1\nold,2\n")
    append(path, "3\nnew,4\n")
    assert tail.read_lines() == ["half,3", "new,4"]


def test_start_at_end_of_a_missing_file_reads_it_all_once_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "later.csv"
    tail = LineTail(path, start_at_end=True)
    assert tail.read_lines() == [] and not tail.following and "does not exist" in str(tail.error)
    path.write_text("h\nx,1\n")
    assert tail.read_lines() == ["h", "x,1"]


def test_rotation_drains_the_old_file_then_follows_the_new_one_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("h\n")
    tail = LineTail(path, start_at_end=True)
    with path.open("a") as writer:  # the engine keeps its handle across the rename
        writer.write("old,1\n")
        writer.flush()
        os.rename(path, tmp_path / "log.csv.1")
        writer.write("old,2\n")
        writer.flush()
    path.write_text("h\nnew,1\n")
    assert tail.read_lines() == ["old,1", "old,2", "h", "new,1"]
    assert tail.rotations == 1
    append(path, "new,2\n")
    assert tail.read_lines() == ["new,2"]


def test_truncation_restarts_from_the_top(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("h\n")
    tail = LineTail(path, start_at_end=True)
    append(path, "a,1\nb,2\n")
    assert tail.read_lines() == ["a,1", "b,2"]
    path.write_text("h\n")  # same inode, shorter: truncated in place
    assert tail.read_lines() == ["h"] and tail.truncations == 1


def test_one_read_is_bounded_and_the_rest_comes_next_time(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("")
    tail = LineTail(path, start_at_end=True, max_bytes_per_read=10)
    append(path, "".join(f"row{i:03d}\n" for i in range(5)))  # 7 bytes a line
    first = tail.read_lines()
    assert first == ["row000"]
    rest = tail.read_lines() + tail.read_lines() + tail.read_lines() + tail.read_lines()
    assert first + rest == [f"row{i:03d}" for i in range(5)]


def test_last_line_start_and_scan_back_walk_backwards_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    lines = [f"{i},{'x' * 50}" for i in range(5000)]  # ~275 kB: several 64 kB chunks
    path.write_text("\n".join(lines) + "\npartial")
    with path.open("rb") as handle:
        end = last_line_start(handle, path.stat().st_size)
    assert end == path.stat().st_size - len("partial")
    found = scan_back(path, end, lambda line: int(line.split(",")[0]) < 4000, max_bytes=10**9)
    assert found == lines[4000:]
    assert scan_back(path, end, lambda line: False, max_bytes=10**9) == lines
    assert len(scan_back(path, end, lambda line: False, max_bytes=100_000)) < len(lines)  # the byte cap holds
    assert scan_back(tmp_path / "missing.csv", 100, lambda line: False, 10**6) == []
