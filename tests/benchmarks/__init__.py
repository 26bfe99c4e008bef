"""Benchmarks: acq's engine overhead beside bluesky's RunEngine.

Run ``python -m tests.benchmarks`` from the repository root (or ``nox -s bench``); see
``__main__.py`` for what is measured and ``--help`` for the options.
"""
