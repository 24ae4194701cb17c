"""The layering of docs/architecture.md and the typed core hold: import-linter's contracts
(pyproject.toml's ``[tool.importlinter]``) are kept, and mypy (``[tool.mypy]``: strict on
verdicts, judging, stats, store, study and records) finds nothing. Each runs as CI runs it, from
the repository root; ``-k mypy`` runs the type check alone (a cold cache takes minutes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PACKAGE = ROOT / "src" / "llm_judge"
TOP = {"llm_judge.cli", "llm_judge.ui"}  # above every contract's sources
SHARED_BACKEND_CODE = {"__init__", "base", "registry"}  # the protocol and the registry: no backend


def run(*command: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))  # the tree under test, whatever is installed
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)


def contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def top_level_modules() -> set[str]:
    """Every module and package right under llm_judge (``__main__`` aside: it only calls the cli)."""
    names = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return {f"llm_judge.{n}" for n in names} - {"llm_judge.__init__", "llm_judge.__main__"}


def test_the_import_contracts_are_kept():
    done = run(str(BIN / "lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_every_top_level_module_is_placed_by_the_first_contract():
    """A new module cannot slip under the contracts: the first one names every module but the top."""
    first = contracts()[0]
    assert set(first["forbidden_modules"]) == TOP
    assert set(first["source_modules"]) == top_level_modules() - TOP


def test_the_present_contract_names_every_backend_module():
    """present/ may import no backend: every module of backends/ but the shared protocol is named
    (a backend added later is covered once it is listed)."""
    present = next(c for c in contracts() if c.get("source_modules") == ["llm_judge.present"])
    modules = {f"llm_judge.backends.{p.stem}" for p in (PACKAGE / "backends").glob("*.py")}
    assert modules - set(present["forbidden_modules"]) <= {f"llm_judge.backends.{m}" for m in SHARED_BACKEND_CODE}


@pytest.mark.mypy
def test_mypy_finds_nothing_in_the_typed_core():
    done = run(sys.executable, "-m", "mypy")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
