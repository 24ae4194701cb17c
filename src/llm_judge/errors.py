"""The one exception users see: a problem they can fix, said in one line."""


class LLMJudgeError(Exception):
    """Bad input or an unusable model: the message names the problem and, where known, the fix.

    The CLI prints it as one line and exits with code 2; the UI shows it as a message.
    """
