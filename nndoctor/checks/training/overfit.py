"""Checks: overfit."""

from __future__ import annotations

