"""``llm-judge ui``: starts the Gradio page (Compare, Study, Vote) with the limits of a public page.

Leaves out the page itself (``ui``, ``present.page``); gradio is imported only when it starts.
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import defaults
from ..errors import LLMJudgeError
from .options import current_settings, db_option, n_ctx_option


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=int, default=7860, show_default=True)
@click.option("--auth", default=None, envvar="LLM_JUDGE_UI_AUTH", help="USER:PASSWORD login (or $LLM_JUDGE_UI_AUTH)")
@click.option("--allow-dir", "allow_dirs", multiple=True,
              help="directory whose GGUF files visitors may load when listening beyond localhost (repeatable)")
@click.option("--allow-fake", is_flag=True, help="beyond localhost, let visitors use the scripted fake: models")
@click.option("--allow-downloads", is_flag=True, help="beyond localhost, let visitors download hf: models")
@click.option("--show-all-runs", is_flag=True,
              help="beyond localhost, list every stored run (the command line's too), not only the page's own")
@click.option("--max-upload-bytes", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="largest prompt file a visitor may upload for a study")
@click.option("--max-prompts", type=click.IntRange(1), default=100, show_default=True,
              help="most prompts in a study started from the page")
@click.option("--max-candidates", type=click.IntRange(1), default=4, show_default=True,
              help="most candidates in a study started from the page")
@click.option("--max-criteria", type=int, default=3, show_default=True)
@n_ctx_option()
@click.option("--concurrency", type=int, default=defaults.PAGE_CONCURRENCY, show_default=True,
              help="requests handled at once (a local model on the server engine serves 8 at once by default)")
@db_option
def ui(host: str, port: int, auth: str | None, allow_dirs: tuple[str, ...], allow_fake: bool, allow_downloads: bool,
       show_all_runs: bool, max_upload_bytes: int, max_prompts: int, max_candidates: int, max_criteria: int,
       n_ctx: int, concurrency: int, db: str | None) -> None:
    """Open the web page: compare, run studies, vote (http://127.0.0.1:7860)."""
    try:
        from ..present.page import StudyLimits
        from ..ui import launch
    except ImportError as exc:
        raise LLMJudgeError(f"the web page needs gradio ({exc.name} is missing): pip install 'llm-judge[ui]'") from None
    login = _login(auth)
    if max_criteria < 1:
        raise LLMJudgeError("--max-criteria must be at least 1")
    click.echo(f"llm-judge page on http://{host}:{port} (Ctrl-C stops it)", err=True)
    launch(host=host, port=port, auth=login, allowed_dirs=[Path(d) for d in allow_dirs], max_criteria=max_criteria,
           db=db, n_ctx=n_ctx, concurrency=concurrency, allow_fake=allow_fake, allow_downloads=allow_downloads,
           show_all_runs=show_all_runs, limits=StudyLimits(max_upload_bytes, max_prompts, max_candidates),
           settings=current_settings())


def _login(auth: str | None) -> tuple[str, str] | None:
    """``--auth USER:PASSWORD`` as the page's login."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise LLMJudgeError("--auth takes USER:PASSWORD")
    return user, password
