"""Hyperparameters outside their common ranges (reason 29)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from subjects import blobs, healthy_classifier, mlp, run
from torch import nn

from nndoctor.checks.lab import Lab
from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS
from nndoctor.checks.training.hyperparameters import group_problems
from nndoctor.engine import Selection, run_checks
from nndoctor.probes.recording import Recording
from nndoctor.probes.training import TrainingProbe

CHECK = "hyperparameters-out-of-range"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Small CPU models are launch-bound: extra intra-op threads only wait on each other on a
    # busy two-core machine (the same measure as tests/test_examples.py).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def with_optimizer(make: Callable[[Any], torch.optim.Optimizer]) -> dict[str, Any]:
    kwargs = healthy_classifier()
    kwargs["optimizer"] = make(kwargs["model"].parameters())
    return kwargs


@pytest.mark.fires("hyperparameters-out-of-range")
def test_momentum_above_one_is_an_error() -> None:
    # The bug: momentum=1.5 (a typo for 0.5): the velocity grows without bound.
    report = run(
        select=[CHECK],
        **with_optimizer(lambda p: torch.optim.SGD(p, lr=0.01, momentum=1.5)),
    )
    (finding,) = report.by_check(CHECK)
    assert finding.reasons == [29]
    assert finding.severity.value == "error"
    assert finding.evidence["key"] == "momentum"
    assert finding.evidence["groups"] == [0] and finding.evidence["values"] == [1.5]
    assert finding.evidence["common_range"].startswith("[0, 1)")
    assert "group 0" in finding.message and "momentum=1.5" in finding.message
    assert "0.9" in finding.fix


@pytest.mark.fires("hyperparameters-out-of-range")
def test_adam_beta2_above_one_set_after_construction_is_an_error() -> None:
    # torch checks betas when Adam is built; the bug edits param_groups afterwards.
    def make(params: Any) -> torch.optim.Optimizer:
        opt = torch.optim.Adam(params, lr=1e-3)
        opt.param_groups[0]["betas"] = (0.9, 1.2)
        return opt

    report = run(select=[CHECK], **with_optimizer(make))
    (finding,) = report.by_check(CHECK)
    assert finding.severity.value == "error"
    assert finding.evidence["key"] == "betas[1]"
    assert finding.evidence["values"] == [1.2]
    assert "(0, 1)" in finding.evidence["common_range"]


@pytest.mark.fires("hyperparameters-out-of-range")
@pytest.mark.parametrize(
    ("make", "key", "severity"),
    [
        (lambda p: torch.optim.Adam(p, lr=0.5), "lr", "warning"),  # an SGD rate given to Adam
        (lambda p: torch.optim.SGD(p, lr=20.0), "lr", "warning"),
        (lambda p: torch.optim.AdamW(p, lr=1e-3, eps=0.1), "eps", "warning"),
        (lambda p: torch.optim.SGD(p, lr=0.01, weight_decay=2.0), "weight_decay", "warning"),
        (lambda p: torch.optim.RMSprop(p, lr=1e-3, alpha=1.5), "alpha", "error"),
        (lambda p: torch.optim.SGD(p, lr=0.01, maximize=True), "maximize", "warning"),
    ],
    ids=["adam-lr", "sgd-lr", "adamw-eps", "weight-decay", "rmsprop-alpha", "maximize"],
)
def test_each_range_is_checked(make: Any, key: str, severity: str) -> None:
    report = run(select=[CHECK], **with_optimizer(make))
    (finding,) = report.by_check(CHECK)
    assert finding.evidence["key"] == key
    assert finding.severity.value == severity
    # A learning rate out of range is also reason 36, the learning rate itself.
    assert finding.reasons == ([29, 36] if key == "lr" else [29])


@pytest.mark.fires("hyperparameters-out-of-range")
def test_the_finding_names_the_group_that_is_out_of_range() -> None:
    x, y = blobs()
    model = mlp()
    # The bug: a weight decay of 5 on the head only (meant 5e-4).
    opt = torch.optim.SGD(
        [
            {"params": [*model[0].parameters(), *model[2].parameters()]},
            {"params": model[4].parameters(), "weight_decay": 5.0},
        ],
        lr=0.05,
        momentum=0.9,
    )
    report = run(
        select=[CHECK],
        model=model,
        data=[(x[:32], y[:32])],
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=opt,
    )
    (finding,) = report.by_check(CHECK)
    assert finding.evidence["groups"] == [1] and finding.evidence["values"] == [5.0]
    assert finding.where.module == "4"
    assert "in 1 of 2 parameter groups" in finding.message and "4.weight" in finding.message


@pytest.mark.silent("hyperparameters-out-of-range")
def test_a_healthy_optimiser_is_silent() -> None:
    report = run(select=[CHECK], **healthy_classifier())
    assert report.by_check(CHECK) == []
    result = report.result(CHECK)
    assert result.status.value == "passed"
    assert "every hyperparameter in range" in result.detail


@pytest.mark.silent("hyperparameters-out-of-range")
@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
        lambda p: torch.optim.Adam(p, lr=2e-4, betas=(0.0, 0.99)),  # beta1 = 0: GAN recipes
        lambda p: torch.optim.AdamW(p, lr=3e-4, weight_decay=0.1),
        lambda p: torch.optim.Adadelta(p),  # lr=1.0 is Adadelta's own default
        lambda p: torch.optim.Adafactor(p),  # negative beta2_decay and a tuple eps are its defaults
    ],
    ids=["sgd-nesterov", "adam-beta1-zero", "adamw", "adadelta", "adafactor"],
)
def test_common_recipes_are_silent(make: Any) -> None:
    report = run(select=[CHECK], **with_optimizer(make))
    assert report.by_check(CHECK) == []


def observe(
    optimizer: torch.optim.Optimizer, model: nn.Module, scheduler: Any, steps: int = 6
) -> Recording:
    """A hand-written loop under the training probe, with a scheduler stepping the rate."""
    x, y = blobs(n=64)
    recording = Recording()
    with TrainingProbe(recording) as probe:
        probe.attach_model(model)
        probe.attach_optimizer(optimizer)
        for _ in range(steps):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            scheduler.step()
    return recording


def findings_on(recording: Recording) -> list[Any]:
    results, findings = run_checks(None, recording, Lab(None), selection=Selection(select=(CHECK,)))
    (result,) = [r for r in results if r.check == CHECK]
    assert result.status.value in ("passed", "failed"), result.detail
    return findings


def test_a_warm_up_from_zero_is_not_a_zero_learning_rate() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    warm_up = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, step / 4))
    recording = observe(opt, model, warm_up)
    assert recording.steps[0].hyperparameters[0]["lr"] == 0.0
    assert findings_on(recording) == []


def test_a_learning_rate_zero_at_every_step_is_reported() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    frozen = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.0)
    (finding,) = findings_on(observe(opt, model, frozen))
    assert finding.evidence["key"] == "lr" and finding.evidence["rule"] == "zero at every step"


def test_a_scheduler_pushing_the_rate_out_of_range_is_seen_at_its_step() -> None:
    model = mlp()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    growing = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 3.0**step)
    (finding,) = findings_on(observe(opt, model, growing))
    assert finding.evidence["key"] == "lr"
    assert finding.evidence["step"] > 0  # 0.05 at the first step, 0.15 at the second


def test_group_rules_one_by_one() -> None:
    t = DEFAULT_THRESHOLDS

    def keys(optimizer: str, **group: Any) -> set[str]:
        return {p.key for p in group_problems(optimizer, group, t)}

    assert keys("SGD", lr=0.1, momentum=0.9, dampening=0, nesterov=True) == set()
    assert keys("SGD", lr=0.1, momentum=0.0, nesterov=True) == {"nesterov"}
    assert keys("SGD", lr=-0.1) == {"lr"}
    assert keys("SGD", lr=0.1, momentum=-0.5) == {"momentum"}
    assert keys("SGD", lr=0.1, momentum=0.9, dampening=1.0) == {"dampening"}
    assert keys("Adam", lr=1e-3, betas=[1.0, 0.999]) == {"betas[0]"}
    assert keys("Adam", lr=1e-3, betas=[0.9, 0.0]) == {"betas[1]"}
    assert keys("Adam", lr=1e-3, betas=[0.0, 0.999]) == set()
    assert keys("Adam", lr=1e-3, eps=-1e-8) == {"eps"}
    assert (
        keys("RMSprop", lr=1e-3, eps=1.0) == set()
    )  # Inception's RMSprop eps=1.0 is a known recipe
    assert keys("Adam", lr=1e-3, eps=1.0) == {"eps"}
    assert keys("SGD", lr=0.1, weight_decay=-1e-4) == {"weight_decay"}
    assert keys("Adadelta", lr=1.0, rho=1.0) == {"rho"}
    assert keys("ASGD", lr=0.01, alpha=0.75) == set()  # ASGD's alpha is a power, not a decay
    assert keys("Rprop", lr=0.01, etas=[0.5, 1.2]) == set()
    assert keys("SGD", lr="tensor(1,)", momentum=True) == set()  # non-numbers are not judged
    severities = {
        p.key: p.severity.value
        for p in group_problems("Adam", {"lr": 1e-3, "betas": [0.9, 1.2]}, t)
    }
    assert severities == {"betas[1]": "error"}
