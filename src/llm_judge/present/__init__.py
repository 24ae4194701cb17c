"""Showing results: ``format`` (numbers, intervals, verdict parts, tables) shared by ``terminal``
(rich), ``page`` (the web page's pure helpers) and ``report`` (HTML, Markdown, the tables)."""
