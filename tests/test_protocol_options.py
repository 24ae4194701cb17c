"""``--protocol NAME|PATH|auto`` in every judging command, ``llm-judge judges protocols`` and
``judges tune`` over published protocols (issue #20): the chosen protocol reaches the judge's
prompt, bad combinations are one line, llm-judge's own protocol keeps every key. Scripted ``fake:``
judges answering in each protocol's format."""

import json
import re
import shutil

import pytest

from llm_judge.cli import main
from llm_judge.protocols import bundled, load_protocol
from llm_judge.store import Store
from llm_judge.testing import fake

LLMBAR_SYSTEM = "You are a helpful assistant in evaluating the quality of the outputs for a given instruction."


def llmbar_shown(messages) -> tuple[str, str, str]:
    """(question, answer shown first, answer shown second) in an LLMBar prompt."""
    user = messages[-1]["content"]
    q = re.search(r"# Instruction:\n(.*?)\n\n# Output \(a\)", user, re.S).group(1)
    a = re.search(r"# Output \(a\):\n(.*?)\n\n# Output \(b\):", user, re.S).group(1)
    b = re.search(r"# Output \(b\):\n(.*?)\n\n# Which is better", user, re.S).group(1)
    return q, a, b


def llmbar_judge(name: str, better: str) -> fake.FakeBackend:
    """Answers LLMBar prompts for the answer holding ``better``; llm-judge's own prompt always "A"."""
    def respond(messages, sampling, schema):
        if schema is not None:  # llm-judge's own prompt
            return own_first(schema)
        if "# Output (a)" not in messages[-1]["content"]:
            return "an answer"
        _q, a, _b = llmbar_shown(messages)
        return "Output (a)" if better in a else "Output (b)"
    backend = fake.named(name)
    backend.responder = respond
    return backend


def own_first(schema) -> str:
    """llm-judge's own verdict for the answer shown first, full or winner alone as the schema asks."""
    names = list(schema["properties"].get("scores", {}).get("properties", {}))
    scores = {"justification": "x", "scores": {c: {"A": 4, "B": 2} for c in names}} if names else {}
    return json.dumps({**scores, "winner": "A"})


def answers():
    fake.named("a").responder = lambda m, s, sch: "a plain answer"
    fake.named("b").responder = lambda m, s, sch: "the better answer"


def judged(backend) -> list:
    return [c for c in backend.calls if c.messages[0]["content"].startswith(LLMBAR_SYSTEM)]


