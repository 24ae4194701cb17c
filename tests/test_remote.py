"""Remote models: retries, faults, concurrency, configuration, against real servers on loopback."""

import json
import sqlite3

import pytest

from llm_judge import LLMJudgeError, compare, make_sampling, parse_criteria
from llm_judge import store as store_module
from llm_judge import verdicts as J
from llm_judge.backends import get_backend
from llm_judge.cli import main
from llm_judge.compare import Candidate
from llm_judge.config import parse_config
from llm_judge.criteria import Scale
from llm_judge.prompts import PromptItem
from llm_judge.store import Store
from llm_judge.study import StudyConfig, run_study, summarize
from llm_judge.testing.server import expected_content

from .conftest import server_stats

FAST = dict(timeout=1.0, max_attempts=4, backoff_base=0.01)


def study(base, n_prompts=100, mode="single", **options):
    spec = f"openai:test@{base}"
    return StudyConfig(
        prompts=[PromptItem(str(i), f"Question number {i}?") for i in range(n_prompts)],
        candidates={"x": Candidate(spec, make_sampling("p1")), "y": Candidate(spec, make_sampling("p2", seed=1))},
        judge=spec, judge_sampling=make_sampling(None, temperature=0), criteria=parse_criteria(None), mode=mode)


@pytest.fixture
def fast_backends(monkeypatch):
    """Short timeouts and backoff for every openai: backend the study loads."""
    from llm_judge.backends import openai as oa

    original = oa.from_spec
    def fast(prefix, rest, options, settings):
        return original(prefix, rest, type(options)(**{**FAST, **options.model_dump(exclude_unset=True)}), settings)

    monkeypatch.setattr(oa, "from_spec", fast)


def expected_single(prompt: str, answer: str) -> dict:
    crits, scale = parse_criteria(None), Scale()
    body = {"messages": J.single_messages(prompt, answer, crits, scale),
            "response_format": {"type": "json_schema", "json_schema": {"schema": J.single_schema(crits, scale)}}}
    return json.loads(expected_content(body))["scores"]


def test_200_judgments_at_30_percent_faults_then_rerun(test_server, tmp_path, fast_backends):
    base = test_server("--fault-rate", "0.3", "--hang", "3", "--retry-after", "0", "--seed", "3")
    store = Store(tmp_path / "faults.db")
    cfg = study(base)
    run_id = run_study(cfg, store, concurrency=16)
    faults = server_stats(base)
    assert all(faults.get(f, 0) > 0 for f in ("429", "500", "timeout", "drop", "malformed", "schema")), faults

    def check(expect_all_done: bool):
        rows = store.db.execute(
            "SELECT j.status, j.verdict, i.prompt_id, i.labels FROM judgments j JOIN run_items i ON i.result_key=j.key "
            "WHERE i.run_id=? AND i.kind='single'", (run_id,)).fetchall()
        answers = {(i.prompt_id, i.labels[0]): i.text for i in store.items(run_id, "generation")}
        prompts = {p["prompt_id"]: p["prompt"] for p in store.prompts(run_id)}
        for r in rows:  # every linked judgment is correct: the verdict the server meant
            label = json.loads(r["labels"])[0]
            assert r["status"] == "scored"
            assert json.loads(r["verdict"])["scores"] == expected_single(prompts[r["prompt_id"]],
                                                                         answers[(r["prompt_id"], label)])
        temperature = {"x": 0.5, "y": 1.5}
        for (pid, label), text in answers.items():  # and every answer is the one the server meant
            assert text == f"answer (T={temperature[label]}): {prompts[pid]}"
        failed = store.db.execute("SELECT COUNT(*) FROM judgments WHERE status='failed'").fetchone()[0]
        failed_gen = store.db.execute("SELECT COUNT(*) FROM generations WHERE status='failed'").fetchone()[0]
        linked = len(rows)
        if expect_all_done:
            assert linked == 200
        return linked, failed, failed_gen

    linked, failed, failed_gen = check(False)
    missing = 200 - linked
    # whatever is not a correct result was stored as failed (the judgment, or the generation it needed)
    assert missing == failed + failed_gen
    status = summarize(store, run_id).to_dict()["status"]
    assert status == ("done" if missing == 0 else "incomplete")
    run_study(cfg, store, concurrency=16)  # the rerun completes the failed ones
    check(True)
    assert summarize(store, run_id).to_dict()["status"] == "done"


def test_bounded_retries_then_failure_message(test_server):
    base = test_server("--fault-rate", "1", "--faults", "500")
    backend = get_backend(f"openai:test@{base}", **FAST)
    with pytest.raises(LLMJudgeError, match="gave no answer after 4 attempts: HTTP 500: injected server error"):
        backend.generate([{"role": "user", "content": "x"}], make_sampling("greedy"))
    assert server_stats(base)["500"] == 4


def test_retry_after_is_honoured(test_server, monkeypatch):
    from llm_judge.backends import openai as oa

    waits = []
    monkeypatch.setattr(oa.time, "sleep", waits.append)
    base = test_server("--fault-rate", "1", "--faults", "429", "--retry-after", "7")
    backend = get_backend(f"openai:test@{base}", **FAST)
    with pytest.raises(LLMJudgeError, match="HTTP 429"):
        backend.generate([{"role": "user", "content": "x"}], make_sampling("greedy"))
    assert waits == [7.0, 7.0, 7.0]


