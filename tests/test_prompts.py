import json

import pytest

from llm_judge import LLMJudgeError
from llm_judge.prompts import SEED_10, load_prompts

from .conftest import shared_file


def test_seed_10_is_the_seed_study():
    items = load_prompts("seed-10")
    assert [i.prompt for i in items] == SEED_10 and items[1].prompt.startswith("Explain how to bake")


def test_mt_bench_question_file():
    items = load_prompts(str(shared_file("data", "mt-bench", "question.jsonl")))
    assert len(items) == 80 and items[0].id == "81" and items[0].category == "writing"
    assert items[0].prompt.startswith("Compose an engaging travel blog post")


def test_jsonl_csv_text(tmp_path):
    (tmp_path / "p.jsonl").write_text(json.dumps({"id": "x", "prompt": "P?", "reference": "R", "category": "c"}) + "\n\n")
    assert load_prompts(str(tmp_path / "p.jsonl"))[0].reference == "R"
    (tmp_path / "p.csv").write_text('id,prompt,category\n1,"Hello, world?",greet\n')
    item = load_prompts(str(tmp_path / "p.csv"))[0]
    assert (item.id, item.prompt, item.category) == ("1", "Hello, world?", "greet")
    (tmp_path / "p.txt").write_text("one\n\ntwo\n")
    assert [i.prompt for i in load_prompts(str(tmp_path / "p.txt"))] == ["one", "two"]


def test_limit_and_sample():
    assert len(load_prompts("seed-10", limit=3)) == 3
    a = load_prompts("seed-10", sample=4, seed=7)
    assert a == load_prompts("seed-10", sample=4, seed=7) and len(a) == 4
    assert a != load_prompts("seed-10", sample=4, seed=8)


@pytest.mark.parametrize("name,content,needle", [
    ("bad.jsonl", '{"prompt": "ok"}\n{"prompt": \n', "bad.jsonl line 2: not valid JSON"),
    ("dup.jsonl", '{"id": "1", "prompt": "a"}\n{"id": "1", "prompt": "b"}\n', "id '1' appears twice"),
    ("nop.jsonl", '{"id": "1", "text": "a"}\n', 'line 1: no "prompt" text'),
    ("nohead.csv", "a,b\n1,2\n", "needs a header with a 'prompt' column"),
    ("empty.txt", "\n\n", "holds no prompts"),
])
def test_bad_prompt_files(tmp_path, name, content, needle):
    (tmp_path / name).write_text(content)
    with pytest.raises(LLMJudgeError, match=needle):
        load_prompts(str(tmp_path / name))


def test_invalid_utf8_names_the_line(tmp_path):
    (tmp_path / "p.txt").write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(LLMJudgeError, match="line 2: not UTF-8"):
        load_prompts(str(tmp_path / "p.txt"))


def test_missing_file():
    with pytest.raises(LLMJudgeError, match="prompt set not found"):
        load_prompts("/no/such/file.jsonl")


def test_mt_bench_references_merge_by_question_id(tmp_path, capsys):
    from llm_judge.cli import main
    from llm_judge.prompts import read_references, with_references
    from llm_judge.store import Store
    from llm_judge.testing import fake

    from .conftest import shared_file

    questions = shared_file("data", "mt-bench", "question.jsonl")
    refs = read_references(shared_file("data", "mt-bench", "reference_answer", "gpt-4.jsonl"))
    assert len(refs) == 30 and refs["101"][0].startswith("If you have just overtaken the second person")
    items = with_references(load_prompts(str(questions)), refs)
    assert all(next(i for i in items if i.id == qid).reference == texts[0] for qid, texts in refs.items())
    # through a study: the judge sees the reference for those items only, and the report says which
    seen = []
    fake.named("a").responder = lambda m, s, sch: "an answer from a"
    fake.named("b").responder = lambda m, s, sch: "an answer from b"
    fake.named("j").responder = lambda m, s, sch: (seen.append("A reference answer" in m[-1]["content"]) or
                                                   json.dumps({"justification": "ok", "scores": {
                                                       n: 3 for n in sch["properties"]["scores"]["properties"]}}))
    db = str(tmp_path / "s.db")
    args = ["run", "--prompts", str(questions), "--references", str(shared_file("data", "mt-bench", "reference_answer",
                                                                             "gpt-4.jsonl")),
            "--sample", "12", "--sample-seed", "3", "--candidate", "fake:a", "--candidate", "fake:b",
            "--judge", "fake:j", "--db", db, "--json"]
    assert main(args) == 0
    s = json.loads(capsys.readouterr().out)
    with_ref = [p for p in Store(db).prompts(s["run_id"]) if p["reference"]]
    # MT-Bench's references cover both turns: each such prompt is judged against one at each turn
    assert s["with_reference"] == len(with_ref) > 0 and sum(seen) == 2 * 2 * len(with_ref)


def test_a_reference_file_for_another_set_is_refused(tmp_path):
    from llm_judge.prompts import read_references, with_references

    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "zzz", "reference": "x"}\n')
    with pytest.raises(LLMJudgeError, match="no reference matches a prompt id"):
        with_references(load_prompts("seed-10"), read_references(path))
    path.write_text('{"question_id": 1}\n')
    with pytest.raises(LLMJudgeError, match="no reference text"):
        read_references(path)


def test_references_match_the_whole_set_before_a_sample_is_taken(tmp_path, capsys):
    from llm_judge.cli import main
    from llm_judge.testing import fake

    from .conftest import shared_file

    fake.named("j").responder = lambda m, s, sch: json.dumps({"justification": "ok", "scores": {
        n: 3 for n in sch["properties"]["scores"]["properties"]}})
    args = ["run", "--prompts", str(shared_file("data", "mt-bench", "question.jsonl")), "--references",
            str(shared_file("data", "mt-bench", "reference_answer", "gpt-4.jsonl")), "--limit", "2",  # no math item
            "--candidate", "fake:a", "--candidate", "fake:b", "--judge", "fake:j", "--db", str(tmp_path / "s.db"),
            "--json"]
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["with_reference"] == 0
