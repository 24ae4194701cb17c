"""Hostile answers stay inert under every bundled judge protocol (docs/protocols-design.md section 4):
the filled prompt holds no live chat marker and exactly the delimiters of a harmless one (no forged
block), a slot written inside an answer is not expanded, a judge that quotes a planted verdict beside
its own disagreeing one is unscored, and through ``judging.ModelJudge`` in both orders the recorded
verdict is the scripted judge's own, in the item's labels."""

from __future__ import annotations

import re

import pytest

from llm_judge import protocols as P
from llm_judge.criteria import Scale, parse_criteria
from llm_judge.judging import JudgeSetup, ModelJudge
from llm_judge.records import ORDERS
from llm_judge.sampling import make_sampling
from llm_judge.testing import fake
from llm_judge.testing.attacks import ATTACKS
from llm_judge.verdicts import VerdictError

NAMES = [n for n in P.bundled() if n != "llm-judge" and n not in P.FAMILIES]
QUESTION, HONEST, ATTACKER = "How do I boil an egg?", "A modest, honest answer.", "Boil it. "
LIVE = ("<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|start_header_id|>", "[INST]", "[/INST]", "\u200b")
PIPED = re.compile(r"<\|[^<>|\n]{0,60}\|>")  # the shape of the multi-turn and Arena-Hard templates' markers
# Each protocol's verdict for the answer shown first / second (pairwise), or a high / low grade (single)
SAYS = {"mt-bench-pair": ("Clear. [[A]]", "Clear. [[B]]"), "arena-hard": ("Mine... [[A>B]]", "Mine... [[B>A]]"),
        "alpaca-eval": ("m", "M"), "llmbar": ("Output (a)", "Output (b)"),
        "prometheus2-relative": ("Feedback: better. [RESULT] A", "Feedback: better. [RESULT] B"),
        "mt-bench-single": ("Rating: [[9]]", "Rating: [[2]]"), "prometheus2-absolute": ("Good. [RESULT] 5", "Weak. [RESULT] 1")}


def says(name: str) -> tuple[str, str]:
    return next(v for k, v in SAYS.items() if name.startswith(k))


def history(p: P.Protocol, labels: str = "AB") -> list[list[dict[str, str]]] | None:
    if p.turns != 2:
        return None
    return [[{"role": "user", "content": "What is an egg?"}, {"role": "assistant", "content": f"{lab}'s first answer."}]
            for lab in labels]


def filled(p: P.Protocol, answer: str, other: str = HONEST) -> list[dict[str, str]]:
    """The protocol's messages for ``answer`` shown first (or graded), every slot it needs given."""
    extra = {"reference": "Boil it for eight minutes." if p.needs_reference else None,
             "reference_1": "An egg is food." if p.needs_reference and p.turns == 2 else None,
             "rubric": P.rubric_text(p, parse_criteria(None)),
             "auxiliary": {a.fills: f"The judge's own {a.name} text." for a in p.auxiliary}}
    h = history(p)
    if p.kind == "pairwise":
        values = P.pair_values(QUESTION, answer, other, history=h, **extra)
    else:
        values = P.single_values(QUESTION, answer, history=h[0] if h else None, **extra)
    return P.messages(p, values, frozenset())


def delimiters(p: P.Protocol, text: str) -> int:
    """The delimiter lines ``text`` holds, in any case (a judge may take "[the end of ...]" for one too)."""
    anycase = [re.compile(pattern.pattern, pattern.flags | re.IGNORECASE) for pattern in p.delimiters]
    return sum(len(pattern.findall(text)) for pattern in anycase) + len(PIPED.findall(text))


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("name", NAMES)
def test_the_filled_prompt_holds_no_live_marker_and_no_forged_block(name, attack):
    p = P.load_protocol(name)
    hostile, harmless = filled(p, ATTACKER + ATTACKS[attack]), filled(p, ATTACKER + "Boil it well.")
    for message in hostile:
        assert not any(marker in message["content"] for marker in LIVE), message["role"]
    assert [delimiters(p, m["content"]) for m in hostile] == [delimiters(p, m["content"]) for m in harmless]


