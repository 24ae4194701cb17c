"""More bad input (issue #23 point 4): deeply nested JSON, lone surrogates, bytes that are not
UTF-8 on the command line, later turns and fixed messages that skip the prompt's checks, U+2028
in training data, and a jury whose judges all fail. Each is one line naming the problem (exit
code 2 on the command line) and no traceback, or, for the jury, an unscored comparison."""

import json
import os
import subprocess
import sys

import pytest

from llm_judge import LLMJudgeError, compare
from llm_judge.cli import main
from llm_judge.finetune.data import read_conversations
from llm_judge.prompts import load_prompts
from llm_judge.store import cache_key

DEEP = "[" * 100_000
OK_PROMPTS = '{"id": "1", "prompt": "hi"}\n'
FILES = {
    "deep.jsonl": DEEP + "\n",
    "deep-line-2.jsonl": OK_PROMPTS + '{"id": "2", "prompt": ' + DEEP + "\n",
    "deep-refs.jsonl": '{"id": "1", "reference": "r"}\n' + DEEP + "\n",
    "deep-verdicts.jsonl": '{"verdict": "A"}\n{"verdict": ' + DEEP + "}\n",
    "deep-gold.json": DEEP,
    "deep-gold.jsonl": '{"input": ' + DEEP + "\n",
    "ok.jsonl": OK_PROMPTS,
    "surrogate.jsonl": '{"id": "1", "prompt": "hello \\ud800"}\n',
    "surrogate-turn-2.jsonl": OK_PROMPTS + '{"id": "2", "turns": ["hi", "hello \\udc00 there"]}\n',
    "surrogate-refs.jsonl": '{"id": "1", "reference": "fine \\ud83d"}\n',
    "surrogate-gold.json": '[{"input": "q",\n "output_1": "\\ud800", "output_2": "b", "label": 1}]',
    "control-turn-2.jsonl": '{"id": "1", "turns": ["hi", "a\\u0007b"]}\n',
    "long-turn-2.jsonl": json.dumps({"id": "1", "turns": ["hi", "x" * 300_000]}) + "\n",
    "control-message.jsonl": json.dumps({"id": "m", "messages": [{"role": "system", "content": "be\x1bbrief"},
                                                                  {"role": "user", "content": "hi"}]}) + "\n",
    "long-message.jsonl": json.dumps({"id": "m", "messages": [{"role": "user", "content": "x" * 300_000},
                                                               {"role": "assistant", "content": "ok"},
                                                               {"role": "user", "content": "hi"}]}) + "\n",
}


@pytest.fixture
def tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_JUDGE_DB", str(tmp_path / "default.db"))
    for name, text in FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def run_args(tmp, prompts: str, *more: str) -> list[str]:
    return ["run", "--prompts", str(tmp / prompts), "--candidate", "fake:a", "--candidate", "fake:b",
            "--judge", "fake:j", *more, "--db", str(tmp / "s.db")]


CLI_CASES = [  # (id, args given tmp, text the one-line error must hold)
    ("deep-prompt-set", lambda t: run_args(t, "deep.jsonl"), "deep.jsonl line 1: JSON nested too deeply"),
    ("deep-prompt-on-line-2", lambda t: run_args(t, "deep-line-2.jsonl"),
     "deep-line-2.jsonl line 2: JSON nested too deeply"),
    ("deep-reference-file", lambda t: run_args(t, "ok.jsonl", "--references", str(t / "deep-refs.jsonl")),
     "deep-refs.jsonl line 2: JSON nested too deeply"),
    ("deep-verdict-file", lambda t: ["analyze", str(t / "deep-verdicts.jsonl")],
     "deep-verdicts.jsonl line 2: JSON nested too deeply"),
    ("deep-gold-json", lambda t: ["judges", "eval", "--judge", "fake:x", "--set", str(t / "deep-gold.json"),
                                  "--db", str(t / "s.db")], "deep-gold.json line 1: JSON nested too deeply"),
    ("deep-gold-jsonl", lambda t: ["judges", "eval", "--judge", "fake:x", "--set", str(t / "deep-gold.jsonl"),
                                   "--db", str(t / "s.db")], "deep-gold.jsonl line 1: JSON nested too deeply"),
    ("surrogate-in-prompt", lambda t: run_args(t, "surrogate.jsonl"),
     "surrogate.jsonl line 1: a lone surrogate U+D800"),
    ("surrogate-in-turn-2", lambda t: run_args(t, "surrogate-turn-2.jsonl"),
     "surrogate-turn-2.jsonl line 2: a lone surrogate U+DC00"),
    ("surrogate-in-reference", lambda t: run_args(t, "ok.jsonl", "--references", str(t / "surrogate-refs.jsonl")),
     "surrogate-refs.jsonl line 1: a lone surrogate U+D83D"),
    ("surrogate-in-gold-json", lambda t: ["judges", "eval", "--judge", "fake:x", "--set",
                                          str(t / "surrogate-gold.json"), "--db", str(t / "s.db")],
     "surrogate-gold.json line 2: a lone surrogate U+D800"),
    ("control-character-in-turn-2", lambda t: run_args(t, "control-turn-2.jsonl"),
     "prompt '1', turn 2: the prompt holds control character U+0007 on line 1"),
    ("300k-turn-2", lambda t: run_args(t, "long-turn-2.jsonl"), "prompt '1', turn 2: the prompt is 300,000 characters"),
    ("control-character-in-fixed-message", lambda t: run_args(t, "control-message.jsonl"),
     "prompt 'm', message 1 (system): the prompt holds control character U+001B"),
    ("300k-fixed-message", lambda t: run_args(t, "long-message.jsonl"),
     "prompt 'm', message 1 (user): the prompt is 300,000 characters"),
    ("surrogate-escaped-argument", lambda t: ["compare", "caf\udce9", "--model-a", "fake:a", "--model-b", "fake:b",
                                              "--judge", "fake:j"], "the command-line argument 'caf\\xe9' is not UTF-8"),
    ("lone-surrogate-argument", lambda t: ["compare", "hello \ud800", "--model-a", "fake:a"],
     "the command-line argument 'hello \\ud800' is not UTF-8"),
]


