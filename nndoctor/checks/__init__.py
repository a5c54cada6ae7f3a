"""Checks: read a Subject and a Recording, yield Findings. Never install hooks.

How to write one (the registry, the docstring headings, the context, the tests):
docs/writing-checks.md in the repository.
"""
