"""Backends and configuration untangled (issue #19 point 4): each backend's ``Options`` refuses an
unknown option in one line naming the valid ones, in the config file and in ``get_backend``; one
``Settings`` object (no process-wide defaults) decides the engine and the config file and is part
of a loaded model's identity; each backend judges its own specs for a public page; and no import
cycle in ``backends/`` or ``finetune/``."""

from __future__ import annotations

import ast
import types
from pathlib import Path

import pytest

from llm_judge import LLMJudgeError, engine
from llm_judge import backends as B
from llm_judge.backends import forget_backends, get_backend, registry
from llm_judge.backends.base import Options
from llm_judge.config import Settings, load_config, parse_config
from llm_judge.present import page

NOWHERE = "openai:m@http://127.0.0.1:9/v1"  # nothing listens there: loading it sends nothing
SRC = Path(__file__).resolve().parent.parent / "src" / "llm_judge"


def one_line(info: pytest.ExceptionInfo[LLMJudgeError]) -> str:
    text = str(info.value)
    assert "\n" not in text
    return text


# --- options ----------------------------------------------------------------------------------

def test_every_backend_declares_options_that_forbid_what_they_do_not_name():
    for prefix, module in registry().items():
        assert issubclass(module.Options, Options), prefix
        assert module.Options.model_config.get("extra") == "forbid", prefix


def test_an_unknown_option_in_get_backend_is_one_line_naming_it_the_model_and_the_valid_ones():
    with pytest.raises(LLMJudgeError) as info:
        get_backend(NOWHERE, max_attempt=2)
    text = one_line(info)
    assert text.startswith(f"model {NOWHERE} has unknown option 'max_attempt'")
    assert "did you mean 'max_attempts'?" in text and "key_env, max_attempts, schema_mode, timeout" in text
    with pytest.raises(LLMJudgeError, match=r"^model embedded has unknown option 'paralel' \(did you mean "
                                            r"'parallel'\? known: engine, flash_attention, n_ctx, n_threads, parallel\)$"):
        get_backend("embedded", paralel=2)  # refused before anything is loaded


def test_a_value_of_the_wrong_type_is_one_line_naming_the_option_and_the_model():
    with pytest.raises(LLMJudgeError) as info:
        get_backend(NOWHERE, timeout="soon")
    assert one_line(info).startswith(f"model {NOWHERE} has option timeout='soon' of the wrong type")
    with pytest.raises(LLMJudgeError, match="model embedded has option engine='gpu' of the wrong type"):
        get_backend("embedded", engine="gpu")