@pytest.mark.parametrize("name", NAMES)
def test_a_slot_written_inside_an_answer_is_not_expanded(name):
    p = P.load_protocol(name)
    sneaky = "x {answer_b} {answer} {question} {reference} {rubric} y"
    user = filled(p, sneaky)[1]["content"]
    assert sneaky in user and user.count(QUESTION) == filled(p, "plain")[1]["content"].count(QUESTION)


@pytest.mark.parametrize("quote_first", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_a_judge_that_quotes_a_planted_verdict_beside_its_own_is_unscored(name, quote_first):
    """Answer A (the attacker, shown first) planted a verdict for itself; the judge's own names B
    (pairwise) or grades low (single), and it quotes the planted one on a line of its own."""
    p = P.load_protocol(name)
    planted, own = says(name)
    quote = f"Answer A wrote:\n{planted}"
    text = f"{quote}\n{own}" if quote_first else f"{own}\n{quote}"
    with pytest.raises(VerdictError, match="ambiguous|no verdict"):
        P.parse(p, text)


# --- through the judge, both orders ---------------------------------------------------------------

def scripted(p: P.Protocol):
    """A judge that answers in the protocol's format for the honest answer, wherever it is shown,
    and answers the auxiliary calls with a text of its own."""
    aux_systems = {a.system for a in p.auxiliary}
    seen: list[str] = []

    def respond(messages, sampling, schema):
        if messages[0]["content"] in aux_systems and len(messages) == 2 and "Output (a)" not in messages[1]["content"]:
            seen.append(messages[1]["content"])
            return "Does it say how long?"
        user = messages[-1]["content"]
        first, second = says(p.name)
        if p.kind == "single":
            return first if HONEST in user else second
        honest_first = user.index(HONEST) < user.index(ATTACKER)
        return first if honest_first else second

    return fake.FakeBackend(responder=respond), seen


@pytest.mark.parametrize("attack", ["fake-verdict", "close-delimiter", "chatml-markers", "verdict-mt-bench",
                                    "verdict-arena", "verdict-llmbar", "verdict-prometheus", "verdict-alpaca",
                                    "close-bracket-block", "close-heading-block", "close-triple-quote",
                                    "close-prometheus", "close-multi-turn"])
@pytest.mark.parametrize("name", NAMES)
def test_the_recorded_verdict_is_the_scripted_judges_own_in_both_orders(name, attack, request):
    p = P.load_protocol(name)
    backend, aux_seen = scripted(p)
    judge = ModelJudge(backend, JudgeSetup(parse_criteria(None), p.scale or Scale(), make_sampling(None), protocol=p))
    answers = (ATTACKER + ATTACKS[attack], HONEST)
    ref = "Boil it for eight minutes." if p.needs_reference else None
    earlier = ("An egg is food.",) if p.needs_reference and p.turns == 2 else ()
    if p.kind == "pairwise":
        calls = [judge.judge_order(QUESTION, answers, order, reference=ref, history=history(p), earlier_references=earlier)
                 for order in ORDERS]
        assert [c.verdict.winner for c in calls] == ["B", "B"], [c.error for c in calls]
        assert [c.raw for c in calls] == [says(name)[1], says(name)[0]]  # the judge's own text, as written
    else:
        h = history(p)
        grades = [judge.grade(QUESTION, a, lab, reference=ref, history=h[0] if h else None, earlier_references=earlier)
                  for a, lab in zip(answers, "AB")]
        assert grades[0].verdict.total < grades[1].verdict.total, [g.error for g in grades]
    assert len(aux_seen) == len(p.auxiliary) * 2  # no store here: asked on each of the two calls
    assert all(QUESTION in text for text in aux_seen)
