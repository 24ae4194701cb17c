"""The one exception users see: a problem they can fix, said in one line."""


class LLMJudgeError(Exception):
    """Bad input or an unusable model: the message names the problem and, where known, the fix.

    The CLI prints it as one line and exits with code 2; the UI shows it as a message.
    ``fatal`` marks errors that retrying or moving on to the next item cannot fix (a refused key,
    an unknown model): a study stops on them instead of storing the same failure for every item.
    """

    fatal = False
