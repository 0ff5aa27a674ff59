"""Project rule: no function or method is longer than 60 lines, from its ``def`` line to its last line inclusive
(decorators excluded, docstring included). Every ``.py`` file of the project is checked except ``.venv``,
``tests`` and hidden folders."""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 60
SKIPPED_DIRS = frozenset({".venv", "tests"})


def project_files(root: Path) -> Iterator[Path]:
    """Every ``.py`` file under ``root``; skipped and hidden folders are pruned, never walked (``.venv`` is big)."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(folder) / name


def long_functions(path: Path, root: Path) -> list[str]:
    """``path:line name (N lines)`` for each function or method in ``path`` over ``MAX_LINES`` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_LINES:
                found.append(f"{path.relative_to(root).as_posix()}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_long_functions_reports_path_line_name_and_length(tmp_path: Path) -> None:
    body = [f"x{i} = {i}" for i in range(MAX_LINES - 1)]  # with its def line: exactly MAX_LINES lines
    source = ["def fits():", *(f"    {line}" for line in body), "", "", "class C:", "    @staticmethod"]
    source += ["    def too_long():", *(f"        {line}" for line in body), "        y = 1", ""]
    (tmp_path / "m.py").write_text("\n".join(source))
    def_line = source.index("    def too_long():") + 1
    assert long_functions(tmp_path / "m.py", tmp_path) == [f"m.py:{def_line} too_long ({MAX_LINES + 1} lines)"]


def test_project_files_skip_venv_tests_and_hidden_folders(tmp_path: Path) -> None:
    for rel in ("a.py", "pkg/b.py", ".venv/c.py", "tests/d.py", ".hidden/e.py", "pkg/.cache/f.py", "pkg/g.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in project_files(tmp_path)] == ["a.py", "pkg/b.py"]


def test_no_function_is_longer_than_60_lines() -> None:
    files = list(project_files(REPO))
    assert len(files) > 50, f"found only {len(files)} files under {REPO}: is the walk broken?"
    too_long = [entry for path in files for entry in long_functions(path, REPO)]
    assert not too_long, f"functions over {MAX_LINES} lines (split them along their steps):\n" + "\n".join(too_long)
