"""Checks: nan."""

from __future__ import annotations

