"""Bad input, everywhere a user can type or load something: one line naming the problem,
exit code 2 on the command line, no traceback, and no partial rows in the store."""

import os
import sqlite3
import subprocess
import sys

import gradio as gr
import pytest

from llm_judge import LLMJudgeError, compare, make_sampling, parse_criteria
from llm_judge.backends.llamacpp import embedded_model_path
from llm_judge.cli import main
from llm_judge.prompts import load_prompts
from llm_judge.store import Store

SERVERS = {  # name in the config file -> test server arguments
    "e401": ["--require-key", "the-right-key"],
    "e429": ["--fault-rate", "1", "--faults", "429", "--retry-after", "0"],
    "e500": ["--fault-rate", "1", "--faults", "500"],
    "ehtml": ["--fault-rate", "1", "--faults", "html"],
    "eempty": ["--fault-rate", "1", "--faults", "empty"],
    "eok": [],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Test servers for each failing endpoint, a config file naming them, and some files."""
    tmp = tmp_path_factory.mktemp("bad")
    procs, urls = [], {}
    for name, args in SERVERS.items():
        proc = subprocess.Popen([sys.executable, "-m", "llm_judge.testing.server", "--port", "0", *args],
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        urls[name] = proc.stdout.readline().split()[-1]
    config = tmp / "config.toml"
    config.write_text("".join(f'[models.{n}]\nspec = "openai:test@{u}"\nmax_attempts = 2\ntimeout = 5\n'
                              f'key_env = "LLM_JUDGE_TEST_KEY"\n' for n, u in urls.items())
                      + '[models.unreachable]\nspec = "openai:m@http://127.0.0.1:9/v1"\nmax_attempts = 2\n')
    files = {
        "1mb": "a" * 1_048_576, "long": "word " * 3000, "bell": "hello\x07world", "ok": "fine prompt",
        "bad.jsonl": '{"id": "1", "prompt": "a"}\n{"id": "2", "prompt": \n',
        "dup.jsonl": '{"id": "1", "prompt": "a"}\n{"id": "1", "prompt": "b"}\n',
        "ctl.jsonl": '{"id": "1", "prompt": "a\\u0007b"}\n', "noprompt.csv": "id,text\n1,hi\n",
        "bad-verdicts.jsonl": '{"id": "1", "verdict": "A"}\n{oops\n',
        "wrong-verdicts.jsonl": '{"id": "1", "verdict": "C"}\n', "bad.toml": "[models.x\n",
        "list-verdicts.jsonl": '{"id": "1", "verdict": ["A"]}\n', "object-human.jsonl": '{"verdict": "A", "human": {"A": 1}}\n',
        "mixed-categories.jsonl": '{"verdict": "A", "category": "math"}\n{"verdict": "B", "category": 7}\n',
        "ok-verdicts.jsonl": '{"verdict": "A"}\n',
    }
    for name, text in files.items():
        (tmp / name).write_text(text)
    (tmp / "latin1.txt").write_bytes(b"caf\xe9")
    (tmp / "notgguf.gguf").write_bytes(b"this is not a model")
    (tmp / "trunc.gguf").write_bytes(embedded_model_path().read_bytes()[:1_000_000])
    (tmp / "notadb.db").write_text("not sqlite " * 100)
    (tmp / "afile").write_text("x")
    Store(tmp / "good.db").close()
    yield tmp, urls, config
    for proc in procs:
        proc.terminate()


def T(tmp, name):
    return str(tmp / name)


CLI_CASES = [  # (id, args given (tmp, urls), text the one-line error must hold)
    ("empty-prompt", lambda t, u: ["compare", ""], "empty prompt"),
    ("blank-prompt", lambda t, u: ["compare", "  \n "], "empty prompt"),
    ("1mb-prompt", lambda t, u: ["compare", "--file", T(t, "1mb")], "the limit is 200,000"),
    ("prompt-over-context", lambda t, u: ["compare", "--file", T(t, "long")], "prompt too long for embedded"),
    ("control-character", lambda t, u: ["compare", "--file", T(t, "bell")], "control character U+0007 on line 1"),
    ("invalid-utf8", lambda t, u: ["compare", "--file", T(t, "latin1.txt")], "line 1: not UTF-8 text"),
    ("missing-prompt-file", lambda t, u: ["compare", "--file", T(t, "nope.txt")], "prompt file not found"),
    ("unknown-criterion", lambda t, u: ["compare", "q", "--criteria", "Relevance,Vibes"], "unknown criterion 'Vibes'"),
    ("too-many-criteria", lambda t, u: ["compare", "q", "--criteria", ",".join(f"c{i}=d" for i in range(11))],
     "too many criteria (11)"),
    ("empty-custom-criterion", lambda t, u: ["compare", "q", "--criteria", "Tone="], "bad custom criterion 'Tone='"),
    ("duplicate-criterion", lambda t, u: ["compare", "q", "--criteria", "Depth,depth"], "listed twice"),
    ("scale-1-1", lambda t, u: ["compare", "q", "--scale", "1-1"], "bad scale 1-1"),
    ("scale-text", lambda t, u: ["compare", "q", "--scale", "abc"], "write it as LOW-HIGH"),
    ("temperature-negative", lambda t, u: ["compare", "q", "--temperature-a", "-1"], "temperature=-1"),
    ("min-p-2", lambda t, u: ["compare", "q", "--min-p", "2"], "min_p=2"),
    ("max-tokens-0", lambda t, u: ["compare", "q", "--max-tokens", "0"], "max_tokens=0"),
    ("top-p-0", lambda t, u: ["compare", "q", "--top-p-b", "0"], "top_p=0"),
    ("seed-negative", lambda t, u: ["compare", "q", "--seed", "-1"], "seed=-1"),
    ("unknown-spec-prefix", lambda t, u: ["compare", "q", "--model-a", "nope:x"], "unknown model spec 'nope:x'"),
    ("missing-gguf", lambda t, u: ["compare", "q", "--model-b", "gguf:/no/such.gguf"], "model file not found"),
    ("not-gguf", lambda t, u: ["compare", "q", "--judge", f"gguf:{T(t, 'notgguf.gguf')}"], "is not a GGUF model file"),
    ("truncated-gguf", lambda t, u: ["compare", "q", "--model-a", f"gguf:{T(t, 'trunc.gguf')}"], "could not load"),
    ("hf-offline", lambda t, u: ["compare", "q", "--model-a", "hf:acme/missing/m.gguf"], "not in the Hugging Face cache"),
    ("hf-bad-spec", lambda t, u: ["compare", "q", "--model-a", "hf:just-a-name"], "write hf:OWNER/REPO/FILE.gguf"),
    ("openai-no-url", lambda t, u: ["compare", "q", "--judge", "openai:gpt-4o"], "write openai:MODEL@BASE_URL"),
    ("openai-bad-scheme", lambda t, u: ["compare", "q", "--judge", "openai:m@ftp://x"], "must start with http"),
    ("unreachable-url", lambda t, u: ["compare", "q", "--model-a", "unreachable"], "connection failed"),
    ("endpoint-401", lambda t, u: ["compare", "q", "--model-a", "e401"], "set the right key in the environment variable "
                                                                         "LLM_JUDGE_TEST_KEY"),
    ("endpoint-404", lambda t, u: ["compare", "q", "--model-a", f"openai:test@{u['eok'][:-3]}/nope"], "answered 404"),
    ("endpoint-429-forever", lambda t, u: ["compare", "q", "--model-a", "e429"], "after 2 attempts: HTTP 429"),
    ("endpoint-500-forever", lambda t, u: ["compare", "q", "--model-a", "e500"], "after 2 attempts: HTTP 500"),
    ("endpoint-html", lambda t, u: ["compare", "q", "--model-a", "ehtml"], "malformed response"),
    ("endpoint-no-choices", lambda t, u: ["compare", "q", "--model-a", "eempty"], "malformed response"),
    ("n-ctx-10", lambda t, u: ["compare", "q", "--n-ctx", "10"], "a context of 10 tokens is too small: use at least 256"),
    ("unknown-preset", lambda t, u: ["compare", "q", "--preset-a", "p9"], "Invalid value for '--preset-a'"),
    ("unknown-option", lambda t, u: ["compare", "q", "--tempurature", "1"], "No such option"),
    ("unknown-mode", lambda t, u: ["compare", "q", "--mode", "triple"], "Invalid value for '--mode'"),
    ("malformed-jsonl", lambda t, u: ["run", "--prompts", T(t, "bad.jsonl"), "--db", T(t, "s.db")],
     "bad.jsonl line 2: not valid JSON"),
    ("duplicate-ids", lambda t, u: ["run", "--prompts", T(t, "dup.jsonl"), "--db", T(t, "s.db")], "id '1' appears twice"),
    ("control-character-in-set", lambda t, u: ["run", "--prompts", T(t, "ctl.jsonl"), "--db", T(t, "s.db")],
     "control character U+0007"),
    ("csv-without-prompt", lambda t, u: ["run", "--prompts", T(t, "noprompt.csv"), "--db", T(t, "s.db")],
     "needs a header with a 'prompt' column"),
    ("unknown-prompt-set", lambda t, u: ["run", "--prompts", "seed-11", "--db", T(t, "s.db")], "prompt set not found"),
    ("limit-0", lambda t, u: ["run", "--limit", "0", "--db", T(t, "s.db")], "a limit of 0 prompts: take at least 1"),
    ("sample-0", lambda t, u: ["run", "--sample", "0", "--db", T(t, "s.db")], "a sample of 0 prompts: take at least 1"),
    ("store-read-only-dir", lambda t, u: ["runs", "--db", "/proc/llm-judge.db"], "cannot use /proc/llm-judge.db"),
    ("store-not-a-database", lambda t, u: ["runs", "--db", T(t, "notadb.db")], "as the store (file is not a database)"),
    ("store-under-a-file", lambda t, u: ["runs", "--db", T(t, "afile") + "/x.db"], "cannot create the store"),
    ("duplicate-labels", lambda t, u: ["run", "--candidate", "embedded@p1", "--candidate", "embedded@p1",
                                       "--db", T(t, "s.db")], "two candidates are labelled 'embedded@p1'"),
    ("pairwise-one-candidate", lambda t, u: ["run", "--candidate", "embedded", "--mode", "pairwise", "--db", T(t, "s.db")],
     "needs at least two candidates"),
    ("baseline-unknown", lambda t, u: ["run", "--mode", "pairwise", "--baseline", "zz", "--db", T(t, "s.db")],
     "baseline 'zz' is not a candidate label"),
    ("repeat-0", lambda t, u: ["run", "--repeat", "0", "--db", T(t, "s.db")], "repeat 0: judge each item 1 to 100 times"),
    ("concurrency-0", lambda t, u: ["run", "--concurrency", "0", "--candidate", "eok", "--candidate", "eok#b",
                                    "--judge", "eok", "--db", T(t, "s.db")], "concurrency 0: at least 1 request in flight"),
    ("run-endpoint-401", lambda t, u: ["run", "--candidate", "e401", "--candidate", "e401#b", "--judge", "e401",
                                       "--limit", "2", "--db", T(t, "s.db")], "refused the API key"),
    ("config-bad-toml", lambda t, u: ["--config", T(t, "bad.toml"), "models"], "is not valid TOML"),
    ("config-missing", lambda t, u: ["--config", T(t, "none.toml"), "models"], "config file not found"),
    ("run-id-unknown", lambda t, u: ["report", "deadbeef", "--db", T(t, "good.db")], "no run 'deadbeef'"),
    ("export-run-unknown", lambda t, u: ["export", "deadbeef", "-o", T(t, "x.csv"), "--db", T(t, "good.db")],
     "no run 'deadbeef'"),
    ("analyze-missing", lambda t, u: ["analyze", T(t, "none.jsonl")], "verdict file not found"),
    ("analyze-malformed", lambda t, u: ["analyze", T(t, "bad-verdicts.jsonl")], "bad-verdicts.jsonl line 2: not valid JSON"),
    ("analyze-bad-value", lambda t, u: ["analyze", T(t, "wrong-verdicts.jsonl")], 'verdict "C" must be'),
    ("analyze-list-label", lambda t, u: ["analyze", T(t, "list-verdicts.jsonl")], 'verdict ["A"] must be'),
    ("analyze-object-label", lambda t, u: ["analyze", T(t, "object-human.jsonl")], 'human {"A": 1} must be'),
    ("analyze-mixed-categories", lambda t, u: ["analyze", T(t, "mixed-categories.jsonl")],
     "line 2: category 7 must be a string"),
    ("analyze-bootstrap-0", lambda t, u: ["analyze", T(t, "ok-verdicts.jsonl"), "--bootstrap", "0"],
     "bootstrap resamples must be"),
    ("run-bootstrap-negative", lambda t, u: ["run", "--bootstrap", "-5", "--db", T(t, "s.db")],
     "bootstrap resamples must be"),
    ("report-bootstrap-0", lambda t, u: ["report", "deadbeef", "--bootstrap", "0", "--db", T(t, "good.db")],
     "bootstrap resamples must be"),
]


@pytest.fixture
def cli_env(world, monkeypatch):
    tmp, urls, config = world
    monkeypatch.setenv("LLM_JUDGE_CONFIG", str(config))
    monkeypatch.setenv("LLM_JUDGE_TEST_KEY", "a-wrong-key")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp / "hf-cache"))
    return tmp, urls


def one_line_error(capsys, args) -> str:
    rc = main(args)
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("... ")]
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in out + err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def store_state(path) -> dict:
    """What a store holds: its soundness and the rows a failed command must not have left."""
    with sqlite3.connect(path) as c:
        return {"integrity": c.execute("PRAGMA integrity_check").fetchone()[0],
                **{t: c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("generations", "judgments",
                                                                                    "run_items", "votes")},
                "runs": [r[0] for r in c.execute("SELECT status FROM runs")]}


EMPTY = {"integrity": "ok", "generations": 0, "judgments": 0, "run_items": 0, "votes": 0, "runs": []}


@pytest.mark.parametrize("name,args,needle", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(cli_env, capsys, name, args, needle):
    tmp, urls = cli_env
    argv = args(tmp, urls)
    db = argv[argv.index("--db") + 1] if "--db" in argv else None
    if db == str(tmp / "s.db"):  # a fresh, existing store for each case that names one
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.unlink(db + suffix)
        Store(db).close()
    before = open(db, "rb").read() if db and os.path.isfile(db) and db.endswith("notadb.db") else None
    line = one_line_error(capsys, argv)
    assert needle in line, line
    if db is None:
        return
    if db.endswith(("s.db", "good.db")):  # the store holds no partial rows, and is sound
        state = store_state(db)
        expected = dict(EMPTY, runs=state["runs"] if state["runs"] == ["interrupted"] else [])
        assert state == expected, state  # a refused key stops the run and says so ("interrupted")
        assert name != "run-endpoint-401" or state["runs"] == ["interrupted"]
    elif before is not None:
        assert open(db, "rb").read() == before  # a file that is no store is left as it was
    else:
        assert not os.path.exists(db)  # nothing was created where no store can be


def test_report_path_that_cannot_be_written(cli_env, capsys, tmp_path):
    from llm_judge.testing import fake

    from .test_views_votes import make_run

    store, run_id = make_run(tmp_path)
    store.close()
    fake.reset()
    db = str(tmp_path / "v.db")
    assert "cannot write the report to /proc/r.html" in one_line_error(capsys, ["report", run_id, "--html", "/proc/r.html",
                                                                              "--db", db])
    assert "cannot write /proc/x.csv" in one_line_error(capsys, ["export", run_id, "-o", "/proc/x.csv", "--db", db])


API_CASES = [
    ("api-none-prompt", lambda: compare(None), "empty prompt"),
    ("api-nul-prompt", lambda: compare("a\x00b", model_a="fake:a", model_b="fake:b", judge="fake:j"),
     "control character U+0000"),
    ("api-sampling", lambda: make_sampling("p1", temperature=9), "temperature=9"),
    ("api-no-criteria", lambda: parse_criteria([]), "no criteria"),
    ("api-empty-prompt-file", lambda: load_prompts(os.devnull), "holds no prompts"),
    ("api-store-on-a-directory", lambda: Store("/tmp"), "cannot use /tmp as the store"),
]


@pytest.mark.parametrize("name,call,needle", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input(name, call, needle):
    with pytest.raises(LLMJudgeError) as info:
        call()
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.fixture
def app(tmp_path):
    from llm_judge.ui import App

    return App(Store(tmp_path / "ui.db"), public=True, allowed_dirs=[tmp_path / "models"])


def ui_message(call) -> str:
    from llm_judge.ui import user_errors

    with pytest.raises(gr.Error) as info:
        result = user_errors(call)()
        if hasattr(result, "__next__"):
            next(result)
    return info.value.message


COMPARE_DEFAULTS = dict(model_a="embedded", model_b="embedded", judge="embedded", preset_a="p1", preset_b="p2",
                        max_tokens="16", temp_a="", min_p_a="", top_p_a="", top_k_a="", temp_b="", min_p_b="",
                        top_p_b="", top_k_b="", seed="0",
                        chosen=["Relevance"], custom="", prompt="hi")


def compare_with(app, **changes):
    values = {**COMPARE_DEFAULTS, **changes}
    return lambda: app.compare(*values.values())


UI_CASES = [
    ("ui-bad-spec", lambda app: compare_with(app, model_a="nope:x"), "unknown model spec"),
    ("ui-empty-spec", lambda app: compare_with(app, judge=" "), "a model is empty"),
    ("ui-too-many-criteria", lambda app: compare_with(app, chosen=["Relevance", "Depth", "Clarity", "Accuracy"]),
     "select up to 3 criteria (4 selected)"),
    ("ui-no-criteria", lambda app: compare_with(app, chosen=[]), "select at least one criterion"),
    ("ui-bad-number", lambda app: compare_with(app, temp_a="warm"), "temperature A must be a number"),
    ("ui-bad-max-tokens", lambda app: compare_with(app, max_tokens="0"), "max_tokens=0"),
    ("ui-bad-top-k", lambda app: compare_with(app, top_k_b="1.5"), "top_k B must be a whole number"),
    ("ui-file-outside-allowed", lambda app: compare_with(app, model_a="gguf:/etc/passwd"), "local model files are restricted"),
    ("ui-url-not-configured", lambda app: compare_with(app, judge="openai:m@http://10.1.2.3/v1"),
     "server URLs are restricted"),
    ("ui-fake-on-a-public-page", lambda app: compare_with(app, judge="fake:judge"), "--allow-fake"),
    ("ui-download-on-a-public-page", lambda app: compare_with(app, model_b="acme/model m.gguf"), "--allow-downloads"),
    ("ui-open-no-run", lambda app: lambda: app.open_run(None), "choose a run first"),
    ("ui-open-unknown-run", lambda app: lambda: app.open_run("zzz"), "no run 'zzz'"),
    ("ui-next-pair-no-run", lambda app: lambda: app.next_pair(""), "choose a run to vote on"),
    ("ui-vote-before-pair", lambda app: lambda: app.vote("left", None), "press “Next pair” first"),
    ("ui-study-missing-file", lambda app: lambda: app.study("seed-10", "/no/such.jsonl", "embedded", "embedded", "single",
                                                           "", "16"), "prompt set not found"),
    ("ui-study-bad-limit", lambda app: lambda: app.study("seed-10", None, "embedded", "embedded", "single", "x", "16"),
     "the number of prompts must be a whole number"),
]


@pytest.mark.parametrize("name,make,needle", UI_CASES, ids=[c[0] for c in UI_CASES])
def test_ui_bad_input(app, name, make, needle):
    message = ui_message(make(app))
    assert needle in message and "Traceback" not in message
    assert store_state(app.store.path) == EMPTY  # the page's store is untouched


def test_case_count_matches_the_docs():
    """docs/hardening.md states the counts of this file: they are read from the code here."""
    import re
    from pathlib import Path

    total = len(CLI_CASES) + 1 + len(API_CASES) + len(UI_CASES)
    doc = (Path(__file__).parent.parent / "docs" / "hardening.md").read_text()
    stated = re.search(r"## Bad input \(`tests/test_bad_input.py`\): (\d+) cases\n(\d+) on the command line, 1 more for "
                       r"report/export paths, (\d+) through the Python API, (\d+) through\nthe page's handlers", doc)
    assert stated, "docs/hardening.md no longer states the counts in the expected words"
    assert tuple(map(int, stated.groups())) == (total, len(CLI_CASES), len(API_CASES), len(UI_CASES))


def test_a_bad_flash_attention_variable_is_one_line_naming_it_and_a_flag_overrides_it(cli_env, capsys, monkeypatch):
    monkeypatch.setenv("LLM_JUDGE_FLASH_ATTENTION", "maybe")
    line = one_line_error(capsys, ["models"])
    assert "LLM_JUDGE_FLASH_ATTENTION='maybe' is not on or off: set it to 1 or 0" in line, line
    assert main(["--no-flash-attention", "models"]) == 0  # the flag given, the variable is not read
