"""Checks: shuffling."""

from __future__ import annotations

