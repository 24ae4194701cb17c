"""Malformed server replies, backend options, and a library that needs no local engine (issue #23, 3 and 13).

Replies go through the real fault-injecting server on loopback and a real ``llm-judge run``; the
engine-free checks run a fresh interpreter in which ``llama_cpp`` cannot be imported.
"""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from llm_judge import LLMJudgeError, make_sampling, parse_criteria
from llm_judge import verdicts as V
from llm_judge.backends import check_model, get_backend
from llm_judge.backends.openai import MalformedResponse, parse_completion
from llm_judge.config import parse_config
from llm_judge.criteria import Scale
from llm_judge.testing.server import expected_content

from .conftest import free_port, server_stats, stop

FAST = dict(timeout=2.0, max_attempts=2, backoff_base=0.01)
MESSAGES = [{"role": "user", "content": "Why?"}]
NOWHERE = "openai:m@http://127.0.0.1:9/v1"  # nothing listens there; nothing here connects


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_judge", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def study_env(tmp_path, base: str) -> dict:
    """A config file naming the test server ``srv`` (two attempts per call), and a store."""
    config = tmp_path / "config.toml"
    config.write_text(f'[models.srv]\nspec = "openai:test@{base}"\nmax_attempts = 2\n')
    return dict(os.environ, LLM_JUDGE_CONFIG=str(config), LLM_JUDGE_DB=str(tmp_path / "s.db"))


STUDY = ("run", "--prompts", "seed-10", "--limit", "3", "--candidate", "srv@p1#x", "--candidate", "fake:y#y",
         "--judge", "srv", "--quiet", "--json")


# --- 3. a malformed reply is a failed call, never a traceback ------------------------------------------

