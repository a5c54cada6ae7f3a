"""Shared fixtures and markers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

pytest_plugins = ("parallel",)  # pytest --processes N


def _break_check_for_meta_tests() -> None:
    """tests/test_marks.py runs single tests in a subprocess with one check broken on purpose:
    NNDOCTOR_TEST_NO_FINDINGS=ID drops every finding of ID (its fire condition removed),
    NNDOCTOR_TEST_SKIP=ID makes ID skip (it never runs)."""
    silenced, skipped = (
        os.environ.get("NNDOCTOR_TEST_NO_FINDINGS"),
        os.environ.get("NNDOCTOR_TEST_SKIP"),
    )
    if not (silenced or skipped):
        return
    from nndoctor.checks.registry import CheckContext, get_check

    finding = CheckContext.finding

    def no_finding(self: CheckContext, *args: Any, **kwargs: Any) -> Any:
        return None if self.spec.id == silenced else finding(self, *args, **kwargs)

    def skip(ctx: CheckContext) -> None:
        ctx.skip("skipped on purpose by a meta test")

    CheckContext.finding = no_finding  # type: ignore[method-assign]
    if skipped:
        object.__setattr__(get_check(skipped), "func", skip)  # the registry's spec is frozen


def pytest_configure(config: pytest.Config) -> None:
    _break_check_for_meta_tests()
    # fires(ID) / silent(ID) tag the tests that prove a check fires on a real bug and
    # stays silent on a healthy subject; tests/checks/test_registry.py holds every check to it.
    config.addinivalue_line(
        "markers", "fires(check_id): the test injects a bug that this check must report"
    )
    config.addinivalue_line(
        "markers", "silent(check_id): the test shows this check silent on a healthy subject"
    )


@pytest.fixture(scope="session", autouse=True)
def _one_replay_server_per_session() -> Iterator[Any]:
    """Every check run of the session forks its replays from one server, started now.

    A check run opens a server of its own, and its start (torch and ``torch._dynamo``
    imported) costs seconds: over the many check runs of the suite that is minutes. The
    server runs none of the scripts, and each replay takes the caller's environment at
    the time of the request, so a shared one records what a server per run would
    (``tests/capture/test_replay.py`` tests the server itself, each with one of its own).
    Started before any test, so that its folder lives in no test's private temp dir.
    """
    from nndoctor import engine
    from nndoctor.capture.replay import ReplayServer

    servers = [ReplayServer()]
    servers[0].start()

    class Lent:
        """What ``with ReplayServer() as s`` gets in the engine: the shared server (a new
        one should a test have broken it), left running on leaving the block."""

        def __enter__(self) -> ReplayServer:
            if not servers[-1].usable:
                servers.append(ReplayServer())
            return servers[-1]

        def __exit__(self, *exc: object) -> None:
            return None

    patch = pytest.MonkeyPatch()
    patch.setattr(engine, "ReplayServer", Lent)
    try:
        yield Lent()
    finally:
        patch.undo()
        for server in servers:
            server.close()


@pytest.fixture
def replay_server(_one_replay_server_per_session: Any) -> Any:
    """The session's shared replay server, for tests that call ``run_replay`` themselves
    and do not stop the server (starting one costs an interpreter's start)."""
    with _one_replay_server_per_session as server:
        return server


@pytest.fixture(autouse=True)
def _marked_outcomes_hold(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A test marked fires(ID) or silent(ID) is held to what the mark claims, whatever its
    own assertions say: every check run during the test is recorded, and afterwards
    fires(ID) needs a finding of ID, silent(ID) needs ID to have run (passed, not skipped
    or crashed) with no warning or error. A check that never ran is not silent."""
    marks = [
        (m.name, m.args[0]) for m in request.node.iter_markers() if m.name in ("fires", "silent")
    ]
    if not marks:
        yield
        return
    from nndoctor import engine

    seen: list[tuple[list[Any], list[Any]]] = []
    original = engine._run_each

    def recording_run_each(*args: Any) -> None:
        original(*args)
        seen.append((args[-2], args[-1]))  # (results, findings), filled in place

    monkeypatch.setattr(engine, "_run_each", recording_run_each)
    yield
    for kind, check in marks:
        findings = [f for _, fs in seen for f in fs if f.check == check]
        statuses = [r.status.value for rs, _ in seen for r in rs if r.check == check]
        if kind == "fires":
            assert findings, (
                f"marked fires({check!r}) but no run in the test reported it (ran: {statuses})"
            )
        else:
            assert "passed" in statuses, (
                f"marked silent({check!r}) but it never ran and passed (statuses: {statuses})"
            )
            loud = [f.title for f in findings if f.severity.value != "info"]
            assert not loud, f"marked silent({check!r}) but it reported {loud}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
