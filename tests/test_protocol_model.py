"""Published protocols on the real built-in model, on both local engines (#20): a verdict-first
protocol's grammar holds the judge to its label, its probabilities are read at the label, and a
free-text protocol's verdict is read or left unscored, never made up."""

from __future__ import annotations

import pytest

from llm_judge import engine
from llm_judge.backends import get_backend
from llm_judge.criteria import Scale, parse_criteria
from llm_judge.judging import JudgeSetup, ModelJudge
from llm_judge.protocols import load_protocol
from llm_judge.sampling import make_sampling

pytestmark = pytest.mark.model
QUESTION = "Name a primary colour."
ANSWERS = ("Red is a primary colour.", "Bananas are yellow and grow in bunches on large plants.")


def _judge(engine_name: str, protocol: str, method: str = "weighted") -> ModelJudge:
    if engine_name == "server" and engine.find_binary() is None:
        pytest.skip("llama-server is not built here")
    backend = get_backend("embedded", engine=engine_name, parallel=1)
    setup = JudgeSetup(parse_criteria(None), Scale(), make_sampling(None, temperature=0.0, max_tokens=256), method=method,
                       protocol=load_protocol(protocol))
    return ModelJudge(backend, setup)


@pytest.mark.parametrize("engine_name", ["inprocess", "server"])
@pytest.mark.parametrize("protocol", ["llmbar-vanilla", "alpaca-eval-weighted"])
def test_a_verdict_first_protocol_gets_its_label_and_its_probabilities_on_both_engines(engine_name, protocol):
    judge = _judge(engine_name, protocol)
    for order in ("AB", "BA"):
        call = judge.judge_order(QUESTION, ANSWERS, order)
        assert call.status == "scored", (call.raw, call.error)  # the grammar leaves no other output
        p = call.pair.probabilities
        assert p is not None and p.winner is not None, call.raw
        assert sum(p.winner.values()) == pytest.approx(1.0, abs=1e-4)
        assert p.winner["tie"] == 0.0  # neither protocol has a tie label


@pytest.mark.parametrize("engine_name", ["inprocess", "server"])
def test_a_free_text_protocol_is_read_or_unscored_with_its_reason(engine_name):
    judge = _judge(engine_name, "mt-bench-pair-v2", "plain")
    call = judge.judge_order(QUESTION, ANSWERS, "AB")
    assert call.completion is not None and call.completion.text == call.raw
    if call.result is None:
        assert call.status == "unscored" and call.error
    else:
        assert call.pair.winner in ("A", "B", "tie") and "[[" in call.raw
