"""Checks: sanity."""

from __future__ import annotations

