"""``python -m llm_judge.cli ...``: the same command as ``llm-judge ...``."""

import sys

from . import main

sys.exit(main())
