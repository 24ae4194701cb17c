"""A fine-tune run again in its folder (issue #23, point 6): it continues from what is on disk, lists
and judges the checkpoints that are there (never ones computed from --save-steps), and refuses, in
one line and without touching the folder, settings that contradict the ones stored.

One real interrupted run (2 of 3 steps, no checkpoint yet) is shared; each test works on a copy.
"""

import json
import shutil
from pathlib import Path

import pytest

from llm_judge.cli import main
from llm_judge.finetune.recipe import RECIPES, with_overrides
from tests.test_finetune import HAVE_EXTRA, SMOKE

CLI_SETTINGS = ["--limit", "8", *[a for s in SMOKE for a in ("--set", s)]]  # the fixture's run, as the command says it


def _cfg(out: Path, **changes):
    from llm_judge.finetune.train import FinetuneConfig

    settings = dict(base="embedded", data="tiny-instructions", out=out, recipe=with_overrides(RECIPES["seed"], SMOKE),
                    max_steps=3, save_steps=[], limit=8, state_every=1)
    return FinetuneConfig(**{**settings, **changes})


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A 3-step fine-tune of the built-in model stopped after step 2: its state is saved at step 2,
    and it has no checkpoint (only step 3 was to be kept)."""
    if not HAVE_EXTRA:
        pytest.skip("the finetune extra is not installed")
    from llm_judge.finetune.train import finetune

    out = tmp_path_factory.mktemp("ft") / "run"

    def stop(done, total, loss):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(_cfg(out), progress=stop, notify=lambda _: None)
    return out


@pytest.fixture
def run(interrupted, tmp_path) -> Path:
    shutil.copytree(interrupted, tmp_path / "run")
    return tmp_path / "run"


def _folder(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _one_error_line(capsys) -> str:
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_checkpoints_listed_are_the_files_on_disk(tmp_path):
    from llm_judge.finetune.train import saved_checkpoints

    for name in ("step-0001.gguf", "step-0003.gguf", "step-0003-f16.gguf", "step-0002.gguf.part", "step-12345.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    (tmp_path / "step-0004").mkdir()  # a PEFT folder whose GGUF adapter was never written
    (tmp_path / "step-0005.gguf").mkdir()
    assert saved_checkpoints(tmp_path, 20000) == {"step-0001": str(tmp_path / "step-0001.gguf"),
                                                  "step-0003": str(tmp_path / "step-0003.gguf"),
                                                  "step-12345": str(tmp_path / "step-12345.gguf")}
    assert list(saved_checkpoints(tmp_path, 2)) == ["step-0001"] and saved_checkpoints(tmp_path / "none", 9) == {}


@pytest.mark.model
def test_fewer_steps_than_the_folder_holds_is_refused_in_one_line_and_changes_nothing(run, capsys):
    kept = _folder(run)
    assert main(["finetune", "--out", str(run), "--steps", "1", *CLI_SETTINGS]) == 2
    assert _one_error_line(capsys) == f"error: {run} was trained to step 2; give --steps 2 or more, or a new --out"
    assert _folder(run) == kept


@pytest.mark.model
@pytest.mark.parametrize("change,stored,asked", [
    (["--set", "r=8"], "--set r=16", "--set r=8"),
    (["--set", "target_modules=q_proj"], "--set target_modules=" + ",".join(RECIPES["seed"].target_modules),
     "--set target_modules=q_proj"),
    (["--limit", "4"], "--limit 8", "--limit 4"),
    (["--data", "{data}"], "--data tiny-instructions", "--data {data}"),
    (["{base}"], "the base embedded", "the base {base}"),  # the same model file, named otherwise
])
def test_other_settings_are_refused_naming_the_stored_value(run, capsys, change, stored, asked):
    from llm_judge.backends.llamacpp import embedded_model_path

    data = run.parent / "data.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}))
    values = {"data": str(data), "base": f"gguf:{embedded_model_path()}"}
    kept = _folder(run)
    assert main(["finetune", "--out", str(run), "--steps", "3", *CLI_SETTINGS, *[a.format(**values) for a in change]]) == 2
    assert _one_error_line(capsys) == (f"error: {run} holds a fine-tune of other settings: it was trained with {stored}, "
                                       f"this run asks {asked.format(**values)}; give {stored} to continue it, or a new --out")
    assert _folder(run) == kept


@pytest.mark.model
def test_a_second_run_judges_the_checkpoints_on_disk_not_those_its_save_steps_name(run, capsys, tmp_path):
    """The issue's case: a later --save-steps names a step the folder went past without a checkpoint."""
    args = ["finetune", "--out", str(run), "--steps", "2", "--save-steps", "1", *CLI_SETTINGS, "--then-study",
            "--study-limit", "1", "--max-tokens", "8", "--verdict-format", "winner", "--db", str(tmp_path / "s.db")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"{run} is trained to step 2 already: nothing left to train" in text
    assert f"notice: no checkpoint of step 1: {run} was trained past it without one" in text
    assert "step-0001" not in text.replace("notice: no checkpoint of step 1", "")
    assert f"step-0002: embedded+lora:{run / 'step-0002.gguf'}" in text  # written from the state of step 2
    assert "step-0002 vs base: win rate" in text
    assert json.loads((run / "finetune.json").read_text())["max_steps"] == 2


@pytest.mark.model
def test_each_run_reports_what_is_on_disk_and_training_on_adds_to_it(run):
    import torch
    from safetensors.torch import load_file

    from llm_judge.finetune.train import finetune

    said: list[str] = []
    first = finetune(_cfg(run, max_steps=2, save_steps=[2]), notify=said.append)
    assert list(first["checkpoints"]) == ["step-0002"] and Path(first["checkpoints"]["step-0002"]).read_bytes()[:4] == b"GGUF"
    state = torch.load(run / "state" / "adapter.pt", weights_only=False)
    written = load_file(str(run / "step-0002" / "adapter_model.safetensors"))
    assert written.keys() == state.keys() and all(torch.equal(written[k], state[k]) for k in state)
    second = finetune(_cfg(run, max_steps=3, save_steps=[1]), notify=said.append)
    assert list(second["checkpoints"]) == ["step-0002", "step-0003"]
    assert all(Path(p).is_file() for p in second["checkpoints"].values())
    assert f"resuming {run} at step 2 of 3" in said and any(s.startswith("notice: no checkpoint of step 1") for s in said)
    assert [r["step"] for r in second["log"]] == [1, 2, 3]
