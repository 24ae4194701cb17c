"""Pure functions that turn page input into library calls and library results into what the page
shows, over ``present.format``. No Gradio here, so all of it is unit-tested without a browser."""

from __future__ import annotations

import os
from pathlib import Path

from ..criteria import CATALOGUE
from ..errors import LLMJudgeError
from .format import html_table, score_rows, verdict_parts


def normalise_spec(text: str) -> str:
    """A model spec from what a visitor typed, the Space's repo + file naming included.

    >>> normalise_spec("forestav/LoRA-2000 unsloth.F16.gguf")
    'hf:forestav/LoRA-2000/unsloth.F16.gguf'
    >>> normalise_spec("forestav/LoRA-2000/unsloth.F16.gguf"), normalise_spec(" embedded ")
    ('hf:forestav/LoRA-2000/unsloth.F16.gguf', 'embedded')
    """
    text = (text or "").strip()
    if not text:
        raise LLMJudgeError("a model is empty: give a spec such as embedded, or a repo and a file name")
    parts = text.split()
    if len(parts) == 2 and ":" not in parts[0]:
        repo, file = parts
        return f"hf:{repo.strip('/')}/{file}"
    if ":" not in text and text.lower().endswith(".gguf") and text.count("/") >= 2:
        return f"hf:{text}"
    return text


def check_spec_allowed(spec: str, *, public: bool, allowed_dirs: list[Path], configured: set[str],
                       allow_fake: bool = False, allow_downloads: bool = False) -> None:
    """On a server reachable beyond localhost, visitors may not open arbitrary files or URLs.

    Local GGUF files must lie inside an allowed directory; server URLs must be names from the
    operator's config file (so no visitor can make the server call an address of their choice);
    the scripted ``fake:`` models (no real answers) and ``hf:`` downloads (gigabytes onto the
    server's disk) need the operator's ``--allow-fake`` and ``--allow-downloads``.
    """
    if not public:
        return
    spec, _, adapter = spec.partition("+lora:")  # a fine-tuned adapter is a local file like a model
    if spec.startswith("fake:") and not allow_fake:
        raise LLMJudgeError("scripted fake: models are off on this server (the operator can allow them with --allow-fake)")
    if spec.startswith("hf:") and not allow_downloads and not hf_cached(spec[3:]):
        raise LLMJudgeError("downloading models is off on this server: use a model it already has (the operator can "
                            "allow downloads with --allow-downloads)")
    files = ([spec[5:]] if spec.startswith("gguf:") else []) + ([adapter] if adapter else [])
    roots = [Path(os.path.realpath(d)) for d in allowed_dirs]
    for file in files:
        path = Path(os.path.realpath(Path(file).expanduser()))
        if not any(path == r or r in path.parents for r in roots):
            raise LLMJudgeError("local model files are restricted on this server: use a file inside "
                                + (", ".join(map(str, roots)) if roots else "an allowed directory (none is allowed)"))
    if spec.startswith("openai:") and spec not in configured:
        raise LLMJudgeError("server URLs are restricted on this server: use a model name the operator configured")


def hf_cached(rest: str) -> bool:
    """Whether ``hf:OWNER/REPO/FILE`` is already in the Hugging Face cache (no network)."""
    parts = rest.strip("/").split("/")
    if len(parts) < 3:
        return False
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache("/".join(parts[:2]), "/".join(parts[2:]))
    return isinstance(found, str)


def optional_number(text, name: str, kind=float):
    """A number typed in an optional field: blank is None, anything else must parse.

    >>> optional_number(" ", "temperature"), optional_number("0.7", "temperature"), optional_number("3", "n", int)
    (None, 0.7, 3)
    """
    if text is None or str(text).strip() == "":
        return None
    try:
        return kind(str(text).strip())
    except ValueError:
        raise LLMJudgeError(f"{name} must be a {'whole ' if kind is int else ''}number, not {text!r}") from None


def selected_criteria(chosen: list[str] | None, custom: str | None, maximum: int) -> list[str]:
    """Checkbox choices plus ``name=description`` lines, at most ``maximum`` in all."""
    items = list(chosen or []) + [line.strip() for line in (custom or "").splitlines() if line.strip()]
    if not items:
        raise LLMJudgeError("select at least one criterion")
    if len(items) > maximum:
        raise LLMJudgeError(f"select up to {maximum} criteria ({len(items)} selected)")
    return items


def verdict_rows(result: dict) -> list[list]:
    """Criteria x (A, B), then the totals; '-' where unscored."""
    return score_rows(result)


MARKDOWN = {"winner-none": "**{}**", "winner-tie": "**{}**", "winner": "**{}**", "agreement": "{}", "weighted": "{}",
            "juror": "- {}", "justification": "- {}", "warning": "> {}"}


def verdict_markdown(result: dict) -> str:
    """Winner, agreement of the two orders, the judge's reasons and the warnings."""
    return "\n\n".join(MARKDOWN[kind].format(text) for kind, text in verdict_parts(result))


def agreement_markdown(result: dict) -> str:
    """The votes so far and the judge's agreement with them."""
    if not result["votes"]:
        return "No votes yet."
    text = f"{result['votes']} votes, {result['judged_votes']} on pairs the judge rated."
    ha = (result.get("analysis") or {}).get("human_agreement")
    if ha:
        b = ha["with_ties"]
        acc = b["verdict"]["accuracy"]
        kappa = b["verdict"]["kappa"]
        text += f" Judge agrees with you on {acc:.0%} of them" + (f" (Cohen's kappa {kappa:.2f})." if kappa is not None
                                                                  else ".")
        both = b["both_orders_correct"]
        if both["items"]:
            text += f" Both orders agreed with you on {both['rate']:.0%} of {both['items']}."
    return text


def tables_html(tables: list[tuple[str, list[str], list[list[str]]]]) -> str:
    return "".join(html_table(title, header, rows, level=3) for title, header, rows in tables)


CRITERIA_CHOICES = list(CATALOGUE)
