"""The engine knows nothing of Textual: import-linter's contract (pyproject.toml) holds, and a direct scan
of the core's sources agrees."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

CORE = ["foreman_tui/map", "foreman_tui/engine", "foreman_tui/config.py"]


def test_import_linter_contract_holds() -> None:
    linter = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = subprocess.run([linter], cwd=REPO, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_core_module_imports_textual() -> None:
    files = [p for part in CORE for p in ((REPO / part).rglob("*.py") if (REPO / part).is_dir() else [REPO / part])]
    assert len(files) >= 8
    offenders = [str(p.relative_to(REPO)) for p in files if "textual" in _imports(p)]
    assert offenders == []
