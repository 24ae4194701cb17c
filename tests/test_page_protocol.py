"""The page's protocol choice (issue #20): a chosen protocol reaches the judge's prompt through the
page's named endpoint, and a public page takes only the bundled names (a path is a file of the
server's). Served as the other page tests serve it; a scripted ``fake:`` judge."""

import pytest

from llm_judge import LLMJudgeError
from llm_judge.present import page as views
from llm_judge.protocols import bundled, load_protocol
from llm_judge.store import Store
from llm_judge.testing import fake

from .test_protocol_options import answers, judged, llmbar_judge
from .test_public_page import compare_args, no_progress, served


def test_the_page_offers_llm_judges_own_protocol_first_then_every_bundled_one():
    choices = views.protocol_choices()
    assert choices[:2] == ["llm-judge", "auto"] and set(choices) == set(bundled()) | {"llm-judge", "auto"}


def test_a_public_page_takes_bundled_names_only_and_a_local_page_a_path_too(tmp_path):
    folder = load_protocol("llmbar-vanilla").path
    assert views.chosen_protocol("llm-judge", public=True) is None and views.chosen_protocol("", public=True) is None
    assert views.chosen_protocol("llmbar-vanilla", public=True) == "llmbar-vanilla"
    with pytest.raises(LLMJudgeError, match="not offered here") as info:
        views.chosen_protocol(folder, public=True)
    assert "\n" not in str(info.value)
    assert views.chosen_protocol(folder, public=False) == folder


def test_a_protocol_chosen_on_the_page_reaches_the_judges_prompt(tmp_path):
    from gradio_client import Client

    from llm_judge.ui import App

    answers()
    judge = llmbar_judge("j", "better")
    with served(App(Store(tmp_path / "ui.db"))) as url:
        status, *_rest, result = Client(url, verbose=False).predict(
            *compare_args("fake:a", "fake:b", "fake:j"), "llmbar-vanilla", api_name="/compare")
    assert status == "Done (saved)."
    assert len(judged(judge)) == 2 and result["winner"] == "B"


def test_the_default_choice_is_llm_judges_own_protocol(tmp_path):
    from gradio_client import Client

    from llm_judge.ui import App

    answers()
    judge = llmbar_judge("j", "better")
    with served(App(Store(tmp_path / "ui.db"))) as url:
        status, *_rest = Client(url, verbose=False).predict(*compare_args("fake:a", "fake:b", "fake:j"),
                                                            api_name="/compare")
    assert status == "Done (saved)."
    assert judged(judge) == [] and all(c.schema is not None for c in judge.calls)


def test_a_public_page_refuses_a_protocol_path(tmp_path):
    from gradio_client import Client

    from llm_judge.ui import App

    answers()
    judge = llmbar_judge("j", "better")
    mine = str(load_protocol("llmbar-vanilla").path)
    with served(App(Store(tmp_path / "ui.db"), public=True, allow_fake=True)) as url:
        with pytest.raises(Exception, match="not offered here|not in the list of choices"):
            Client(url, verbose=False).predict(*compare_args("fake:a", "fake:b", "fake:j"), mine, api_name="/compare")
    assert judge.calls == [] and fake.named("a").calls == []  # refused before any model was asked


def test_a_study_started_on_the_page_takes_the_protocol(tmp_path):
    from llm_judge.ui import App

    answers()
    judge = llmbar_judge("j", "better")
    app = App(Store(tmp_path / "ui.db"))
    app.study("seed-10", None, "fake:a#a\nfake:b#b", "fake:j", "pairwise", "2", "16", "llmbar-vanilla",
              progress=no_progress)
    assert len(judged(judge)) == 4  # 2 prompts x 2 orders, in LLMBar's template
    with pytest.raises(LLMJudgeError, match="not offered here"):
        App(Store(tmp_path / "pub.db"), public=True).study("seed-10", None, "fake:a#a\nfake:b#b", "fake:j", "pairwise",
                                                          "2", "16", str(load_protocol("llmbar-vanilla").path),
                                                          progress=no_progress)


PROFILE = {"protocol": "llmbar-vanilla", "method": "plain", "format": None, "set": "llmbar-natural",
           "dev": {"items": 10, "accuracy": 0.8}, "heldout": {"items": 10, "accuracy": 0.7, "low": 0.4, "high": 0.9}}


def test_auto_on_the_page_asks_the_judge_under_its_tuned_profile_and_says_so(tmp_path):
    from gradio_client import Client

    from llm_judge.ui import App

    answers()
    judge = llmbar_judge("j", "better")
    store = Store(tmp_path / "ui.db")
    store.add_profile("fake:j", "llmbar-natural", PROFILE)
    with served(App(store, public=True, allow_fake=True)) as url:  # "auto" is a name: a public page takes it
        status, *_rest, result = Client(url, verbose=False).predict(
            *compare_args("fake:a", "fake:b", "fake:j"), "auto", api_name="/compare")
    assert status == "Done (saved)."
    assert len(judged(judge)) == 2 and result["judge"]["protocol"] == "llmbar-vanilla"
    assert result["warnings"][0].startswith("protocol llmbar-vanilla (plain), chosen by judges tune on llmbar-natural")


def test_auto_without_a_profile_is_llm_judges_own_protocol_with_a_note(tmp_path):
    from llm_judge.ui import App

    choice = App(Store(tmp_path / "ui.db")).asked("auto", "fake:j")
    assert choice.protocol is None and choice.options() == {} and "no tuned profile for fake:j" in choice.note
