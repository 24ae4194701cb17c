"""``python -m llm_judge ...``: the same command as ``llm-judge ...``."""

import sys

from .cli import main

sys.exit(main())
