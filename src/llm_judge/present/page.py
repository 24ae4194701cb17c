"""Pure functions that turn page input into library calls and library results into what the page
shows, over ``present.format``: what a public page allows of the specs visitors type (the
operator's policy; each backend judges its own specs by it), the bounds of a page's study
(``StudyLimits``), the views of verdicts and votes. No Gradio here, so all of it is unit-tested
without a browser; the page's runs and the key's destinations are decided in the store and the
openai backend."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import PublicPolicy, public_refusal
from ..config import Settings, resolve
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
                       allow_fake: bool = False, allow_downloads: bool = False,
                       settings: Settings | None = None) -> None:
    """On a server reachable beyond localhost, visitors may not open arbitrary files or URLs.

    Decided on the parsed spec (prefix, base, add-ons), never on its text: a model the operator
    named in the config file is allowed; any other is judged by its backend's ``public_check``
    against the operator's ``PublicPolicy`` (local files inside an allowed directory, a ``+lora:``
    adapter among them; server URLs only of the config file's models; the scripted ``fake:``
    models and ``hf:`` downloads only with ``--allow-fake`` and ``--allow-downloads``), and a kind
    of model whose backend has no ``public_check`` is off.
    """
    if not public:
        return
    real = resolve(spec, settings)[0]
    if real in configured:
        return  # the operator's own model
    policy = PublicPolicy(tuple(allowed_dirs), frozenset(configured), allow_fake, allow_downloads)
    reason = public_refusal(real, policy, settings)
    if reason:
        raise LLMJudgeError(reason)


@dataclass(frozen=True)
class StudyLimits:
    """What one study started from the page may ask for: the bytes of an uploaded prompt file,
    the prompts and the candidates. Each is refused in one line."""

    upload_bytes: int = 1_000_000
    prompts: int = 100
    candidates: int = 4

    def check_upload(self, path: str | None) -> None:
        try:
            size = os.path.getsize(path) if path else 0
        except OSError:
            return  # reading it says what is wrong
        if size > self.upload_bytes:
            raise LLMJudgeError(f"the uploaded file has {size:,} bytes: this page takes prompt files of up to "
                                f"{self.upload_bytes:,} bytes")

    def check_counts(self, prompts: int, candidates: int) -> None:
        if prompts > self.prompts:
            raise LLMJudgeError(f"this page runs up to {self.prompts} prompts per study ({prompts} given): "
                                f"give at most {self.prompts} under “Only the first N prompts”")
        if candidates > self.candidates:
            raise LLMJudgeError(f"this page runs up to {self.candidates} candidates per study ({candidates} given): "
                                "remove some")


def protocol_choices() -> list[str]:
    """The protocols a page offers: llm-judge's own first, the judge's tuned one ("auto"), then
    every bundled one and family."""
    from ..protocols import bundled

    return [OWN_PROTOCOL, AUTO_PROTOCOL, *(n for n in bundled() if n != OWN_PROTOCOL)]


def chosen_protocol(text: str | None, *, public: bool) -> str | None:
    """The protocol a visitor chose, for ``compare(protocol=...)``: None for llm-judge's own. A
    public page takes only the bundled names (a path would open a file of the server's); a local
    page also takes a protocol folder of the operator's."""
    from ..protocols import bundled

    name = (text or "").strip()
    if name in ("", OWN_PROTOCOL):
        return None
    if public and name not in bundled() and name != AUTO_PROTOCOL:
        raise LLMJudgeError(f"protocol {name[:80]!r} is not offered here: choose one from the list "
                            "(a protocol of your own is taken on a local page only)")
    return name


OWN_PROTOCOL = "llm-judge"
AUTO_PROTOCOL = "auto"  # the judge's tuned profile (``llm-judge judges tune``)


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
    text = (f"{result['votes']} votes (one per visitor and pair) on {result['voted_pairs']} pairs, "
            f"{result['judged_votes']} of them rated by the judge.")
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


def run_choice(row: Any) -> tuple[str, str]:
    """A stored run as the Study tab lists it: its id, status as ``runs`` shows it (``partial`` for
    a sharded run with shards missing), prompts and candidates; and its id.

    >>> run_choice({"id": "r1", "status": "done", "manifest": '{"shards": {"of": 2, "done": [1]}}',
    ...             "n_prompts": 3, "n_candidates": 2})
    ('r1 · partial · 3 prompts x 2', 'r1')
    """
    import json

    from ..study.shard import shown_status

    status = shown_status(row["status"], json.loads(row["manifest"] or "{}"))
    return f"{row['id']} · {status} · {row['n_prompts']} prompts x {row['n_candidates']}", row["id"]
