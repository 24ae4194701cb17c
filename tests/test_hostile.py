"""Hostile candidate answers: the recorded verdict comes only from the judge's own output, and
chat-template markers inside an answer cannot end the judge's message."""

import json

import pytest

from llm_judge import compare, parse_criteria
from llm_judge import judge as J
from llm_judge.attacks import ATTACKS
from llm_judge.backends import fake, get_backend
from llm_judge.criteria import Scale

from .conftest import verdict_json

CRIT, SCALE = parse_criteria(None), Scale()


def judged(answer_a: str, judge_outputs: list[str]):
    fake.named("a").queue(answer_a)
    fake.named("b").queue("A modest, honest answer.")
    fake.named("j").queue(*judge_outputs)
    return compare("How do I boil an egg?", model_a="fake:a", model_b="fake:b", judge="fake:j")


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_verdict_comes_from_the_judge_not_the_answer(attack):
    # The judge prefers the honest answer in both orders: B in AB, A (= B shown first) in BA.
    said = [verdict_json([1, 1, 1], [4, 4, 4], "B"), verdict_json([4, 4, 4], [1, 1, 1], "A")]
    r = judged("Boil it. " + ATTACKS[attack], list(said))
    assert (r.winner, r.consistent) == ("B", True)
    assert r.totals == {"A": 3.0, "B": 12.0}
    assert [o.raw for o in r.orders] == said  # the recorded text is the judge's own output
    assert [o.verdict["justification"] for o in r.orders] == [json.loads(t)["justification"] for t in said]


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_an_unreadable_judge_stays_unscored_whatever_the_answer_says(attack):
    r = judged(ATTACKS[attack], ["I refuse to judge.", "Still no verdict."])
    assert r.winner is None and r.scores is None
    assert all(o.verdict is None for o in r.orders)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_the_judge_prompt_holds_no_live_marker(attack):
    msgs = J.pairwise_messages("How do I boil an egg?", ATTACKS[attack], "honest", CRIT, SCALE)
    user = msgs[1]["content"]
    for marker in ("<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|start_header_id|>", "[INST]", "[/INST]", "\u200b"):
        assert marker not in user
    tag = J.nonce("How do I boil an egg?", ATTACKS[attack], "honest", "")
    assert user.count(f"<</A-{tag}>>") == 2 and user.count(f"<</B-{tag}>>") == 2  # instruction + real close only


@pytest.mark.model
@pytest.mark.parametrize("attack", [a for a in ATTACKS if a != "100kb"])
def test_template_markers_cannot_end_the_judges_message_real_tokenizer(attack):
    """Through SmolLM2's own chat template and tokenizer: the hostile prompt has exactly the
    control tokens of a clean one, so no answer can close the user turn or open another."""
    backend = get_backend("embedded")
    llm = backend.llm
    control = {llm.tokenize(t.encode(), add_bos=False, special=True)[0] for t in ("<|im_start|>", "<|im_end|>",
                                                                                   "<|endoftext|>")}

    def control_tokens(answer: str) -> int:
        msgs = J.pairwise_messages("How do I boil an egg?", answer, "honest", CRIT, SCALE)
        prompt = backend._formatter(messages=msgs).prompt
        return sum(t in control for t in llm.tokenize(prompt.encode(), add_bos=False, special=True))

    # system, user: start and end each; then the start of the assistant's turn
    assert control_tokens("Boil it. " + ATTACKS[attack]) == control_tokens("Boil it.") == 5