def test_compare_with_a_protocol_asks_in_its_template_and_reads_its_verdict(capsys):
    answers()
    judge = llmbar_judge("j", "better")
    assert main(["compare", "Which?", "--model-a", "fake:a", "--model-b", "fake:b", "--judge", "fake:j",
                 "--protocol", "llmbar-vanilla", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["winner"] == "B"
    assert len(judged(judge)) == 2 and all(c.schema is None for c in judged(judge))  # both orders, free text


def test_run_and_judges_eval_take_the_protocol(tmp_path, capsys):
    answers()
    judge = llmbar_judge("j", "better")
    prompts = tmp_path / "p.txt"
    prompts.write_text("One?\nTwo?\n")
    db = str(tmp_path / "s.db")
    assert main(["run", "--prompts", str(prompts), "--candidate", "fake:a#a", "--candidate", "fake:b#b",
                 "--mode", "pairwise", "--judge", "fake:j", "--protocol", "llmbar-vanilla", "--db", db,
                 "--quiet", "--json"]) == 0
    assert len(judged(judge)) == 4  # 2 prompts x 2 orders
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps([{"input": f"q{i}?", "output_1": "the better answer" if i % 2 else "meh",
                                 "output_2": "meh" if i % 2 else "the better answer", "label": 1 + (i + 1) % 2}
                                for i in range(6)]))
    capsys.readouterr()
    assert main(["judges", "eval", "--judge", "fake:j", "--set", str(gold), "--protocol", "llmbar-vanilla",
                 "--db", db, "--quiet", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)[0]
    assert card["protocol"] == "llmbar-vanilla" and card["accuracy"]["mean"] == 1.0
    assert main(["judges", "list", "--db", db]) == 0
    assert "protocol llmbar-vanilla" in capsys.readouterr().out


def test_llm_judges_own_protocol_by_name_reuses_every_stored_judgment(tmp_path, capsys):
    fake.named("own").responder = lambda m, s, sch: json.dumps({"winner": "A"})
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps([{"input": f"q{i}?", "output_1": "x", "output_2": f"y{i}", "label": 1}
                                for i in range(4)]))
    db = str(tmp_path / "s.db")
    base = ["judges", "eval", "--judge", "fake:own", "--set", str(gold), "--verdict-format", "winner", "--db", db,
            "--quiet", "--json"]
    assert main(base) == 0
    first = json.loads(capsys.readouterr().out)[0]
    calls = len(fake.named("own").calls)
    assert main([*base, "--protocol", "llm-judge"]) == 0
    again = json.loads(capsys.readouterr().out)[0]
    assert len(fake.named("own").calls) == calls == 8  # the same keys: no new call
    assert again["accuracy"] == first["accuracy"] and "protocol" not in again


@pytest.mark.parametrize("args, needle", [
    (["--protocol", "llmbar-vanilla", "--verdict-format", "winner"], "own verdict format"),
    (["--protocol", "no-such-protocol"], "no-such-protocol"),
    (["--protocol", "mt-bench-single-v1"], "use it with mode single"),
])
def test_a_bad_protocol_choice_is_one_line(capsys, args, needle):
    answers()
    assert main(["compare", "Which?", "--model-a", "fake:a", "--model-b", "fake:b", "--judge", "fake:j", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_judges_protocols_lists_every_bundled_protocol_with_its_source_and_needs(capsys):
    assert main(["judges", "protocols", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(bundled())
    assert rows["llmbar-metrics-reference"]["needs"] == {"reference": False, "auxiliary": ["metrics", "reference"]}
    assert rows["mt-bench-pair-math-v1"]["needs"]["reference"] is True
    assert "princeton-nlp/LLMBar@" in rows["llmbar-vanilla"]["source"] and "(MIT)" in rows["llmbar-vanilla"]["source"]
    assert "mt-bench-pair-v2" in rows["mt-bench-pair"]["family"]
    assert main(["judges", "protocols"]) == 0
    assert "arena-hard" in capsys.readouterr().out


def test_judges_protocols_shows_a_users_protocol_templates(tmp_path, capsys):
    mine = tmp_path / "mine"
    shutil.copytree(load_protocol("llmbar-vanilla").path, mine)
    assert main(["judges", "protocols", "--show", str(mine)]) == 0
    out = capsys.readouterr().out
    assert "--- user.txt ---" in out and "# Output (a):\n{answer_a}" in out


def test_judges_tune_over_protocols_chooses_the_one_the_judge_reads_best(tmp_path, capsys):
    judge = llmbar_judge("j", "the better answer")
    gold = tmp_path / "gold.json"
    gold.write_text(json.dumps([{"id": f"g{i}", "input": f"q{i}?",
                                 "output_1": "the better answer" if i % 2 else f"meh {i}",
                                 "output_2": f"meh {i}" if i % 2 else "the better answer", "label": 2 - i % 2}
                                for i in range(24)]))
    db = str(tmp_path / "s.db")
    assert main(["judges", "tune", "--judge", "fake:j", "--set", str(gold), "--protocol", "llmbar-vanilla",
                 "--protocol", "llm-judge", "--judge-method", "plain", "--verdict-format", "winner",
                 "--db", db, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "chosen: protocol llmbar-vanilla (plain)" in out and "held-out 100%" in out
    assert "default: llm-judge plain full: held-out 50%" in out  # always "A": right on half the pairs
    profile = Store(db).profile("fake:j")
    assert profile["protocol"] == "llmbar-vanilla" and profile["format"] is None
    assert profile["runner_up"]["format"] == "winner"
    judge.calls.clear()
    answers()
    assert main(["compare", "Which?", "--model-a", "fake:a", "--model-b", "fake:b", "--judge", "fake:j",
                 "--protocol", "auto", "--db", db, "--json"]) == 0
    assert "protocol llmbar-vanilla (plain), chosen by judges tune" in capsys.readouterr().err
    assert len(judged(judge)) == 2
