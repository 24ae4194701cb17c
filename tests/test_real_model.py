"""End to end on the real built-in model through llama.cpp, and through a real OpenAI-compatible
server (llama-cpp-python's) on loopback. Seconds each on two cores."""

import json
import os
import subprocess
import sys

import pytest

from llm_judge import LLMJudgeError, compare, make_sampling
from llm_judge.backends import get_backend
from llm_judge.backends.llamacpp import embedded_model_path

pytestmark = pytest.mark.model
PROMPT = "Explain how to bake a chocolate cake without using eggs."
SHORT = dict(sampling_a=make_sampling("p1", max_tokens=48), sampling_b=make_sampling("p2", max_tokens=48))


def check_shape(d):
    assert d["prompt"] == PROMPT
    for label in ("A", "B"):
        cand = d["candidates"][label]
        assert cand["text"].strip() and 0 < cand["completion_tokens"] <= 48 and cand["seconds"] > 0
    assert [o["order"] for o in d["orders"]] == ["AB", "BA"]
    for order in d["orders"]:
        assert order["raw"]
        # constrained decoding: the judge's output is a verdict that validates
        assert order["verdict"] is not None, order
        assert order["verdict"]["winner"] in {"A", "B", "tie"}
    assert d["winner"] in {"A", "B", "tie"}
    assert isinstance(d["consistent"], bool)
    assert set(d["totals"]) == {"A", "B"} and 3 <= d["totals"]["A"] <= 12


def test_compare_embedded_end_to_end():
    r = compare(PROMPT, **SHORT)
    d = r.to_dict()
    check_shape(d)
    assert any("built-in judge" in w for w in r.warnings)
    assert any("self-preference" in w for w in r.warnings)
    if d["consistent"] is False:
        assert d["winner"] == "tie" and any("position, not content" in w for w in r.warnings)


def test_same_seed_same_generation_and_streaming_matches():
    backend = get_backend("embedded")
    msgs = [{"role": "user", "content": PROMPT}]
    s = make_sampling("p2", max_tokens=40, seed=123)
    one, two = backend.generate(msgs, s), backend.generate(msgs, s)
    assert one.text == two.text
    pieces = []
    streamed = backend.generate(msgs, s, on_token=pieces.append)
    assert "".join(pieces) == streamed.text == one.text
    assert len(pieces) > 5


def test_chat_template_comes_from_the_gguf():
    backend = get_backend("embedded")
    prompt = backend._formatter(messages=[{"role": "user", "content": "hi"}]).prompt
    assert "<|im_start|>user\nhi<|im_end|>" in prompt


def test_prompt_too_long_is_an_error_before_generation():
    with pytest.raises(LLMJudgeError, match=r"prompt too long for embedded: \d+ prompt tokens"):
        compare("word " * 3000, **SHORT)
    with pytest.raises(LLMJudgeError, match="max_tokens 2040 > context 2048"):
        compare("hello", sampling_a=make_sampling("p1", max_tokens=2040))


def test_gguf_path_spec():
    path = embedded_model_path()
    r = compare(PROMPT, model_a=f"gguf:{path}", model_b="embedded", judge=f"gguf:{path}", **SHORT)
    assert r.candidates["A"].spec == f"gguf:{path}" and r.answers["A"].text


def run_cli(*args, env=None):
    exe = os.path.join(os.path.dirname(sys.executable), "llm-judge")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", **(env or {})))


def test_cli_main_command_offline_json():
    p = run_cli("compare", PROMPT, "--json", "--max-tokens", "48")
    assert p.returncode == 0, p.stderr
    check_shape(json.loads(p.stdout))


def test_hf_spec_from_cache_and_offline_error(tmp_path):
    # A real Hugging Face cache layout holding the built-in file under a repo name.
    repo_dir = tmp_path / "models--acme--tiny-chat"
    snap = repo_dir / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "tiny.Q4_1.gguf").symlink_to(embedded_model_path())
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0" * 40)
    env = {"HF_HUB_CACHE": str(tmp_path)}
    p = run_cli("compare", PROMPT, "--json", "--max-tokens", "24", "--model-a", "hf:acme/tiny-chat/tiny.Q4_1.gguf",
                "--judge-max-tokens", "400", env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["candidates"]["A"]["spec"] == "hf:acme/tiny-chat/tiny.Q4_1.gguf"
    p = run_cli("compare", "q", "--model-a", "hf:acme/other/x.gguf", env=env)
    assert p.returncode == 2
    assert "not in the Hugging Face cache" in p.stderr and "hf download acme/other x.gguf" in p.stderr
    assert "Traceback" not in p.stderr


def test_openai_spec_against_real_llama_server(llama_server):
    spec = f"openai:smollm2@{llama_server}"
    r = compare(PROMPT, model_a=spec, model_b=spec, judge=spec, **SHORT)
    d = r.to_dict()
    check_shape(d)
    # the server was asked for a structured verdict in a form it accepts
    assert get_backend(spec).schema_mode in {"json_schema", "json_object"}
    pieces = []
    streamed = get_backend(spec).generate([{"role": "user", "content": "Say hi"}],
                                          make_sampling("p1", max_tokens=16), on_token=pieces.append)
    assert streamed.text and "".join(pieces) == streamed.text


def test_openai_unreachable_is_a_clear_error():
    spec = "openai:m@http://127.0.0.1:9"
    backend = get_backend(spec, max_attempts=2, backoff_base=0.01)
    with pytest.raises(LLMJudgeError, match="gave no answer after 2 attempts: connection failed"):
        backend.generate([{"role": "user", "content": "x"}], make_sampling("p1"))
