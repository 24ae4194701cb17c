"""An API key is sent to the server and nowhere else: not the store, exports, reports or logs."""

import os
import subprocess
import sys

EXE = os.path.join(os.path.dirname(sys.executable), "llm-judge")
KEY = "sk-llmjudge-FAKE-0123456789abcdef"


def test_a_recognisable_key_appears_nowhere(test_server, tmp_path):
    base = test_server("--require-key", KEY)  # the server answers 401 unless this exact key is sent
    config = tmp_path / "config.toml"
    config.write_text(f'[models.srv]\nspec = "openai:test@{base}"\nkey_env = "LLM_JUDGE_SECRET"\n')
    db = tmp_path / "s.db"
    env = dict(os.environ, LLM_JUDGE_SECRET=KEY, LLM_JUDGE_CONFIG=str(config))
    logs = []

    def run(*args):
        p = subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=120)
        logs.append(p.stdout + p.stderr)
        assert p.returncode == 0, p.stderr
        return p.stdout

    run("compare", "Is the key safe?", "--model-a", "srv", "--model-b", "srv", "--judge", "srv", "--json")
    out = run("run", "--prompts", "seed-10", "--limit", "3", "--candidate", "srv@p1", "--candidate", "srv@p2#b",
              "--judge", "srv", "--mode", "both", "--db", str(db), "--json")
    run_id = __import__("json").loads(out)["run_id"]
    files = [tmp_path / n for n in ("r.html", "r.md", "r.csv", "r.jsonl", "v.jsonl")]
    run("report", run_id, "--html", str(files[0]), "--md", str(files[1]), "--db", str(db))
    run("export", run_id, "--format", "csv", "-o", str(files[2]), "--db", str(db))
    run("export", run_id, "--format", "jsonl", "-o", str(files[3]), "--db", str(db))
    run("export", run_id, "--format", "verdicts", "-o", str(files[4]), "--db", str(db))
    run("runs", "--db", str(db), "--json")
    run("models", "--check")
    stored = [p for p in tmp_path.iterdir() if p.name.startswith("s.db")]  # the database, its WAL and index
    searched = 0
    for path in stored + files:
        assert KEY.encode() not in path.read_bytes(), path
        searched += 1
    for log in logs:
        assert KEY not in log
    assert searched >= 6 and len(logs) == 8
    # and the key was really used: without it the same study is refused
    p = subprocess.run([EXE, "compare", "x", "--model-a", "srv"], capture_output=True, text=True,
                       env=dict(env, LLM_JUDGE_SECRET="wrong"), timeout=60)
    assert p.returncode == 2 and "refused the API key" in p.stderr and "wrong" not in p.stderr