@pytest.mark.parametrize("name,args,needle", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_input_is_one_line_on_the_command_line(tmp, capsys, name, args, needle):
    rc = main(args(tmp))
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("... ")]
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert not (tmp / "s.db").exists() or "judges" in args(tmp)  # refused before any store was made


def test_a_byte_that_is_not_utf8_on_the_real_command_line_is_one_line(tmp):
    """``llm-judge compare $'caf\\xe9'``: the bytes as a shell passes them, not a Python string."""
    env = dict(os.environ, LLM_JUDGE_DB=str(tmp / "default.db"))
    done = subprocess.run([sys.executable, "-m", "llm_judge.cli", b"compare", b"caf\xe9", b"--model-a", b"fake:a",
                           b"--model-b", b"fake:b", b"--judge", b"fake:j"], capture_output=True, env=env, timeout=120)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "the command-line argument 'caf\\xe9' is not UTF-8" in err and "write it in UTF-8" in err, err


def test_a_lone_surrogate_typed_into_the_api_is_one_line():
    with pytest.raises(LLMJudgeError) as info:
        compare("hello \ud800", model_a="fake:a", model_b="fake:b", judge="fake:j")
    assert "lone surrogate U+D800" in str(info.value) and "\n" not in str(info.value)


def test_later_turns_and_fixed_messages_within_the_rules_still_load(tmp):
    path = tmp / "fine.jsonl"
    path.write_text(json.dumps({"id": "t", "turns": ["hi", "and\tthen?"]}) + "\n"
                    + json.dumps({"id": "m", "messages": [{"role": "system", "content": "Be brief.\r\n"},
                                                          {"role": "user", "content": "hi \U0001F600"}]}) + "\n")
    items = load_prompts(str(path))
    assert [it.turns for it in items] == [2, 1] and items[1].context == (("system", "Be brief.\r\n"),)


def test_training_data_splits_lines_on_newline_only(tmp):
    """U+2028, U+2029 and U+0085 are valid inside JSON strings, as the prompt reader accepts them."""
    text = "one\u2028two\u2029three\x85four"
    path = tmp / "train.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_conversations(str(path)) == [[{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]]


@pytest.mark.parametrize("text,needle", [
    (DEEP + "\n", "line 1: JSON nested too deeply"),
    ('{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "ok"}]}\n',
     "line 1: a lone surrogate U+D800"),
])
def test_bad_training_data_is_one_line(tmp, text, needle):
    path = tmp / "train.jsonl"
    path.write_text(text)
    with pytest.raises(LLMJudgeError) as info:
        read_conversations(str(path))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_cache_key_of_a_text_with_a_lone_surrogate_is_still_a_key():
    """The last line of defence: a model's answer is not checked like a user's file."""
    key = cache_key("gen", answer="hello \ud800")
    assert len(key) == 64 and key != cache_key("gen", answer="hello \udc00")
    assert cache_key("gen", answer="café") == cache_key("gen", answer="caf\u00e9")


def test_a_jury_whose_judges_all_fail_gives_an_unscored_comparison(tmp, capsys):
    result = compare("q", model_a="fake:a", model_b="fake:b", judge=["fake:j1", "fake:j2"])
    assert result.winner is None and result.jurors == []
    said = " ".join(result.warnings)
    assert "order AB is unscored: no juror gave a readable verdict (fake:j1:" in said and "fake:j2:" in said
    rc = main(["compare", "q", "--model-a", "fake:a", "--model-b", "fake:b", "--judge", "fake:j1", "--judge", "fake:j2",
               "--json"])
    out, err = capsys.readouterr()
    assert rc == 0 and "Traceback" not in out + err, err
    shown = json.loads(out)
    assert shown["winner"] is None and "no juror gave a readable verdict" in " ".join(shown["warnings"])
