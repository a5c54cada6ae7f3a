"""Shared fixtures and markers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


def pytest_configure(config: pytest.Config) -> None:
    # fires(ID) / silent(ID) tag the tests that prove a check fires on a real bug and
    # stays silent on a healthy subject; tests/checks/test_registry.py holds every check to it.
    config.addinivalue_line("markers", "fires(check_id): the test injects a bug that this check must report")
    config.addinivalue_line("markers", "silent(check_id): the test shows this check silent on a healthy subject")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