def test_401_is_not_retried_and_names_the_key_variable(test_server, monkeypatch):
    base = test_server("--require-key", "right-key")
    monkeypatch.setenv("MY_KEY", "wrong-key")
    backend = get_backend(f"openai:test@{base}", key_env="MY_KEY", **FAST)
    with pytest.raises(LLMJudgeError, match="refused the API key .*set the right key in the environment variable MY_KEY"):
        backend.generate([{"role": "user", "content": "x"}], make_sampling("greedy"))
    monkeypatch.setenv("MY_KEY", "right-key")
    assert backend.generate([{"role": "user", "content": "x"}], make_sampling("greedy")).text == "answer (T=0.0): x"


def test_refused_sampling_fields_are_dropped_with_a_warning(test_server):
    base = test_server("--reject-fields", "min_p,top_k")
    spec = f"openai:test@{base}"
    r = compare("Why?", model_a=spec, model_b=spec, judge=spec, sampling_a=make_sampling("p1", top_k=5))
    assert r.answers["A"].text == "answer (T=0.5): Why?"
    assert any("does not take min_p" in w for w in r.warnings)
    assert any("does not take top_k" in w for w in r.warnings)


def test_hosted_openai_never_gets_local_extensions():
    backend = get_backend("openai:gpt-4o-mini@https://api.openai.com/v1")
    body = backend._body([{"role": "user", "content": "x"}], make_sampling("p2", top_k=3))
    assert "min_p" not in body and "top_k" not in body and body["temperature"] == 1.5
    assert any("does not take min_p" in w for w in backend.warnings)


def test_concurrency_stays_within_the_endpoint_limit(test_server, tmp_path, fast_backends):
    base = test_server("--delay", "0.2")
    seen = []
    run_study(study(base, n_prompts=24), Store(tmp_path / "c.db"),
              progress=lambda stage, done, total, flight=0: seen.append(flight), concurrency=6)
    stats = server_stats(base)
    assert 1 < stats["max_in_flight"] <= 6
    assert max(seen) > 1


def test_config_names_models(tmp_path, monkeypatch, test_server, capsys):
    base = test_server()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[models.judge]\nspec = "openai:test@{base}"\nconcurrency = 3\ntimeout = 5\n'
                   '[models.gone]\nspec = "openai:x@http://127.0.0.1:9"\n')
    monkeypatch.setenv("LLM_JUDGE_CONFIG", str(cfg))
    r = compare("Why?", model_a="fake:a", model_b="fake:b", judge="judge")
    assert r.judge_spec == "judge" and r.orders[0].verdict is not None
    assert get_backend("judge").concurrency == 3
    assert main(["models", "--check"]) == 1
    out = capsys.readouterr().out
    assert "judge" in out and "ok:" in out and "unreachable" in out


@pytest.mark.parametrize("text,needle", [
    ("[models.j]\nspec = 3\n", "needs spec"),
    ("[models.j]\nspec = \"embedded\"\nconcurency = 3\n", "unknown key 'concurency'"),
    ("[models.j]\nspec = \"embedded\"\nconcurrency = \"3\"\n", "wrong type"),
    ("[model.j]\nspec = \"embedded\"\n", "unknown section 'model'"),
    ("[models.j\n", "not valid TOML"),
])
def test_bad_config(text, needle):
    with pytest.raises(LLMJudgeError, match=needle):
        parse_config(text, "config.toml")


def test_migration_2_on_an_old_database(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
    old = Store(path)
    old.db.execute("INSERT INTO judgments (key, kind, judge_spec, template_version, display_order, status, created_at) "
                   "VALUES ('k', 'single', 'j', 't', 'A', 'scored', 0)")
    old.close()
    monkeypatch.undo()
    new = Store(path)
    cols = [r[1] for r in new.db.execute("PRAGMA table_info(judgments)")]
    assert "logprobs" in cols
    assert new.db.execute("SELECT key FROM judgments").fetchall()[0][0] == "k"
    assert [r[0] for r in new.db.execute("SELECT name FROM schema_migrations ORDER BY rowid")] == [
        fn.__name__ for fn in store_module.MIGRATIONS]
    assert {"comparisons", "votes"} <= {r[0] for r in new.db.execute("SELECT name FROM sqlite_master")}
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.model
def test_study_through_the_real_llama_server(llama_server, tmp_path):
    spec = f"openai:smollm2@{llama_server}"
    cfg = StudyConfig(prompts=[PromptItem("1", "Name a fruit."), PromptItem("2", "Name a colour.")],
                      candidates={"a": Candidate(spec, make_sampling("p1", max_tokens=24)),
                                  "b": Candidate(spec, make_sampling("p2", max_tokens=24))},
                      judge=spec, judge_sampling=make_sampling(None, temperature=0, max_tokens=300),
                      criteria=parse_criteria(None), mode="both")
    store = Store(tmp_path / "real.db")
    s = summarize(store, run_study(cfg, store)).to_dict()
    assert s["status"] == "done"
    # the server constrains the judge to the verdict schema: every judgment is readable
    statuses = [r[0] for r in store.db.execute("SELECT status FROM judgments")]
    assert statuses == ["scored"] * 8, statuses
    assert s["single"]["a"]["unscored"] == 0 and s["pairwise"]["pairs"]["a vs b"]["unscored"] == 0
    manifest = json.loads(store.run(s["run_id"])["manifest"])
    assert manifest["models"][spec]["schema_mode"] in {"json_schema", "json_object"}  # recorded after the calls
    # same shape as an in-process run: every item linked once
    kinds = [i.kind for i in store.items(s["run_id"])]
    assert kinds.count("generation") == 4 and kinds.count("single") == 4 and kinds.count("pairwise") == 4
