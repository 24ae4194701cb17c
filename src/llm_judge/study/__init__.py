"""Studies: many prompts x many candidates, judged, stored and summarised.

``run`` writes (jobs, cache keys, concurrency); ``loaded`` reads a stored run once into a
``LoadedRun``; ``summary`` computes its typed ``Summary`` and ``export`` its CSV, JSONL or verdict
files, both as pure functions of the loaded run.
"""

from .export import export_run, verdict_records
from .loaded import LoadedRun, load_run
from .run import MODES, StudyConfig, orient, run_study
from .summary import Summary, pair_rows, summarize, summarize_run

__all__ = ["MODES", "LoadedRun", "StudyConfig", "Summary", "export_run", "load_run", "orient", "pair_rows",
           "run_study", "summarize", "summarize_run", "verdict_records"]
