"""llm-judge: compare language models by letting another model judge their answers."""

from .compare import Candidate, ComparisonResult, compare
from .criteria import CATALOGUE, Criterion, Scale, parse_criteria
from .errors import LLMJudgeError
from .sampling import PRESETS, SamplingParams, make_sampling

__version__ = "0.1.0"
__all__ = ["compare", "Candidate", "ComparisonResult", "CATALOGUE", "Criterion", "Scale",
           "parse_criteria", "LLMJudgeError", "PRESETS", "SamplingParams", "make_sampling"]
