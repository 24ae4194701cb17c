"""The defaults that more than one module states: the context size of local models, the judge's
criteria, scale and answer length, the bootstrap's resamples, the built-in prompt set and model.

Every module (library, CLI, page) takes these from here, so a default changes in one line. This
module imports nothing from the package (it is the bottom of the layering) and leaves out what only
one module uses (a backend's own options, the page's limits, a recipe's other hyperparameters).
Values are ints and strings on purpose: ``StudyConfig.to_dict()`` stores them as they are.

    >>> N_CTX, CRITERIA_TEXT, SCALE
    (2048, 'Relevance,Coherence,Completeness', '1-4')
"""

from __future__ import annotations

from typing import Final

N_CTX: Final = 2048
"""Context size of local models (tokens): the prompt, both answers and the verdict must fit."""

CRITERIA: Final = ("Relevance", "Coherence", "Completeness")
"""The criteria a judge rates when none are named (names from the catalogue in ``criteria``)."""

CRITERIA_TEXT: Final = ",".join(CRITERIA)
"""The same criteria as the command line writes them."""

SCALE: Final = "1-4"
"""The rating scale, LOW-HIGH."""

JUDGE_MAX_TOKENS: Final = 512
"""Most tokens a judge writes for one verdict."""

ANSWER_MAX_TOKENS: Final = 512
"""Most tokens a candidate writes for one answer."""

BOOTSTRAP: Final = 1000
"""Bootstrap resamples behind every interval."""

PROMPT_SET: Final = "seed-10"
"""The built-in prompt set of studies."""

MODEL: Final = "embedded"
"""The built-in model: the candidates' and the judge's spec when none is named."""

PAGE_CONCURRENCY: Final = 8
"""Requests the page handles at once."""

TRAIN_MAX_SEQ_LENGTH: Final = 2048
"""Longest training sequence of the seed's fine-tuning recipe (tokens); not the context size."""
