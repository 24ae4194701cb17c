"""The CLI package: the judge options declared once for compare, run and judges eval, with the
same meaning in all three; one home for the defaults (defaults.py, which imports nothing of the
package); the entry points (``llm-judge``, ``python -m llm_judge.cli``) still reach every command."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.metadata
import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

import llm_judge
from llm_judge import defaults
from llm_judge.cli import cli, main
from llm_judge.cli.options import JUDGE_FIELDS, JudgeArgs
from llm_judge.errors import LLMJudgeError

SRC = Path(llm_judge.__file__).parent
JUDGED = {"compare": cli.commands["compare"], "run": cli.commands["run"],
          "judges eval": cli.commands["judges"].commands["eval"]}  # type: ignore[attr-defined]
JUDGE_FLAGS = ["--judge", "--judge-method", "--verdict-format", "--criteria", "--scale", "--judge-max-tokens",
               "--protocol"]


def options(command: click.Command) -> dict[str, click.Option]:
    return {p.opts[0]: p for p in command.params if isinstance(p, click.Option)}


# --- the judge options, declared once -----------------------------------------------------------

@pytest.mark.parametrize("name", list(JUDGED))
def test_each_judging_command_takes_the_same_judge_options_in_the_same_order(name):
    declared = [flag for flag in options(JUDGED[name]) if flag in JUDGE_FLAGS]
    assert declared == JUDGE_FLAGS
    assert [p.name for p in JUDGED[name].params if p.name in JUDGE_FIELDS] == list(JUDGE_FIELDS)


def test_the_judge_options_share_their_types_and_defaults_except_the_judge_that_judges_eval_asks_for():
    seen = {name: {flag: options(cmd)[flag] for flag in JUDGE_FLAGS} for name, cmd in JUDGED.items()}
    for flag in JUDGE_FLAGS[1:]:
        kinds = {(repr(o.type), o.default, o.multiple) for o in (seen[n][flag] for n in JUDGED)}
        assert len(kinds) == 1, (flag, kinds)
    assert seen["compare"]["--criteria"].default == defaults.CRITERIA_TEXT
    assert seen["run"]["--scale"].default == defaults.SCALE
    assert seen["run"]["--judge-max-tokens"].default == defaults.JUDGE_MAX_TOKENS
    assert seen["compare"]["--judge"].default == seen["run"]["--judge"].default == (defaults.MODEL,)
    assert not seen["judges eval"]["--judge"].default  # eval names its judges itself
    assert seen["judges eval"]["--judge-method"].help != seen["run"]["--judge-method"].help  # its own wording


def test_every_command_with_a_context_size_defaults_to_the_one_default():
    found = {name: opts["--n-ctx"].default for name, cmd in _commands(cli)
             if "--n-ctx" in (opts := options(cmd))}
    assert set(found) == {"compare", "run", "judges eval", "judges tune", "ui"}
    assert set(found.values()) == {defaults.N_CTX}


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            found += _commands(cmd, f"{prefix}{name} ")
        else:
            found.append((prefix + name, cmd))
    return found


ASKED = ["--judge", "fake:j", "--judge", "fake:k", "--judge-method", "weighted", "--verdict-format", "winner",
         "--criteria", "Accuracy,Clarity", "--scale", "1-10", "--judge-max-tokens", "77"]


class Stop(LLMJudgeError):
    pass


def stop_with(seen: dict[str, Any], **names: str):
    """A library call that keeps what it was given and ends the command (one error line, exit 2)."""
    def call(*args: Any, **kwargs: Any) -> None:
        seen.update(dict(zip(names.values(), args)), **kwargs)
        raise Stop("stopped here")
    return call


def test_compare_hands_the_judge_options_to_the_library(monkeypatch, capsys):
    seen: dict[str, Any] = {}
    monkeypatch.setattr(importlib.import_module("llm_judge.compare"), "compare", stop_with(seen))  # not the package's
    assert main(["compare", "Why?", "--model-a", "fake:a", "--model-b", "fake:b", *ASKED]) == 2
    assert "error: stopped here" in capsys.readouterr().err
    assert seen["judge"] == ["fake:j", "fake:k"] and seen["judge_method"] == "weighted"
    assert seen["verdict_format"] == "winner" and seen["criteria"] == "Accuracy,Clarity"
    assert (seen["scale"].low, seen["scale"].high) == (1, 10) and seen["judge_sampling"].max_tokens == 77
    assert seen["judge_sampling"].temperature == 0


def test_run_hands_the_same_judge_options_to_the_study(monkeypatch, tmp_path):
    seen: dict[str, Any] = {}
    monkeypatch.setattr("llm_judge.study.run_study", stop_with(seen, a="config"))
    assert main(["run", "--candidate", "fake:a", "--candidate", "fake:b", "--mode", "pairwise", "--limit", "1", "--db",
                 str(tmp_path / "s.db"), "--quiet", *ASKED]) == 2
    config = seen["config"]
    assert config.judge == ["fake:j", "fake:k"] and config.judge_method == "weighted"
    assert config.verdict_format == "winner" and [c.name for c in config.criteria] == ["Accuracy", "Clarity"]
    assert (config.scale.low, config.scale.high) == (1, 10) and config.judge_sampling.max_tokens == 77


def test_judges_eval_hands_the_same_judge_options_to_the_evaluation(monkeypatch, tmp_path):
    seen: dict[str, Any] = {}
    monkeypatch.setattr("llm_judge.judges.evaluate", stop_with(seen, a="judge", b="name", c="items"))
    assert main(["judges", "eval", "--limit", "1", "--db", str(tmp_path / "s.db"), "--quiet", *ASKED]) == 2
    setup = seen["judge"].setup  # the judge holds how it is asked
    assert seen["name"] == "fake:j" and [c.name for c in setup.criteria] == ["Accuracy", "Clarity"]
    assert (setup.scale.low, setup.scale.high) == (1, 10) and setup.sampling.max_tokens == 77
    assert {"winner", "weighted"} <= {v for v in vars(setup).values() if isinstance(v, str)}


def test_the_judge_options_are_parsed_only_when_the_command_asks():
    args = JudgeArgs(("fake:j",), "plain", "full", "No Such Criterion", "4-1", 512)  # nothing raised yet
    with pytest.raises(LLMJudgeError, match="bad scale 4-1"):
        args.parsed_scale()
    with pytest.raises(LLMJudgeError):
        args.parsed_criteria()


# --- one home for the defaults ------------------------------------------------------------------

def product_sources() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if p.name != "defaults.py" or p.parent != SRC]


@pytest.mark.parametrize("literal", [r"\b2048\b", r"Relevance,\s*Coherence,\s*Completeness",
                                     r"\"Relevance\",\s*\"Coherence\",\s*\"Completeness\""])
def test_the_repeated_defaults_are_written_only_in_defaults_py(literal):
    found = [f"{p.relative_to(SRC)}:{n}" for p in product_sources()
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if re.search(literal, line)]
    assert not found, f"{literal} outside defaults.py (import it from llm_judge.defaults): {found}"


def test_defaults_py_imports_nothing_of_the_package():
    tree = ast.parse((SRC / "defaults.py").read_text(encoding="utf-8"))
    imported = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(n, ast.ImportFrom) and n.level == 0 and n.module in {"__future__", "typing"}
               for n in imported), [ast.dump(n) for n in imported]


def test_the_library_takes_its_defaults_from_defaults_py():
    from llm_judge.compare import compare
    from llm_judge.criteria import DEFAULT_CRITERIA
    from llm_judge.sampling import JUDGE_DEFAULT, SamplingParams
    from llm_judge.stats import DEFAULT_BOOT
    from llm_judge.study import StudyConfig

    assert inspect.signature(compare).parameters["n_ctx"].default == defaults.N_CTX
    assert {f.name: f.default for f in dataclasses.fields(StudyConfig)}["n_ctx"] == defaults.N_CTX
    assert DEFAULT_CRITERIA == defaults.CRITERIA and DEFAULT_BOOT == defaults.BOOTSTRAP
    assert JUDGE_DEFAULT["max_tokens"] == defaults.JUDGE_MAX_TOKENS
    assert SamplingParams().max_tokens == defaults.ANSWER_MAX_TOKENS
    assert all(type(v) is int for v in (defaults.N_CTX, defaults.JUDGE_MAX_TOKENS, defaults.BOOTSTRAP))  # stored as is


# --- the entry points ---------------------------------------------------------------------------

def test_the_installed_command_is_the_packages_main():
    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == "llm-judge"]
    assert script.value == "llm_judge.cli:main" and script.load() is main


@pytest.mark.parametrize("module", ["llm_judge", "llm_judge.cli"])
def test_python_m_reaches_every_command(module):
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert set(cli.commands) <= set(re.findall(r"^  (\w+)", out.stdout, re.M)), out.stdout