def serve(port: int, *args: str) -> subprocess.Popen:
    """The test server on ``port`` (to stop and start again on the same endpoint)."""
    proc = subprocess.Popen([sys.executable, "-m", "llm_judge.testing.server", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().startswith("listening on ")
    return proc


@pytest.mark.parametrize("fault", ["usage", "content"])
def test_a_malformed_reply_fails_its_calls_cleanly_and_a_rerun_completes(fault, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    faulty = serve(port, "--fault-rate", "1", "--faults", fault)
    try:
        first, stats = run_cli(*STUDY, env=study_env(tmp_path, base)), server_stats(base)
    finally:
        stop(faulty)
    assert first.returncode == 0 and "Traceback" not in first.stdout + first.stderr, first.stderr
    summary = json.loads(first.stdout)
    assert summary["status"] == "incomplete"
    db = sqlite3.connect(tmp_path / "s.db")
    # x's answers (from the server) and the judgments of y's answers (by the server) are stored as failed
    gens = db.execute("SELECT status, error FROM generations WHERE spec='srv'").fetchall()
    judged = db.execute("SELECT status, error FROM judgments").fetchall()
    assert len(gens) == 3 and len(judged) == 3
    assert all(s == "failed" and "malformed response" in e for s, e in gens + judged), gens + judged
    assert stats[fault] == 2 * 6  # two attempts per call
    healthy = serve(port)  # the same endpoint, healthy now
    try:
        second = run_cli(*STUDY, env=study_env(tmp_path, base))
    finally:
        stop(healthy)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["status"] == "done"
    assert json.loads(second.stdout)["run_id"] == summary["run_id"]


@pytest.mark.parametrize("fault", ["usage", "content"])
def test_a_streamed_chunk_of_the_wrong_shape_is_a_failed_call(fault, test_server):
    base = test_server("--fault-rate", "1", "--faults", fault)
    backend = get_backend(f"openai:test@{base}", **FAST)
    with pytest.raises(LLMJudgeError, match="gave no answer after 2 attempts: malformed response"):
        backend.generate(MESSAGES, make_sampling("greedy"), on_token=lambda piece: None)


def test_a_streamed_request_answered_without_a_stream_is_a_failed_call_not_an_empty_answer(test_server):
    base = test_server("--fault-rate", "1", "--faults", "html")
    backend = get_backend(f"openai:test@{base}", **FAST)
    with pytest.raises(LLMJudgeError, match="malformed response .*no stream chunk"):
        backend.generate(MESSAGES, make_sampling("greedy"), on_token=lambda piece: None)


def test_logprobs_of_the_wrong_shape_are_ignored_and_the_answer_stands(test_server):
    base = test_server("--fault-rate", "1", "--faults", "logprobs")
    backend = get_backend(f"openai:test@{base}", **FAST)
    crits, scale = parse_criteria(None), Scale()
    schema = V.single_schema(crits, scale)
    result = backend.generate(MESSAGES, make_sampling("greedy"), schema=schema, read_at=lambda text: [0])
    assert json.loads(result.text)["scores"] and result.logprobs is None and result.decisions is None
    assert any("gives no token probabilities" in w for w in backend.warnings)


def good_reply(**changes) -> dict:
    reply = {"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = reply
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    return reply


@pytest.mark.parametrize("reply,needle", [
    ([1, 2], "the reply is list"),
    ({"choices": "none"}, "no choices"),
    ({"choices": [42]}, "no choices"),
    (good_reply(choices__0__message="hi"), "message is str"),
    (good_reply(choices__0__message__content=42), "content is int"),
    (good_reply(choices__0__message__content=["hi"]), "content is list"),
    (good_reply(usage="n/a"), "usage is str"),
    (good_reply(usage__prompt_tokens="10"), "usage.prompt_tokens is str"),
    (good_reply(usage__completion_tokens=True), "usage.completion_tokens is bool"),
    (good_reply(choices__0__finish_reason=1), "finish_reason is int"),
])
def test_every_reply_of_the_wrong_shape_is_malformed(reply, needle):
    with pytest.raises(MalformedResponse, match=needle):
        parse_completion(reply, 0.1)


def test_replies_of_the_right_shape_are_read():
    assert parse_completion(good_reply(choices__0__message__content=None), 0.1).text == ""
    bare = parse_completion({"choices": [{"message": {"content": "x"}}]}, 0.1)
    assert (bare.text, bare.prompt_tokens, bare.completion_tokens, bare.logprobs) == ("x", None, None, None)
    odd = parse_completion(good_reply(choices__0__logprobs={"content": [{"token": 1}]}), 0.1)
    assert odd.text == "hi" and odd.logprobs is None


# --- 13. options, python -m llm_judge.cli, the test server, no local engine --------------------------

def test_a_misspelled_backend_option_is_an_error_naming_the_options_it_takes():
    with pytest.raises(LLMJudgeError, match=r"^model openai:m@http://127.0.0.1:9/v1 has unknown option 'timout' \(did you "
                                            r"mean 'timeout'\? known: backoff_base, concurrency, .*key_env, max_attempts, "
                                            r"schema_mode, timeout\)$"):
        get_backend(NOWHERE, timout=1)
    assert "unknown option 'n_thread'" in check_model("embedded", n_thread=2)
    with pytest.raises(LLMJudgeError, match=r"model fake:a has unknown option 'timeout' \(known: none\)"):
        get_backend("fake:a", timeout=5)  # an option of another backend


def test_the_options_every_caller_passes_are_taken_or_ignored():
    assert get_backend(NOWHERE, n_ctx=4096, concurrency=3, timeout=5).concurrency == 3
    assert get_backend("fake:a", n_ctx=4096, concurrency=3, key_configured_only=True).spec == "fake:a"


def test_a_config_option_the_models_backend_does_not_take_is_refused_when_used(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('[models.local]\nspec = "fake:local"\nkey_env = "MY_KEY"\n')
    monkeypatch.setenv("LLM_JUDGE_CONFIG", str(config))
    with pytest.raises(LLMJudgeError, match="model local has unknown option 'key_env'"):
        get_backend("local")
    with pytest.raises(LLMJudgeError, match=r"models.j has unknown key 'timout' \(did you mean 'timeout'\?"):
        parse_config('[models.j]\nspec = "embedded"\ntimout = 3\n', "config.toml")


def test_python_m_llm_judge_cli_knows_every_command():
    out = subprocess.run([sys.executable, "-m", "llm_judge.cli", "run", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "Run a study" in out.stdout, out.stdout + out.stderr


def test_the_test_server_answers_a_winner_only_schema(test_server):
    schema = V.pairwise_schema(parse_criteria(None), Scale(), fmt="winner")
    body = {"messages": MESSAGES, "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    assert set(json.loads(expected_content(body))) == {"winner"}
    base = test_server()
    result = get_backend(f"openai:test@{base}", **FAST).generate(MESSAGES, make_sampling("greedy"), schema=schema)
    assert json.loads(result.text)["winner"] in V.WINNERS


NO_ENGINE = """
import importlib.util, json, sys
sys.modules["llama_cpp"] = None  # as if llama-cpp-python were not installed
import llm_judge, llm_judge.cli, llm_judge.study
from llm_judge import StudyConfig, Store, compare, make_sampling, parse_criteria, run_study, summarize
from llm_judge.compare import Candidate
from llm_judge.prompts import PromptItem

r = compare("Why?", model_a="fake:a", model_b="fake:b", judge="fake:j")
cfg = StudyConfig(prompts=[PromptItem("1", "Why?"), PromptItem("2", "How?")],
                  candidates={"a": Candidate("fake:a", make_sampling("p1")), "b": Candidate("fake:b", make_sampling("p2"))},
                  judge="fake:j", judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None))
store = Store(sys.argv[1])
run_id = run_study(cfg, store)
rc = llm_judge.cli.main(["run", "--candidate", "fake:a", "--candidate", "fake:b", "--judge", "fake:j",
                         "--limit", "2", "--db", sys.argv[1], "--quiet", "--json"])
print(json.dumps({"compare": r.judge_spec, "items": summarize(store, run_id).to_dict()["status"], "cli": rc,
                  "manifest": store.run(run_id)["manifest"]}))
"""


def test_the_library_and_a_fake_study_need_no_local_engine(tmp_path):
    out = subprocess.run([sys.executable, "-c", NO_ENGINE, str(tmp_path / "s.db")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["compare"] == "fake:j" and facts["cli"] == 0 and facts["items"] in {"done", "incomplete"}
    manifest = facts["manifest"] if isinstance(facts["manifest"], dict) else json.loads(facts["manifest"])
    assert "llama_cpp_python" in manifest


def test_surrogates_escaped_in_a_reply_are_joined_or_replaced_so_the_answer_can_be_stored(tmp_path):
    """JSON may carry a pair of UTF-16 surrogates split across two stream chunks, or a lone one:
    the text is stored (a pair as its character, a lone one as U+FFFD), never a UnicodeEncodeError."""
    from llm_judge.backends.openai import parse_chunk, parse_completion, whole_text
    from llm_judge.store import Store

    lone = parse_completion(json.loads('{"choices": [{"message": {"content": "caf\\u00e9 \\ud800!"}}]}'), 0.1)
    split = [parse_chunk(json.loads(c)).pieces[0] for c in ('{"choices": [{"delta": {"content": "a \\ud83d"}}]}',
                                                            '{"choices": [{"delta": {"content": "\\ude00 b"}}]}')]
    assert lone.text == "café \ufffd!" and whole_text("".join(split)) == "a \U0001F600 b"
    store = Store(tmp_path / "s.db")
    store.put_generation("k", "openai:m@http://h/v1", {}, "p", text=lone.text)
    assert store.generation("k")["text"] == "café \ufffd!"
