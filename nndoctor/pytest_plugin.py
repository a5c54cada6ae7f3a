"""nndoctor's pytest plugin, registered through the ``pytest11`` entry point.

Installing nndoctor makes it active in every pytest run of that environment; there
is nothing to import or list in ``conftest.py``. It adds:

- the fixture ``doctor``: ``doctor(model, data, loss_fn, optimizer, **options)`` (or
  ``doctor(subject)``) runs :func:`nndoctor.check_subject` and returns the Report;
  when the test then fails, every report it produced is printed in an
  ``nndoctor`` section under the failure;
- the fixture ``seeded_rng``: the torch, numpy and ``random`` generators seeded with
  the session seed for the test and restored afterwards; its value is a
  ``torch.Generator`` seeded the same way;
- the option ``--nndoctor-seed N`` (default 0), the seed of both fixtures, shown in
  the report header so a failure can be reproduced.

The assertions live in :mod:`nndoctor.testing` and need no plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from typing import Any

import pytest

_REPORTS = pytest.StashKey[list[Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nndoctor", "nndoctor (training doctor for PyTorch)")
    group.addoption(
        "--nndoctor-seed",
        action="store",
        type=int,
        default=0,
        dest="nndoctor_seed",
        metavar="N",
        help="seed of the nndoctor fixtures (doctor, seeded_rng); default 0.",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return (
        f"nndoctor {_version('nndoctor')} (torch {_version('torch')}): "
        f"--nndoctor-seed={config.getoption('nndoctor_seed')}"
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


@pytest.fixture(scope="session")
def nndoctor_seed(pytestconfig: pytest.Config) -> int:
    """The session's seed (``--nndoctor-seed``)."""
    return int(pytestconfig.getoption("nndoctor_seed"))


@pytest.fixture
def seeded_rng(nndoctor_seed: int) -> Iterator[Any]:
    """torch, numpy and ``random`` seeded for this test, their states restored afterwards.

    The value is a ``torch.Generator`` seeded with the same seed, for code that takes one.
    """
    import torch

    from nndoctor.engine import preserved_rng

    with preserved_rng(nndoctor_seed):
        yield torch.Generator().manual_seed(nndoctor_seed)


class Doctor:
    """The ``doctor`` fixture's value: call it to check a model or a Subject."""

    def __init__(self, seed: int, reports: list[Any]) -> None:
        self.seed = seed
        self.reports = reports

    def __call__(
        self,
        model: Any,
        data: Any = None,
        loss_fn: Any = None,
        optimizer: Any = None,
        *,
        task: Any = None,
        steps: int = 20,
        select: Any = (),
        ignore: Any = (),
        quick: bool = False,
        thresholds: Any = None,
        inputs: Any = None,
        targets: Any = None,
    ) -> Any:
        """Check ``model`` trained on ``data`` with ``loss_fn`` (or a Subject); returns the Report."""
        from nndoctor.config import validate_checks
        from nndoctor.engine import Selection, check_subject
        from nndoctor.subject import Subject
        from nndoctor.testing import subject_of

        if isinstance(model, Subject):
            subject = model
        else:
            if data is None or loss_fn is None:
                raise TypeError(
                    "doctor(model, data, loss_fn, ...) needs data and a loss, or a Subject"
                )
            subject = subject_of(
                model, data, loss_fn, optimizer, task=task, inputs=inputs, targets=targets
            )
        chosen, ignored = tuple(map(str, select)), tuple(map(str, ignore))
        validate_checks(chosen, "select")
        validate_checks(ignored, "ignore")
        selection = Selection(chosen, ignored, quick)
        report = check_subject(
            subject, steps=steps, selection=selection, thresholds=thresholds, seed=self.seed
        )
        self.reports.append(report)
        return report


@pytest.fixture
def doctor(request: pytest.FixtureRequest, nndoctor_seed: int) -> Doctor:
    """Run nndoctor's checks on a model (or a Subject) and get the Report back."""
    reports: list[Any] = []
    request.node.stash[_REPORTS] = reports
    return Doctor(nndoctor_seed, reports)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    reports = item.stash.get(_REPORTS, None)
    if reports and report.when == "call" and report.failed:
        report.sections.append(("nndoctor", "\n\n".join(_summary(r) for r in reports)))


def _summary(report: Any) -> str:
    from nndoctor.testing import format_finding

    n = report.counts()
    lines = [
        f"nndoctor checked {report.run.target}: {n['errors']} error(s), {n['warnings']} "
        f"warning(s), {n['infos']} note(s) · checks: {n['passed']} passed, {n['failed']} "
        f"failed, {n['skipped']} skipped, {n['crashed']} crashed"
    ]
    lines += [format_finding(f) for f in report.findings]
    return "\n".join(lines)
