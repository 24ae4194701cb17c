"""``llm-judge finetune``: LoRA on a base model (the seed's recipe), GGUF adapters, optionally the
checkpoints judged against the base (``--then-study``).

Leaves out training, exporting and the checkpoint study's rules (``finetune``); torch is imported
only when the command runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import defaults
from ..errors import LLMJudgeError
from ..finetune.fast import TRAINERS
from .options import current_settings, db_option, json_option, open_store, verdict_format_option
from .output import ProgressBar, progress_bar


@click.command()
@click.argument("base", default=defaults.MODEL)
@click.option("--data", default="tiny-instructions", show_default=True,
              help="chat JSONL (ShareGPT/FineTome or OpenAI messages), hf:DATASET, or the built-in tiny-instructions")
@click.option("--out", "out_dir", required=True, help="run folder: checkpoints, adapters, log, loss curve (resumes here)")
@click.option("--recipe", "recipe_name", default="seed", show_default=True, help="seed or seed-overfit (the seed's third model)")
@click.option("--set", "overrides", multiple=True,
              help="override a recipe value: NAME=VALUE (repeatable), e.g. learning_rate=1e-4")
@click.option("--steps", type=int, default=60, show_default=True, help="optimizer steps")
@click.option("--save-steps", default=None,
              help="steps to keep as checkpoints, comma-separated; the last step always  [default: a third of "
                   "--steps and the last, as the seed's 2,000 vs 6,150]")
@click.option("--merge", type=click.Choice(["f16", "q8_0"]), default=None,
              help="also write each checkpoint merged into a full GGUF")
@click.option("--base-gguf", default=None, help="for an hf:OWNER/REPO transformers base: the GGUF of it that llama.cpp runs")
@click.option("--limit", type=int, default=None, help="train on the first N conversations only")
@click.option("--threads", type=int, default=None, help="CPU threads for training (default: PyTorch's choice)")
@click.option("--trainer", type=click.Choice(TRAINERS), default="auto", show_default=True,
              help="auto: Unsloth on a CUDA GPU where it is installed, else PEFT")
@click.option("--then-study", is_flag=True, help="then compare base and checkpoints with the judge (pairwise, both orders)")
@click.option("--judge", default=defaults.MODEL, show_default=True, help="judge of --then-study")
@click.option("--prompts", "source", default=defaults.PROMPT_SET, show_default=True, help="prompts of --then-study")
@click.option("--study-limit", type=int, default=None, help="only the first N prompts in --then-study")
@click.option("--max-tokens", type=int, default=256, show_default=True, help="answer length in --then-study")
@verdict_format_option("verdicts of --then-study: with reasons and scores, or the winner only (fast)")
@db_option
@json_option("print the result as JSON")
def finetune(base: str, data: str, out_dir: str, recipe_name: str, overrides: tuple[str, ...], steps: int,
             save_steps: str | None, merge: str | None, base_gguf: str | None, limit: int | None,
             threads: int | None, trainer: str, then_study: bool, judge: str, source: str, study_limit: int | None,
             max_tokens: int, verdict_format: str, db: str | None, as_json: bool) -> None:
    """Fine-tune BASE with LoRA (the seed's recipe), export GGUF adapters, and optionally judge the checkpoints."""
    from ..finetune import get_recipe, with_overrides
    from ..finetune.train import FinetuneConfig, require_extra

    require_extra()
    saves = _save_steps(save_steps, steps)
    cfg = FinetuneConfig(base=base, data=data, out=Path(out_dir), recipe=with_overrides(get_recipe(recipe_name), overrides),
                         max_steps=steps, save_steps=saves, base_gguf=base_gguf, merge=merge, threads=threads,
                         limit=limit, trainer=trainer, settings=current_settings()).check()
    if then_study:  # checked before hours of training, not after
        from ..finetune.study import checkpoint_config

        checkpoint_config(base, {"checkpoint": "adapter.gguf"}, judge, prompts=source, limit=study_limit,
                          max_tokens=max_tokens, verdict_format=verdict_format, settings=current_settings())
    result = _train(cfg, as_json)
    study = None
    if then_study:
        study = _checkpoint_study(result, judge, source, study_limit, max_tokens, verdict_format, db, as_json)
    if as_json:
        click.echo(json.dumps({**result, "study": study}, indent=2))


def _save_steps(save_steps: str | None, steps: int) -> list[int]:
    """``--save-steps 20,60`` as step numbers; a third of ``steps`` when not given."""
    try:
        return [int(x) for x in save_steps.split(",") if x.strip()] if save_steps else [max(1, steps // 3)]
    except ValueError:
        raise LLMJudgeError(f"--save-steps {save_steps!r}: write step numbers separated by commas, e.g. 20,60") from None


def _train(cfg: Any, as_json: bool) -> dict[str, Any]:
    """Train with a loss bar, then list the checkpoints as candidate specs (unless ``--json``)."""
    from ..finetune.train import finetune as train

    bar = progress_bar(as_json)
    say = (lambda text: None) if as_json else click.echo
    try:
        result: dict[str, Any] = train(cfg, progress=_loss_bar(bar), notify=say)
    finally:
        if bar:
            bar.stop()
    if not as_json:
        click.echo(f"checkpoints in {cfg.out} (log.jsonl, loss.svg); as candidates:")
        for name, path in result["checkpoints"].items():
            click.echo(f"  {name}: {result['base']}+lora:{path}")
    return result


def _loss_bar(bar: ProgressBar | None) -> Callable[[int, int, float | None], None] | None:
    """The training loop's progress (step, steps, loss) on ``bar``."""
    if bar is None:
        return None
    return lambda done, total, loss: bar.update(f"loss {loss:.3f}", done, total)


def _checkpoint_study(result: dict[str, Any], judge: str, source: str, limit: int | None, max_tokens: int,
                      verdict_format: str, db: str | None, as_json: bool) -> dict[str, Any]:
    """Judge the base against its checkpoints (pairwise, both orders) and show the progression."""
    from ..finetune.study import BASE_LABEL, checkpoint_config, progression
    from ..study import run_study, summarize

    config = checkpoint_config(result["base"], result["checkpoints"], judge, prompts=source, limit=limit,
                               max_tokens=max_tokens, verdict_format=verdict_format, settings=current_settings())
    store = open_store(db)
    bar = progress_bar(as_json)
    try:
        run_id = run_study(config, store, bar.update if bar else None, settings=current_settings())
    finally:
        if bar:
            bar.stop()
    steps = progression(summarize(store, run_id), [BASE_LABEL, *result["checkpoints"]])
    if not as_json:
        _print_progression(run_id, judge, steps)
    return {"run_id": run_id, "progression": [{**r, "win_rate": r["win_rate"].to_dict()} for r in steps]}


def _print_progression(run_id: str, judge: str, steps: list[dict[str, Any]]) -> None:
    from ..present.format import fmt_estimate, fmt_p

    click.echo(f"study {run_id} (llm-judge report {run_id} for everything); judge {judge}, both orders:")
    for row in steps:
        click.echo(f"  {row['later']} vs {row['earlier']}: win rate {fmt_estimate(row['win_rate'])} "
                   f"({row['wins']} wins, {row['losses']} losses, {row['ties']} ties, {row['unscored']} unscored; "
                   f"sign test p={fmt_p(row['sign_test_p'])})")
