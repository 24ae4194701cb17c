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
