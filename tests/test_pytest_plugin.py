"""The pytest plugin and the assertions of ``nndoctor.testing``.

Inner test sessions run through pytest's own ``pytester`` (in process): the plugin
must be active there without any import or conftest, a failing assertion must fail
the inner test with a message that reads like the console report, and each
assertion has a healthy model it passes on and a real bug it fails on. The safety
tests call the assertions directly and compare the model, the optimizer and the
random state bit for bit.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from nndoctor.config import ConfigError
from nndoctor.testing import (
    DoctorAssertionError,
    assert_all_params_train,
    assert_batch_independent,
    assert_finite,
    assert_healthy,
    assert_loss_at_chance,
    assert_no_nan_in_backward,
    assert_overfits,
)

pytest_plugins = ["pytester"]

# Small models with one real bug each; written into the inner session as `models.py`
# and executed here too, so both sides use the same definitions.
MODELS = '''
import torch
from torch import nn


def blobs(n=64, features=10, classes=3, seed=0):
    """Standardised Gaussian blobs: a learnable three-way problem."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g) * 2.0
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, features, generator=g)
    return (x - x.mean(0)) / x.std(0), y


def mlp(*tail, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3), *tail)


def loud_head():
    """Output weights 60x too large: confidently wrong logits at step 0."""
    model = mlp()
    with torch.no_grad():
        model[2].weight.mul_(60.0)
    return model


class WithUnusedHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = mlp()
        self.head = nn.Linear(3, 3)  # defined, never called: it never gets a gradient

    def forward(self, x):
        return self.body(x)


class SubtractBatchMean(nn.Module):
    def forward(self, x):
        return x - x.mean(0, keepdim=True)  # every sample's output depends on the others


class Log(nn.Module):
    def forward(self, x):
        return torch.log(x)  # NaN for the negative half of the logits


class DistanceToSelf(nn.Module):
    def forward(self, x):
        # sqrt of a zero distance: the forward pass is finite, the backward pass divides by 0
        return x + torch.sqrt(((x - x.detach()) ** 2).sum(1, keepdim=True))


