"""One llama.cpp build serves both engines (scripts/build-llama.sh), and a verdict's justification
has a bound the grammar enforces on both engines, stated in the prompt and recorded when reached."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_judge import compare, engine, make_sampling
from llm_judge import verdicts as V
from llm_judge.backends.openai import strict_schema
from llm_judge.criteria import Scale, parse_criteria
from llm_judge.errors import LLMJudgeError

CRITERIA = parse_criteria("Relevance,Coherence")


def _binding_lib() -> Path:
    return Path(importlib.util.find_spec("llama_cpp").origin).parent / "lib"


def _layout(tmp_path: Path, server_stamp: str | None) -> Path:
    """A server binary with its own lib/llama-cpp folder, as the set-up lays them out."""
    binary = tmp_path / "venv" / "bin" / "llama-server"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    if server_stamp is not None:
        lib = tmp_path / "venv" / "lib" / "llama-cpp"
        lib.mkdir(parents=True)
        (lib / engine.STAMP).write_text(server_stamp + "\n")
    return binary


def test_a_server_from_another_build_than_the_binding_is_refused_in_one_line(tmp_path, monkeypatch):
    binding = tmp_path / "binding" / "llama_cpp"
    (binding / "lib").mkdir(parents=True)
    (binding / "__init__.py").write_text("")
    (binding / "lib" / engine.STAMP).write_text("llama-cpp-python 0.3.36 x86_64-avx2 sha256:aaa\n")
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: importlib.machinery.ModuleSpec(name, None, origin=str(binding / "__init__.py"))
                        if name == "llama_cpp" else found(name, *a))
    engine.check_same_build.cache_clear()
    same = _layout(tmp_path / "same", "llama-cpp-python 0.3.36 x86_64-avx2 sha256:aaa")
    engine.check_same_build(same)  # one build: nothing to say
    other = _layout(tmp_path / "other", "llama-cpp-python 0.3.35 x86_64-avx2 sha256:bbb")
    with pytest.raises(LLMJudgeError, match="built from .*0.3.35.* but the Python binding from .*0.3.36.*setup.sh"):
        engine.check_same_build(other)
    engine.check_same_build(_layout(tmp_path / "unstamped", None))  # a server of the user's own: not compared
    engine.check_same_build.cache_clear()


@pytest.mark.skipif(not (_binding_lib() / engine.STAMP).exists(), reason="the binding was not installed by build-llama.sh")
def test_the_set_up_installs_one_build_for_both_engines_and_the_binding_needs_no_environment_variable():
    binary = engine.find_binary()
    assert binary is not None
    server, binding = engine.build_stamps(binary)
    assert server and server == binding and server.startswith("llama-cpp-python ")
    env = {k: v for k, v in os.environ.items() if k != "LLAMA_CPP_LIB_PATH"}
    out = subprocess.run([sys.executable, "-c", "import llama_cpp, llama_cpp.llama_cpp as l; print(l._lib._name)"],
                         capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert Path(out).parent == _binding_lib()  # the library it loads is the one in its own lib/
    # the server links the same files (by its RPATH), not a copy of its own compiled apart
    linked = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    assert f"{binary.resolve().parent}/../lib/llama-cpp/libllama.so" in linked, linked


def test_the_bound_is_in_the_prompt_and_in_the_schema_of_both_modes():
    pair = V.pairwise_messages("q", "a", "b", CRITERIA, Scale())[1]["content"]
    single = V.single_messages("q", "a", CRITERIA, Scale())[1]["content"]
    assert f"at most {V.JUSTIFICATION_CHARS} characters" in pair and f"at most {V.JUSTIFICATION_CHARS} characters" in single
    for schema in (V.pairwise_schema(CRITERIA, Scale()), V.single_schema(CRITERIA, Scale())):
        assert schema["properties"]["justification"]["maxLength"] == V.JUSTIFICATION_CHARS


def test_openais_strict_schema_drops_only_string_bounds_a_criterion_named_like_one_stays():
    schema = V.pairwise_schema(parse_criteria("maxLength=How long it may be"), Scale())
    strict = strict_schema(schema)
    assert "maxLength" not in strict["properties"]["justification"]
    assert "maxLength" in strict["properties"]["scores"]["properties"]  # the criterion, not a bound


LONG = [{"role": "user", "content": "Write a JSON object whose \"justification\" is a long essay of at least 300 "
                                    "words about baking bread, then scores and a winner."}]


@pytest.mark.model
@pytest.mark.parametrize("engine_name", ["inprocess", "server"])
def test_the_grammar_holds_a_judge_to_the_bound_on_both_engines(engine_name, monkeypatch):
    """Asked for an essay, the built-in model writes hundreds of characters of justification (329
    here without the bound); the verdict grammar stops it at the bound and the verdict still closes."""
    if engine_name == "server" and engine.find_binary() is None:
        pytest.skip("llama-server is not built here")
    monkeypatch.setattr(V, "JUSTIFICATION_CHARS", 40)
    from llm_judge.backends import get_backend

    backend = get_backend("embedded", engine=engine_name, parallel=1)
    out = backend.generate(LONG, make_sampling(None, max_tokens=200, temperature=0.0),
                           schema=V.pairwise_schema(CRITERIA, Scale()))
    verdict = V.parse_verdict(out.text, CRITERIA, Scale())  # it closes: a verdict that validates
    assert len(verdict.justification) <= 40 and V.reached_bound(out.text), out.text


@pytest.mark.parametrize("fmt", ["full", "winner", "single"])
def test_every_verdict_prompt_of_a_study_starts_with_the_same_instructions_and_the_nonce_after_them(fmt):
    """What a server's prompt cache can reuse: everything before the question is the same for every
    item, and holds no nonce (each item's own, which an answer cannot predict)."""
    def user(q, a, b):
        if fmt == "single":
            return V.single_messages(q, a, CRITERIA, Scale())[1]["content"]
        return V.pairwise_messages(q, a, b, CRITERIA, Scale(), fmt=fmt)[1]["content"]

    one, other = user("Name a fruit.", "Apple.", "Pear."), user("Why is the sky blue?", "Light scatters.", "It is.")
    head = one[:one.index("Question:")]
    assert other.startswith(head) and "<<" not in head
    assert len(head) > len(one) / 2  # the instructions are most of a short item's prompt
    assert one.rstrip().endswith(V.CLOSING)


@pytest.mark.model
def test_a_judge_on_the_server_reads_the_shared_instructions_once_and_a_candidates_prompt_afresh():
    """Every verdict of a study starts with the same instructions (template v4): the server keeps a
    judge's prompt in its slot and reads only what follows them; a candidate's prompt is read afresh
    every time (its answer's arithmetic never depends on what ran before)."""
    if engine.find_binary() is None:
        pytest.skip("llama-server is not built here")
    from llm_judge.backends import get_backend

    backend = get_backend("embedded", engine="server", parallel=1)
    sampling, scale = make_sampling(None, max_tokens=12, temperature=0.0), Scale()
    pairs = [("Name a fruit.", "An apple."), ("Name a colour of the sky.", "Blue, mostly.")]
    messages = [V.single_messages(q, a, CRITERIA, scale) for q, a in pairs]
    verdicts = [backend.generate(m, sampling, schema=V.single_schema(CRITERIA, scale)) for m in messages]
    first, second = (backend._formatter(messages=m).prompt for m in messages)
    shared = next(i for i, (x, y) in enumerate(zip(first, second)) if x != y)
    shared_tokens = len(backend.llm.tokenize(first[:shared].encode(), add_bos=True, special=True))
    assert shared_tokens > 150  # the system message and the instructions
    # the last token or two of the shared text may merge with what follows it
    assert verdicts[1].cached_tokens is not None and verdicts[1].cached_tokens >= shared_tokens - 2, verdicts[1]
    question = [{"role": "user", "content": "Name a fruit."}]
    answers = [backend.generate(question, sampling) for _ in range(2)]
    assert answers[0].text == answers[1].text and answers[1].cached_tokens == 0, answers[1]


def test_a_verdict_cut_at_the_bound_is_said_beside_the_comparison():
    from llm_judge.testing import fake

    cut = {"justification": "x" * V.JUSTIFICATION_CHARS, "winner": "A",
           "scores": {"Relevance": {"A": 4, "B": 2}}}
    fake.named("a").queue("one answer")
    fake.named("b").queue("another answer")
    fake.named("judge-cut").queue(json.dumps(cut), json.dumps({**cut, "justification": "short"}))
    result = compare("q", model_a="fake:a", model_b="fake:b", judge="fake:judge-cut", criteria=["Relevance"])
    assert any(f"1 of 2 verdicts' justifications reached the {V.JUSTIFICATION_CHARS}-character bound" in w
               for w in result.warnings), result.warnings


def _optimisation(compile_commands: Path) -> dict[str, str]:
    """Each llama.cpp source (its path inside llama.cpp) and the optimisation it was compiled with:
    the last -O on its command line, the one the compiler keeps."""
    levels = {}
    for entry in json.loads(compile_commands.read_text()):
        flags = [word for word in entry["command"].split() if word.startswith("-O")]
        levels[entry["file"].split("/vendor/llama.cpp/", 1)[-1]] = flags[-1] if flags else "-O0"
    return levels


# libllama's sources that run for every token, checked at -O3 and outside any batch
_PER_TOKEN_LLAMA = ("llama-context.cpp", "llama-graph.cpp", "llama-sampler.cpp", "llama-grammar.cpp",
                    "llama-kv-cache.cpp", "llama-batch.cpp", "llama-model.cpp", "llama-adapter.cpp")


def check_arithmetic_at_full_optimisation(levels: dict[str, str]) -> None:
    """What runs for every token is compiled as a release build compiles it (-O3), so a model's
    numbers are a plain build's; the code that does not (scripts/llama-cold.cmake) at -O1, and mtmd,
    which llm-judge never runs, at -O0."""
    ggml = {source: level for source, level in levels.items() if source.startswith("ggml/")}
    assert ggml and set(ggml.values()) == {"-O3"}, {s: lv for s, lv in ggml.items() if lv != "-O3"}
    for hot in _PER_TOKEN_LLAMA:
        assert levels[f"src/{hot}"] == "-O3", hot
    for cold in ("common/arg.cpp", "common/chat.cpp", "tools/server/server-context.cpp",
                 "vendor/cpp-httplib/httplib.cpp", "src/llama-model-loader.cpp"):
        assert levels[cold] == "-O1", cold
    assert levels["tools/mtmd/clip.cpp"] == "-O0"


def _batched(compile_commands: Path) -> set[str]:
    """The llama.cpp sources that were compiled inside a unity batch (their record names the batch)."""
    return {entry["file"].split("/vendor/llama.cpp/", 1)[-1]
            for entry in json.loads(compile_commands.read_text()) if "unity" in entry}


def check_batches(batched: set[str], levels: dict[str, str]) -> None:
    """The cold targets compile in unity batches (scripts/llama-cold.cmake); nothing that runs for every
    token is combined with other sources, so its code is compiled as in a plain build."""
    assert {"common/arg.cpp", "tools/server/server-context.cpp", "tools/mtmd/models/llava.cpp"} <= batched
    hot = {s for s in levels if s.startswith("ggml/")} | {"common/sampling.cpp"} | {f"src/{h}" for h in _PER_TOKEN_LLAMA}
    assert not hot & batched, sorted(hot & batched)


_RECORD = Path(sys.prefix) / "lib" / "llama-cpp" / "compile_commands.json"


@pytest.mark.skipif(not _RECORD.exists(), reason="llama.cpp was not built by scripts/build-llama.sh")
def test_the_build_compiles_the_arithmetic_at_full_optimisation_and_the_rest_faster():
    check_arithmetic_at_full_optimisation(_optimisation(_RECORD))
    check_batches(_batched(_RECORD), _optimisation(_RECORD))


def test_the_check_fails_on_a_build_that_lowered_the_arithmetic(tmp_path):
    def entry(source: str, *flags: str) -> dict:
        return {"file": f"/b/vendor/llama.cpp/{source}", "command": " ".join(["c++", *flags, "-c", source])}
    good = [entry("ggml/src/ggml-cpu/ops.cpp", "-O3"), entry("common/arg.cpp", "-O3", "-O1"),
            entry("common/chat.cpp", "-O3", "-O1"), entry("tools/server/server-context.cpp", "-O3", "-O1"),
            entry("vendor/cpp-httplib/httplib.cpp", "-O3", "-O1"), entry("src/llama-model-loader.cpp", "-O3", "-O1"),
            entry("tools/mtmd/clip.cpp", "-O3", "-O0")]
    good += [entry(f"src/{hot}", "-O3", "-O1", "-O3") for hot in _PER_TOKEN_LLAMA]
    record = tmp_path / "compile_commands.json"
    record.write_text(json.dumps(good))
    check_arithmetic_at_full_optimisation(_optimisation(record))
    for lowered in (entry("src/llama-sampler.cpp", "-O3", "-O1"), entry("ggml/src/ggml-cpu/ops.cpp", "-O3", "-O1")):
        record.write_text(json.dumps([e for e in good if e["file"] != lowered["file"]] + [lowered]))
        with pytest.raises(AssertionError):
            check_arithmetic_at_full_optimisation(_optimisation(record))


def test_the_check_fails_on_a_build_that_batched_per_token_code(tmp_path):
    def entry(source: str, batch: str | None) -> dict:
        e = {"file": f"/b/vendor/llama.cpp/{source}", "command": f"c++ -O3 -c {source}"}
        return {**e, "unity": f"/b/build/Unity/{batch}.cxx"} if batch else e
    cold = [entry(s, "unity_0_cxx") for s in ("common/arg.cpp", "tools/server/server-context.cpp",
                                              "tools/mtmd/models/llava.cpp")]
    hot = [entry("common/sampling.cpp", None), entry("ggml/src/ggml-cpu/ops.cpp", None), entry("src/llama-sampler.cpp", None)]
    record = tmp_path / "compile_commands.json"
    record.write_text(json.dumps(cold + hot))
    check_batches(_batched(record), _optimisation(record))
    for combined in ("common/sampling.cpp", "ggml/src/ggml-cpu/ops.cpp", "src/llama-sampler.cpp"):
        record.write_text(json.dumps(cold + [entry(e["file"].split("/vendor/llama.cpp/")[1], "unity_1_cxx")
                                             if e["file"].endswith(combined) else e for e in hot]))
        with pytest.raises(AssertionError):
            check_batches(_batched(record), _optimisation(record))
    record.write_text(json.dumps(cold[1:] + [entry("common/arg.cpp", None)] + hot))  # the cold recipe lost
    with pytest.raises(AssertionError):
        check_batches(_batched(record), _optimisation(record))
