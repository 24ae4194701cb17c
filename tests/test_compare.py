import json
import re

import pytest

from llm_judge import LLMJudgeError, compare, make_sampling
from llm_judge.cli import main
from llm_judge.testing import fake

from .conftest import prefers, verdict_json


def setup_fakes(judge_outputs=(), responder=None):
    fake.named("a").queue("GOOD answer from A")
    fake.named("b").queue("weak answer from B")
    j = fake.named("judge")
    j.queue(*judge_outputs)
    j.responder = responder
    return j


def run(**kw):
    return compare("How do I bake?", model_a="fake:a", model_b="fake:b", judge="fake:judge", **kw)


def test_content_preferring_judge_is_consistent_across_orders():
    judge = setup_fakes(responder=prefers("GOOD"))
    r = run()
    assert (r.winner, r.consistent) == ("A", True)
    assert r.totals == {"A": 12.0, "B": 6.0}
    assert [c.order for c in r.orders] == ["AB", "BA"]
    # the second call showed B's answer first
    first_shown = [re.search(r"<<A-\w+>>\n(.*?)\n<</A-", c.messages[1]["content"], re.S).group(1)
                   for c in judge.calls]
    assert "GOOD" in first_shown[0] and "weak" in first_shown[1]
    assert judge.calls[0].sampling.temperature == 0.0
    assert judge.calls[0].schema["properties"]["winner"]["enum"] == ["A", "B", "tie"]


def test_position_driven_judge_gives_tie_and_warning():
    always_first = verdict_json([4, 4, 4], [1, 1, 1], "A")
    setup_fakes([always_first, always_first])
    r = run()
    assert (r.winner, r.consistent, r.position_bias) == ("tie", False, "first")
    assert r.orders[1].verdict.winner == "B"  # mapped back to original labels
    assert r.scores["Relevance"] == {"A": 2.5, "B": 2.5}
    assert any("position, not content" in w for w in r.warnings)


def test_unreadable_verdicts_are_unscored_with_raw_output_kept():
    setup_fakes(["I think A wins, 4/4", '{"winner": "A"}'])
    r = run()
    assert r.winner is None and r.scores is None and r.totals is None and r.consistent is None
    assert r.orders[0].raw == "I think A wins, 4/4" and r.orders[0].verdict is None
    assert "no JSON object" in r.orders[0].error
    assert sum("unscored" in w for w in r.warnings) == 2


def test_one_unscored_order_lets_the_other_decide():
    setup_fakes(["garbage", verdict_json([1, 1, 1], [4, 4, 4], "A")])  # BA: first shown (B) wins
    r = run()
    assert (r.winner, r.consistent) == ("B", None)


def test_single_mode_totals_and_winner():
    setup_fakes(responder=prefers("GOOD"))
    r = run(mode="single")
    assert r.totals == {"A": 12.0, "B": 6.0} and r.winner == "A"
    assert [c.order for c in r.orders] == ["A", "B"]


def test_sampling_reaches_the_candidates():
    setup_fakes(responder=prefers("GOOD"))
    run(sampling_a=make_sampling("p1", seed=7), sampling_b=make_sampling("p2"))
    assert fake.named("a").calls[0].sampling.temperature == 0.5
    assert fake.named("a").calls[0].sampling.seed == 7
    assert fake.named("b").calls[0].sampling.min_p == 0.1


def test_self_judging_warns():
    fake.named("x").responder = prefers("zzz")
    r = compare("q", model_a="fake:x", model_b="fake:b", judge="fake:x")
    assert any("self-preference" in w for w in r.warnings)


def test_json_shape():
    setup_fakes(responder=prefers("GOOD"))
    d = run().to_dict()
    for key in ("prompt", "candidates", "judge", "criteria", "orders", "scores", "totals", "winner", "consistent"):
        assert key in d
    for key in ("spec", "sampling", "text", "completion_tokens", "seconds"):
        assert key in d["candidates"]["A"]
    assert d["judge"]["spec"] == "fake:judge"
    assert d["orders"][0]["raw"] and d["orders"][0]["verdict"]["winner"] == "A"
    json.dumps(d)


