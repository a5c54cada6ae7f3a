"""Checks: parameters."""

from __future__ import annotations