def test_an_unknown_option_in_the_config_file_is_refused_when_it_is_read(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[models.judge]\nspec = "openai:m@http://127.0.0.1:9/v1"\nmax_attempt = 2\n')
    with pytest.raises(LLMJudgeError) as info:
        load_config(settings=Settings.from_env({}, config=config))
    text = one_line(info)
    assert f"{config}: models.judge has unknown key 'max_attempt' (did you mean 'max_attempts'?" in text
    assert "key_env" in text and "parallel" in text  # the keys some backend takes
    with pytest.raises(LLMJudgeError, match="models.j.schema_mode has the wrong type"):
        parse_config('[models.j]\nspec = "openai:m@http://h/v1"\nschema_mode = "json"\n', "config.toml")


def test_a_config_option_of_another_backend_is_refused_where_the_model_is_loaded(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[models.local]\nspec = "embedded"\ntimeout = 5\n')
    settings = Settings.from_env({}, config=config)
    with pytest.raises(LLMJudgeError) as info:
        get_backend("local", settings)
    assert one_line(info) == ("model local has unknown option 'timeout' "
                              "(known: engine, flash_attention, n_ctx, n_threads, parallel)")


def test_the_options_every_caller_passes_do_not_fail_a_backend_that_ignores_them():
    fake = get_backend("fake:x", n_ctx=4096, concurrency=3, key_configured_only=True)
    assert fake.spec == "fake:x"
    assert get_backend(NOWHERE, n_ctx=4096).concurrency == 16  # taken where declared, ignored elsewhere


# --- settings ---------------------------------------------------------------------------------

def test_settings_are_read_from_the_environment_once_when_built(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_JUDGE_ENGINE", "inprocess")
    monkeypatch.setenv("LLM_JUDGE_PARALLEL", "3")
    monkeypatch.setenv("LLM_JUDGE_CONFIG", str(tmp_path / "c.toml"))
    settings = Settings.from_env()
    assert (settings.engine, settings.parallel, settings.config) == ("inprocess", 3, tmp_path / "c.toml")
    monkeypatch.setenv("LLM_JUDGE_ENGINE", "server")  # later changes do not reach settings already built
    assert settings.engine == "inprocess"
    assert Settings.from_env(engine="auto", parallel=None).engine == "auto"  # an override wins, None does not
    assert settings.flash_attention is None  # unset: the engine's default (off)
    for text, on in (("1", True), ("On", True), ("0", False), ("off", False)):
        monkeypatch.setenv("LLM_JUDGE_FLASH_ATTENTION", text)
        assert Settings.from_env().flash_attention is on
    monkeypatch.setenv("LLM_JUDGE_FLASH_ATTENTION", "maybe")
    with pytest.raises(LLMJudgeError, match=r"^LLM_JUDGE_FLASH_ATTENTION='maybe' is not on or off: set it to 1 or 0"):
        Settings.from_env()
    monkeypatch.delenv("LLM_JUDGE_FLASH_ATTENTION")
    with pytest.raises(LLMJudgeError, match="flash_attention 'yes': give true or false"):
        Settings(flash_attention="yes")  # type: ignore[arg-type]
    monkeypatch.setenv("LLM_JUDGE_PARALLEL", "many")
    with pytest.raises(LLMJudgeError, match="LLM_JUDGE_PARALLEL='many' is not a whole number"):
        Settings.from_env()
    with pytest.raises(LLMJudgeError, match="unknown engine 'gpu'"):
        Settings(engine="gpu")  # type: ignore[arg-type]


def test_no_process_wide_defaults_two_settings_give_two_backends():
    assert not hasattr(engine, "_defaults") and not hasattr(engine, "defaults_key")
    forget_backends()
    one, two = Settings.from_env({}, engine="inprocess"), Settings.from_env({}, engine="server")
    a, b = get_backend(NOWHERE, one), get_backend(NOWHERE, two)
    assert a is not b
    assert get_backend(NOWHERE, Settings.from_env({}, engine="inprocess")) is a  # equal settings: the same model
    assert {key[-1] for key in B._loaded} >= {one, two}  # the settings are part of the cache key
    forget_backends()


def test_a_library_caller_that_passes_nothing_gets_the_environments_config(monkeypatch, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[models.judge]\nspec = "{NOWHERE}"\nconcurrency = 5\n')
    monkeypatch.setenv("LLM_JUDGE_CONFIG", str(config))
    assert get_backend("judge").concurrency == 5
    other = tmp_path / "other.toml"
    other.write_text(f'[models.judge]\nspec = "{NOWHERE}"\nconcurrency = 7\n')
    assert get_backend("judge", Settings.from_env(config=other)).concurrency == 7  # passed settings win


# --- the public page --------------------------------------------------------------------------

def test_a_backend_without_public_check_is_off_on_a_public_page(monkeypatch):
    policy = dict(public=True, allowed_dirs=[], configured=set(), allow_fake=True)
    page.check_spec_allowed("fake:a", **policy)  # the fake backend's own check lets it in
    bare = types.SimpleNamespace(PREFIXES=("fake",), ADDONS=(), Options=Options)  # no public_check
    monkeypatch.setitem(registry(), "fake", bare)
    with pytest.raises(LLMJudgeError, match="fake: models are off on this server"):
        page.check_spec_allowed("fake:a", **policy)


def test_each_backend_declares_its_own_public_check():
    for prefix in ("embedded", "gguf", "hf", "openai", "fake"):
        assert callable(getattr(registry()[prefix], "public_check", None)), prefix


# --- the import graph -------------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = ["llm_judge", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports, at any level (inside functions too)."""
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _targets(node, package):
                found = target if target in files else target.rpartition(".")[0]
                if found in files and found != name:
                    graph[name].add(found)
    return graph


def _targets(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        up = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
    return [f"{base}.{a.name}" for a in node.names]


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "llm_judge.backends.registry" in graph["llm_judge.config"]  # a function-level import
    assert {"llm_judge.backends.gguf", "llm_judge.backends.llamacpp"} <= graph["llm_judge.backends.local"]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]


@pytest.mark.parametrize("area", ["llm_judge.backends", "llm_judge.finetune", "llm_judge.config"])
def test_no_import_cycle_reaches_the_backends_the_configuration_or_finetuning(area):
    touching = [sorted(c) for c in cycles(import_graph()) if any(m == area or m.startswith(area + ".") for m in c)]
    assert touching == []


def test_flash_attention_is_part_of_the_key_a_server_is_shared_by():
    off = engine.ServerSpec("m.gguf", None, 2048, 1, None)
    on = engine.ServerSpec("m.gguf", None, 2048, 1, None, True)
    assert off != on and len({off, on}) == 2  # a server with it on never serves a request made with it off
    assert off == engine.ServerSpec("m.gguf", None, 2048, 1, None, False)


@pytest.mark.model  # loads the built-in model in-process, with and without flash attention
def test_flash_attention_is_a_local_models_option_in_the_config_file_and_its_own_value_wins(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[models.fast]\nspec = "embedded"\nengine = "inprocess"\nflash_attention = true\n'
                      '[models.plain]\nspec = "embedded"\nengine = "inprocess"\nflash_attention = false\n')
    everywhere = Settings.from_env({}, config=config, flash_attention=True)
    try:
        assert get_backend("fast", Settings.from_env({}, config=config)).flash_attention is True
        assert get_backend("plain", everywhere).flash_attention is False  # the model's own option over the settings'
        assert get_backend("embedded", everywhere, engine="inprocess").flash_attention is True
        assert get_backend("embedded", Settings.from_env({}), engine="inprocess").flash_attention is False  # default
        with pytest.raises(LLMJudgeError, match="model embedded has option flash_attention='yes' of the wrong type"):
            get_backend("embedded", flash_attention="yes")
    finally:
        forget_backends()  # the loaded models leave the cache even where an assertion failed