@pytest.mark.parametrize("kwargs,needle", [
    ({"criteria": "Nope"}, "unknown criterion"), ({"mode": "triple"}, "unknown mode"),
    ({"model_a": "bogus:1"}, "unknown model spec"),
])
def test_bad_input_raises_user_error(kwargs, needle):
    with pytest.raises(LLMJudgeError, match=needle):
        compare("q", **{"model_a": "fake:a", "model_b": "fake:b", "judge": "fake:j", **kwargs})


@pytest.mark.parametrize("prompt", ["", "   \n", None])
def test_empty_prompt(prompt):
    with pytest.raises(LLMJudgeError, match="empty prompt"):
        compare(prompt, model_a="fake:a", model_b="fake:b", judge="fake:j")


def test_streaming_callback_receives_both_answers():
    setup_fakes(responder=prefers("GOOD"))
    seen = {"A": "", "B": ""}
    run(on_token=lambda label, piece: seen.__setitem__(label, seen[label] + piece))
    assert "GOOD" in seen["A"] and "weak" in seen["B"]


# --- the command line -------------------------------------------------------------------------

def cli(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_json(capsys):
    setup_fakes(responder=prefers("GOOD"))
    rc, out, err = cli(capsys, "compare", "How?", "--model-a", "fake:a", "--model-b", "fake:b",
                       "--judge", "fake:judge", "--json", "--temperature-b", "0.9", "--max-tokens", "40")
    assert rc == 0
    d = json.loads(out)
    assert d["winner"] == "A" and d["consistent"] is True
    assert d["candidates"]["B"]["sampling"]["temperature"] == 0.9
    assert d["candidates"]["B"]["sampling"]["min_p"] == 0.1  # the rest of preset p2 stays
    assert d["candidates"]["A"]["sampling"]["max_tokens"] == 40


def test_cli_table_output(capsys):
    setup_fakes(responder=prefers("GOOD"))
    rc, out, _ = cli(capsys, "compare", "How?", "--model-a", "fake:a", "--model-b", "fake:b",
                     "--judge", "fake:judge")
    assert rc == 0
    assert "Winner: A" in out and "Both orders agreed: yes" in out and "Total" in out


def test_cli_prompt_from_file(capsys, tmp_path):
    setup_fakes(responder=prefers("GOOD"))
    f = tmp_path / "p.txt"
    f.write_text("From a file?")
    rc, out, _ = cli(capsys, "compare", "--file", str(f), "--model-a", "fake:a", "--model-b", "fake:b",
                     "--judge", "fake:judge", "--json")
    assert rc == 0 and json.loads(out)["prompt"] == "From a file?"


@pytest.mark.parametrize("args,needle", [
    (["compare", "q", "--criteria", "Nope"], "unknown criterion 'Nope'"),
    (["compare", "q", "--model-a", "nope:x"], "unknown model spec"),
    (["compare", "q", "--model-a", "gguf:/no/such.gguf"], "model file not found"),
    (["compare", "q", "--temperature-a", "-1"], "temperature=-1"),
    (["compare", "q", "--min-p", "2"], "min_p=2"),
    (["compare", "q", "--max-tokens", "0"], "max_tokens=0"),
    (["compare", "q", "--scale", "3-1"], "bad scale"),
    (["compare", "--file", "/no/such/prompt.txt"], "prompt file not found"),
    (["compare", "q", "--bogus"], "No such option"),
    (["compare", "q", "--mode", "x"], "Invalid value"),
])
def test_cli_bad_input_one_line_exit_2(capsys, args, needle):
    rc, out, err = cli(capsys, *args)
    assert rc == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in err


def test_cli_not_gguf(capsys, tmp_path):
    f = tmp_path / "x.gguf"
    f.write_bytes(b"not a model")
    rc, _, err = cli(capsys, "compare", "q", "--model-a", f"gguf:{f}")
    assert rc == 2 and "is not a GGUF model file" in err


def test_cli_invalid_utf8_prompt_file(capsys, tmp_path):
    f = tmp_path / "p.txt"
    f.write_bytes(b"caf\xe9")
    rc, _, err = cli(capsys, "compare", "--file", str(f))
    assert rc == 2 and "not UTF-8" in err
