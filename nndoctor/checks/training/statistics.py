"""Checks: statistics."""

from __future__ import annotations

