"""Checks: implementation."""

from __future__ import annotations

