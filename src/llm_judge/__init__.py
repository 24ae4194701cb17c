"""llm-judge: compare language models by letting another model judge their answers.

The public API; tests, benchmarks and the docs import from here. The module map is in
docs/architecture.md.
"""

from importlib.metadata import version as _version

from .analyze import analyze, read_verdicts
from .backends import Backend, Completion, check_model, get_backend
from .compare import Candidate, ComparisonResult, candidates_by_label, compare
from .config import Settings
from .criteria import CATALOGUE, Criterion, Scale, parse_criteria, parse_scale
from .errors import LLMJudgeError
from .judging import Judge, JudgeCall, JudgeSetup, judge_pairwise, load_judge
from .prompts import PromptItem, load_prompts
from .records import Grade, Label, Order, Shown, Verdict, Winner
from .sampling import JUDGE_DEFAULT, PRESETS, SamplingParams, make_sampling
from .store import Store
from .study import StudyConfig, Summary, export_run, run_study, summarize, verdict_records
from .study.loaded import LoadedRun, load_run
from .study.summary import summarize_run

__version__ = _version("llm-judge")
__all__ = ["analyze", "read_verdicts", "Backend", "Completion", "check_model", "get_backend", "Candidate",
           "ComparisonResult", "candidates_by_label", "compare", "CATALOGUE", "Criterion", "Scale", "parse_criteria",
           "parse_scale", "LLMJudgeError", "Judge", "JudgeCall", "JudgeSetup", "judge_pairwise",
           "load_judge", "PromptItem", "load_prompts",
           "JUDGE_DEFAULT", "PRESETS", "SamplingParams", "make_sampling", "Store", "StudyConfig", "Summary",
           "export_run", "run_study", "summarize", "verdict_records", "Settings", "Grade", "Label", "Order", "Shown",
           "Verdict", "Winner", "LoadedRun", "load_run", "summarize_run"]
