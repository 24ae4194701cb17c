"""What llm-judge's own tests use, shipped so that users can test their set-ups the same way:
``server`` (an OpenAI-compatible server with fault injection: ``python -m llm_judge.testing.server``),
``attacks`` (hostile candidate answers) and ``fake`` (the scripted ``fake:`` backend, for dry runs).
Nothing in the rest of the package imports this one.
"""
