"""The one exception users see: a problem they can fix, said in one line."""


class LLMJudgeError(Exception):
    """Bad input or an unusable model: the message names the problem and, where known, the fix.

    The CLI prints it as one line and exits with code 2; the UI shows it as a message.
    ``fatal`` marks errors that retrying or moving on to the next item cannot fix (a refused key,
    an unknown model): a study stops on them instead of storing the same failure for every item.
    """

    fatal = False


class Deferred(Exception):  # noqa: N818 (not an error: a call whose answer comes later)
    """A call put in a batch instead of being made now (``run --batch``): its answer comes with
    the batch, and the job that made it runs again then. Not an ``LLMJudgeError``, so that no
    judge or study stores it as a failure; the runner hands it back as the call's result."""

    def __init__(self, custom_id: str) -> None:
        super().__init__(f"request {custom_id} waits for its batch")
        self.custom_id = custom_id
