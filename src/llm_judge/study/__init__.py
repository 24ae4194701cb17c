"""Studies: many prompts x many candidates, judged, stored and summarised.

``run`` writes (jobs, cache keys, concurrency), ``summary`` reads a run back as one typed
``Summary``, ``export`` writes a run as CSV, JSONL or verdict files.
"""

from .export import export_run, verdict_records
from .run import MODES, StudyConfig, orient, run_study
from .summary import Summary, pair_rows, summarize

__all__ = ["MODES", "StudyConfig", "Summary", "export_run", "orient", "pair_rows", "run_study", "summarize",
           "verdict_records"]
