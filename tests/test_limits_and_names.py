"""A model that would take no call at a time is refused in one line (before, a study or a
comparison on it waited for ever), and a name from the config file given with --config is found
by every command, fine-tuning's base model included."""

from __future__ import annotations

import pytest

from llm_judge.backends.gguf import embedded_model_path
from llm_judge.cli import main
from llm_judge.config import Settings
from llm_judge.errors import LLMJudgeError
from llm_judge.finetune.base import resolve_base
from llm_judge.runner import Runner


def test_a_configured_concurrency_of_0_is_refused_in_one_line(tmp_path, capsys):
    config = tmp_path / "models.toml"
    config.write_text('[models.srv]\nspec = "openai:m@http://127.0.0.1:9/v1"\nconcurrency = 0\n')
    assert main(["--config", str(config), "compare", "q", "--model-a", "srv", "--judge", "fake:j"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "concurrency=0 out of range" in err[0] and "it takes:" in err[0], err


def test_a_runner_refuses_an_endpoint_that_takes_no_call():
    with pytest.raises(LLMJudgeError, match="takes 0 calls at a time: give it at least 1"):
        Runner(2, {"openai:m@http://127.0.0.1:9/v1": 0})


def test_fine_tuning_finds_its_base_model_by_a_name_from_the_given_config_file(tmp_path):
    config = tmp_path / "models.toml"
    config.write_text('[models.mybase]\nspec = "embedded"\n')
    base = resolve_base("mybase", settings=Settings(config=config))
    assert base.gguf == embedded_model_path() and base.spec == "mybase"
    with pytest.raises(LLMJudgeError, match="unknown model spec 'mybase'"):
        resolve_base("mybase")  # not in the environment's config file
