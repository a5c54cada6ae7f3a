"""Checks: read a Subject and a Recording, yield Findings. Never install hooks."""
