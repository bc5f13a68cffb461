"""Demos behind ``hecrypt demo [NAME]``.

A demo is a module ``hecrypt.demos.<name>`` exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int`` (exit status).  The default demo
(``hecrypt demo`` with no name) is ``xor``: the tutorial's run.
"""