X, Y = blobs()
BATCH = (X[:32], Y[:32])
BATCHES = [(X[:32], Y[:32]), (X[32:], Y[32:])]
'''

models: dict[str, Any] = {"__name__": "models"}
exec(MODELS, models)  # our own constant source, shared with the inner session
mlp, loud_head = models["mlp"], models["loud_head"]
BATCH, BATCHES = models["BATCH"], models["BATCHES"]

INNER_ASSERTIONS = """
import torch.nn.functional as F
from torch import nn

from models import (
    BATCH, BATCHES, DistanceToSelf, Log, SubtractBatchMean, WithUnusedHead, loud_head, mlp,
)
from nndoctor.testing import (
    assert_all_params_train, assert_batch_independent, assert_finite, assert_healthy,
    assert_loss_at_chance, assert_no_nan_in_backward, assert_overfits,
)

ce = nn.CrossEntropyLoss()


def test_overfits_passes():
    assert_overfits(mlp(), BATCH, ce)


def test_overfits_fails():
    assert_overfits(mlp(nn.Softmax(dim=1)), BATCH, ce)


def test_loss_at_chance_passes():
    assert_loss_at_chance(mlp(), BATCH, ce)


def test_loss_at_chance_fails():
    assert_loss_at_chance(loud_head(), BATCH, ce)


def test_all_params_train_passes():
    assert_all_params_train(mlp(), BATCHES, ce)


def test_all_params_train_fails():
    assert_all_params_train(WithUnusedHead(), BATCHES, ce)


def test_batch_independent_passes():
    assert_batch_independent(mlp(), BATCH)


def test_batch_independent_fails():
    assert_batch_independent(mlp(SubtractBatchMean()), BATCH)


def test_finite_passes():
    assert_finite(mlp(), BATCHES, ce)


def test_finite_fails():
    assert_finite(mlp(Log()), BATCHES, F.nll_loss)


def test_no_nan_in_backward_passes():
    assert_no_nan_in_backward(mlp(), BATCH, ce)


def test_no_nan_in_backward_fails():
    assert_no_nan_in_backward(mlp(DistanceToSelf()), BATCH, ce)


def test_healthy_passes():
    assert_healthy(mlp(), BATCHES, ce)


def test_healthy_fails():
    assert_healthy(mlp(nn.Softmax(dim=1)), BATCHES, ce)
"""


INNER_FIXTURES = """
import torch
from torch import nn

from models import BATCHES, mlp

STATE = {}


def test_fixtures_come_from_the_entry_point(doctor, seeded_rng, nndoctor_seed):
    # No conftest.py, no pytest_plugins: the plugin was loaded because it is installed.
    assert callable(doctor) and nndoctor_seed == 7


def test_1_before_seeding():
    torch.manual_seed(1234)
    STATE["before"] = torch.get_rng_state()


def test_2_seeded_rng(seeded_rng):
    expected = torch.rand(3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(torch.rand(3, generator=seeded_rng), expected)


def test_3_state_restored_after_seeded_rng():
    assert torch.equal(torch.get_rng_state(), STATE["before"])


def test_doctor_on_a_healthy_model(doctor):
    report = doctor(mlp(), BATCHES, nn.CrossEntropyLoss(), select=["19"])
    assert report.findings == []


def test_doctor_on_softmax_before_cross_entropy(doctor):
    report = doctor(mlp(nn.Softmax(dim=1)), BATCHES, nn.CrossEntropyLoss(), select=["19"])
    assert report.findings == []
"""


# -- one inner session: the plugin in a fresh project, and every assertion ----------------


def test_an_inner_session_has_the_plugin_and_each_assertion_passes_and_fails(
    pytester: pytest.Pytester,
) -> None:
    # A fresh folder with no conftest.py and no pytest_plugins: whatever nndoctor adds
    # comes from the pytest11 entry point. A subprocess, because an in-process session
    # drops the modules it imported when it ends, and torch cannot register its operator
    # libraries a second time when they are imported again. One session for both files
    # keeps it to one start of torch.
    pytester.makepyfile(
        models=MODELS, test_fixtures=INNER_FIXTURES, test_assertions=INNER_ASSERTIONS
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "-v", "--nndoctor-seed", "7"
    )
    result.assert_outcomes(passed=5 + 7, failed=1 + 7)
    text = result.stdout.str()
    outcomes = dict(re.findall(r"::(test_\w+) (PASSED|FAILED)", text))
    assert len(outcomes) == 6 + 14, outcomes
    failing = {"test_doctor_on_softmax_before_cross_entropy"} | {
        k for k in outcomes if k.endswith("_fails")
    }
    assert {k for k, v in outcomes.items() if v == "FAILED"} == failing, outcomes

    # The report header carries the seed, so a failure can be reproduced.
    result.stdout.fnmatch_lines(["nndoctor * (torch *): --nndoctor-seed=7"])
    # A failing test that used `doctor` shows the reports it produced.
    result.stdout.fnmatch_lines(
        [
            "*- nndoctor -*",
            "nndoctor checked Sequential: 1 error(s), 0 warning(s)*",
            "ERROR Softmax applied before CrossEntropyLoss  [[]loss-input-mismatch · reasons 19[]]",
            "*fix       Remove the softmax*",
        ]
    )
    # Each failing assertion fails its test with a message that reads like the console
    # report: what was expected, what was found with its numbers, where, the fix.
    expected = {
        "assert_overfits": (
            "cannot-overfit-tiny-batch · reasons 24, 27, 30",
            "expected  the loss on 8 samples",
        ),
        "assert_loss_at_chance": (
            "loss-not-at-chance · reasons 17, 28",
            "expected  an initial loss at most 1.5×",
        ),
        "assert_all_params_train": ("params-without-grad · reasons 23", "where     module head"),
        "assert_batch_independent": ("batch-dependence · reasons 25", "measured  changed_sample="),
        "assert_finite": ("non-finite-values · reasons 37", "where     module 3, op log, step 0"),
        "assert_no_nan_in_backward": (
            "non-finite-values · reasons 37",
            "(SqrtBackward0) in the backward pass",
        ),
        "assert_healthy": (
            "loss-input-mismatch · reasons 19",
            "expected  no finding of severity warning",
        ),
    }
    for name, fragments in expected.items():
        block = _failure_block(text, name)
        assert block, f"no failure message from {name}:\n{text}"
        for fragment in (*fragments, "fix       ", "manual    nndoctor explain"):
            assert fragment in block, f"{fragment!r} missing from the {name} failure:\n{block}"


def _failure_block(text: str, name: str) -> str:
    """The error lines (``E   ...``) of the failure raised by assertion ``name``."""
    lines = text.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if f"DoctorAssertionError: {name}:" in line), None
    )
    if start is None:
        return ""
    block = []
    for line in lines[start:]:
        if not line.startswith("E"):
            break
        block.append(line[1:].strip())
    return "\n".join(block)


def test_the_message_says_what_was_measured_against_what_was_expected() -> None:
    with pytest.raises(DoctorAssertionError) as caught:
        assert_loss_at_chance(loud_head(), BATCH, nn.CrossEntropyLoss())
    error = caught.value
    lines = str(error).splitlines()
    assert lines[0] == "assert_loss_at_chance: 1 finding(s) from loss-not-at-chance"
    assert lines[1] == "expected  an initial loss at most 1.5× the chance level (+ 0.1)"
    assert lines[3].startswith("ERROR The loss at initialisation is far above chance")
    finding = error.findings[0]
    assert finding.check == "loss-not-at-chance" and finding.reasons == [17, 28]
    assert finding.evidence["ratio"] > 3.0  # 60x logits: far above ln(3)
    measured = next(line for line in lines if line.strip().startswith("measured"))
    assert f"chance={finding.evidence['chance']:.4g}" in measured
    assert error.report.result("loss-not-at-chance").status.value == "failed"


def test_an_assertion_whose_check_cannot_run_fails_and_says_why() -> None:
    # A custom loss has no defined chance level: the assertion cannot pass silently.
    def custom(model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return (model(x) - nn.functional.one_hot(y, 3)).pow(2).mean()

    with pytest.raises(
        DoctorAssertionError, match="loss-not-at-chance could not run: no recognised"
    ):
        assert_loss_at_chance(mlp(), BATCH, custom)


def test_assert_healthy_fail_on_error_lets_warnings_pass() -> None:
    # The unused head draws a warning (params-without-grad), no error.
    model, data, loss = models["WithUnusedHead"](), BATCHES, nn.CrossEntropyLoss()
    with pytest.raises(DoctorAssertionError, match="params-without-grad"):
        assert_healthy(model, data, loss, select=["23"])
    report = assert_healthy(model, data, loss, select=["23"], fail_on="error")
    assert [f.check for f in report.findings] == ["params-without-grad"]


def test_assert_healthy_refuses_an_unknown_check_id() -> None:
    # Selecting nothing would pass vacuously.
    with pytest.raises(ConfigError, match="unknown check id 'loss-at-chanse'"):
        assert_healthy(mlp(), BATCHES, nn.CrossEntropyLoss(), select=["loss-at-chanse"])


# -- safety: the assertions leave what they are given as they found it ------------------

ce = nn.CrossEntropyLoss()
nll = nn.functional.nll_loss
Build = Callable[[], nn.Module]
Call = Callable[[nn.Module, torch.optim.Optimizer], object]
SAFETY: dict[str, tuple[Build, Any, Call]] = {
    "overfits": (
        lambda: mlp(nn.Softmax(dim=1)),
        ce,
        lambda m, o: assert_overfits(m, BATCH, ce, o),
    ),
    "loss-at-chance": (loud_head, ce, lambda m, o: assert_loss_at_chance(m, BATCH, ce)),
    "all-params-train": (
        models["WithUnusedHead"],
        ce,
        lambda m, o: assert_all_params_train(m, BATCHES, ce, o),
    ),
    "batch-independent": (
        lambda: mlp(models["SubtractBatchMean"]()),
        ce,
        lambda m, o: assert_batch_independent(m, BATCH),
    ),
    "finite": (lambda: mlp(models["Log"]()), nll, lambda m, o: assert_finite(m, BATCHES, nll, o)),
    "no-nan-in-backward": (
        lambda: mlp(models["DistanceToSelf"]()),
        ce,
        lambda m, o: assert_no_nan_in_backward(m, BATCH, ce),
    ),
    "healthy": (mlp, ce, lambda m, o: assert_healthy(m, BATCHES, ce, o)),
}


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical, NaN included (``torch.equal`` says NaN != NaN)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return torch.equal(
        a.detach().reshape(-1).view(torch.uint8), b.detach().reshape(-1).view(torch.uint8)
    )


@pytest.mark.parametrize("case", sorted(SAFETY))
def test_assertions_leave_model_optimizer_and_rng_untouched(case: str) -> None:
    build, loss_fn, call = SAFETY[case]
    model = build()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    # A real step first, so the optimizer has state (momentum buffers) and the
    # parameters gradients to protect.
    x, y = BATCH
    optimizer.zero_grad()
    loss_fn(model(x), y).backward()
    optimizer.step()
    params = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    opt_state = {k: {n: t.clone() for n, t in s.items()} for k, s in optimizer.state.items()}
    rng = torch.get_rng_state()

    try:
        call(model, optimizer)
    except DoctorAssertionError:
        pass

    after = model.state_dict()
    assert params.keys() == after.keys()
    assert all(same_bits(params[k], after[k]) for k in params), "parameters or buffers changed"
    assert all(same_bits(grads[n], p.grad) for n, p in model.named_parameters() if n in grads)
    assert optimizer.state.keys() == opt_state.keys()
    for p, state in optimizer.state.items():
        assert all(same_bits(t, state[n]) for n, t in opt_state[p].items())
    assert model.training
    assert torch.equal(torch.get_rng_state(), rng)


def test_loading_the_plugin_does_not_import_torch() -> None:
    # Every pytest run in an environment with nndoctor loads the plugin; torch is paid for
    # only by tests that use it.
    code = "import sys, nndoctor.pytest_plugin, nndoctor; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
