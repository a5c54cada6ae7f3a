"""Checks: normalization."""

from __future__ import annotations

