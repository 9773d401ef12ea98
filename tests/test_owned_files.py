"""Which files a node owns, and where the list came from."""

from __future__ import annotations

import pytest

from foreman_tui.map.files import clean_path, infer_owned_files
from foreman_tui.map.load import load_map
from foreman_tui.map.model import NodeContent

from .conftest import BPC_MAP


def content(**fields: object) -> NodeContent:
    return NodeContent.model_validate({"title": "t", "overview": "o", **fields})


def test_code_files_win() -> None:
    owned = infer_owned_files(content(code={"files": ["src/x.py", "./src/y.py"]}, implementation="Files: `z.py`"))
    assert owned.files == ("src/x.py", "src/y.py")
    assert owned.source == "code.files"


def test_chinese_declaration_line_in_implementation() -> None:
    owned = infer_owned_files(load_map(BPC_MAP).content("01_initialize"))
    assert owned.files == ("src/python/01_basic_bpc/instance.py", "src/python/01_basic_bpc/rmp.py")
    assert owned.source == "implementation"
    assert "declared" in owned.detail


@pytest.mark.parametrize(
    "text",
    [
        "Files: src/a.py, src/b.py",
        "**Files**: `src/a.py`, `src/b.py`",
        "- files：`src/a.py`、`src/b.py`",
        "Intro\n\nFiles: `src/a.py` `src/b.py`\n\nMore text naming `other.py`.",
    ],
)
def test_files_lines(text: str) -> None:
    owned = infer_owned_files(content(implementation=text))
    assert owned.files == ("src/a.py", "src/b.py")


def test_backticked_source_paths_outside_code_blocks() -> None:
    text = "Edit `pkg/solver.py` and call `solve()`.\n\n```python\n# `pkg/not_this.py`\n```\nSee `docs/notes.md`."
    owned = infer_owned_files(content(how=text))
    assert owned.files == ("pkg/solver.py",)
    assert owned.source == "how"


def test_files_named_by_check_commands_are_the_last_resort() -> None:
    owned = infer_owned_files(
        content(
            implementation="No paths here.",
            verify={
                "core": [
                    {"desc": "d", "level": "L1", "cmd": "pytest tests/test_x.py::test_one -q"},
                    {"desc": "e", "level": "L1", "cmd": "python -m pytest tests/test_y.py"},
                ]
            },
        )
    )
    assert owned.files == ("tests/test_x.py", "tests/test_y.py")
    assert owned.source == "verify"


def test_override_replaces_everything() -> None:
    owned = infer_owned_files(content(code={"files": ["a.py"]}), override=["b.py"])
    assert (owned.files, owned.source) == (("b.py",), "foreman.toml")


def test_nothing_found() -> None:
    assert infer_owned_files(content(implementation="prose only")).files == ()


def test_unsafe_inferred_paths_are_ignored() -> None:
    owned = infer_owned_files(content(implementation="See `/abs/x.py` and `../up.py` and `ok/in.py`."))
    assert owned.files == ("ok/in.py",)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/etc/x.py", "absolute"),
        ("C:/x/y.py", "absolute"),
        ("~/x.py", "absolute"),
        ("../x.py", "leaves"),
        ("a/../../x.py", "leaves"),
        ("..", "leaves"),
        (".", "project itself"),
        ("  ", "empty"),
    ],
)
def test_clean_path_refuses(path: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        clean_path(path)


def test_clean_path_normalises() -> None:
    assert clean_path("./src\\pkg//m.py") == "src/pkg/m.py"
    assert clean_path("a/b/../c.py") == "a/c.py"
