"""Overfit a tiny batch."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from subjects import TinyVAE, healthy_classifier, run
from torch import nn

from nndoctor.capture.replay import ReplayPlan, ReplayResult
from nndoctor.checks.lab import Lab, TrainResult
from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS
from nndoctor.engine import Selection, check_script

# Replays re-run a script in a subprocess; on a busy two-core machine the default limit of
# 120 s can pass before the replay ends, and the check then says it skipped.
REPLAY_TIMEOUT = 600.0


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_healthy_model_memorises_a_tiny_batch() -> None:
    report = run(select=["cannot-overfit-tiny-batch"], **healthy_classifier())
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"


@pytest.mark.fires("cannot-overfit-tiny-batch")
def test_a_width_one_bottleneck_cannot_fit() -> None:
    kwargs = healthy_classifier()
    torch.manual_seed(0)
    # The bug: a bottleneck of width 1 followed by a ReLU, 3 classes cannot be separated.
    model = nn.Sequential(nn.Linear(10, 1), nn.ReLU(), nn.Linear(1, 3))
    kwargs.update(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
    report = run(select=["cannot-overfit-tiny-batch"], **kwargs)
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert finding.reasons == [24, 27, 30]
    assert finding.evidence["final_loss"] > 0.1


def test_a_learning_rate_of_zero_fits_only_with_the_fallback() -> None:
    kwargs = healthy_classifier()
    kwargs["optimizer"] = torch.optim.SGD(kwargs["model"].parameters(), lr=1e-6)
    report = run(select=["cannot-overfit-tiny-batch"], **kwargs)
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert finding.severity.value == "info"  # the optimiser checks carry the warning
    assert set(finding.reasons) == {27, 34, 36}
    assert finding.evidence["fallback_final_loss"] < 0.1


# A custom loss in plain torch: the overfit experiment must replay the script.
CUSTOM_LOSS_SCRIPT = textwrap.dedent("""
        import torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset
        torch.manual_seed(0)
        x = torch.randn(256, 6); y = (x[:, 0] > 0).long()
        model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for epoch in range(100):
            for xb, yb in DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True):
                logits = model(xb)
                loss = -(logits - logits.logsumexp(1, keepdim=True)).gather(1, yb[:, None]).mean()
                opt.zero_grad(); loss.backward(); opt.step()
""")


def test_a_script_replay_cut_by_its_time_limit_is_skipped_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A custom loss in plain torch: the overfit experiment must replay the script.
    script = tmp_path / "train.py"
    script.write_text(CUSTOM_LOSS_SCRIPT)
    # Three steps of a slow replay, loss not yet down: unfinished, not a failure to fit.
    cut = ReplayResult(False, losses=[0.7, 0.69, 0.69], error="timeout", substituted=True, steps=3)
    monkeypatch.setattr(Lab, "replay", lambda self, mode, **plan: cut)
    report = check_script(str(script), selection=Selection(select=("cannot-overfit-tiny-batch",)))
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value == "skipped" and "time limit after 3 of" in result.detail


def test_a_replay_gets_the_wall_clock_limit_the_script_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine slow enough to need a longer limit for the script needs it for its replays.
    script = tmp_path / "train.py"
    script.write_text(CUSTOM_LOSS_SCRIPT)
    plans: list[ReplayPlan] = []

    def recorded(plan: ReplayPlan, server: object = None) -> ReplayResult:
        plans.append(plan)
        return ReplayResult(True, losses=[0.7] + [1e-4] * 149, substituted=True, steps=150)

    monkeypatch.setattr("nndoctor.checks.lab.run_replay", recorded)
    report = check_script(
        str(script), timeout=345.0, selection=Selection(select=("cannot-overfit-tiny-batch",))
    )
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"
    assert [p.timeout for p in plans] == [345.0]


def test_a_longer_replay_cut_by_its_time_limit_decides_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The short replay ends with the loss still falling, so a longer one decides; on a
    # loaded machine that one hits its time limit. The short run must not decide then:
    # the same script on a quiet machine fits the batch in the longer run.
    script = tmp_path / "train.py"
    script.write_text(CUSTOM_LOSS_SCRIPT)
    t = DEFAULT_THRESHOLDS
    slow = [0.988**i for i in range(t.overfit_steps)]  # still falling clearly, not yet fit
    short = ReplayResult(True, losses=slow, substituted=True, steps=len(slow))
    cut = ReplayResult(
        False, losses=slow + slow[-1:] * 50, error="timeout", substituted=True, steps=len(slow) + 50
    )
    replies = iter([short, cut])
    monkeypatch.setattr(Lab, "replay", lambda self, mode, **plan: next(replies))
    report = check_script(str(script), selection=Selection(select=("cannot-overfit-tiny-batch",)))
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value == "skipped"
    assert "longer replay that decides hit its time limit" in result.detail


def _overfit_on(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Any, optimizer: Any
) -> Any:
    """The tiny-batch check on ``model`` fed (x, y) in eight batches of 32."""
    return run(
        select=["cannot-overfit-tiny-batch"],
        model=model,
        data=[(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)],
        loss_fn=loss_fn,
        optimizer=optimizer,
    )


def _stripes() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (256,), generator=g)
    x = torch.randn(256, 1, 16, 16, generator=g) * 0.5
    for c in range(3):
        x[y == c, :, 4 * c : 4 * c + 4, :] += 2.0
    return (x - x.mean()) / x.std(), y


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_slow_but_steady_fit_is_given_a_longer_run() -> None:
    # A global-average-pooled CNN at Adam(1e-3): 1.10 → 0.17 in 150 steps, still falling,
    # and 0.008 by 300: slow, not stuck.
    x, y = _stripes()
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 3),
    )
    report = _overfit_on(
        model, x, y, nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=1e-3)
    )
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert "in 450 steps" in report.result("cannot-overfit-tiny-batch").detail


def _elbo(model: nn.Module, batch: tuple[torch.Tensor]) -> torch.Tensor:
    (x,) = batch
    recon, mu, logvar = model(x)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
    return nn.functional.mse_loss(recon, x, reduction="sum") / len(x) + kl


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_vae_has_a_loss_floor_and_is_not_called_unable_to_fit() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.tanh(torch.randn(256, 2, generator=g) @ torch.randn(2, 16, generator=g))
    model = TinyVAE()
    report = run(
        select=["cannot-overfit-tiny-batch"],
        model=model,
        data=[(x[i : i + 32],) for i in range(0, 256, 32)],
        loss_fn=_elbo,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert "floor above zero" in report.result("cannot-overfit-tiny-batch").detail


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_label_smoothing_sets_the_floor_the_tiny_batch_is_judged_against() -> None:
    # With label smoothing 0.3 over 3 classes the loss cannot go below ~0.56; a healthy model
    # that reaches that floor has fit the batch.
    kwargs = healthy_classifier()
    kwargs["loss_fn"] = nn.CrossEntropyLoss(label_smoothing=0.3)
    report = run(select=["cannot-overfit-tiny-batch"], **kwargs)
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_class_probabilities_as_targets_set_the_floor_at_their_entropy() -> None:
    # Soft labels (0.933 on the class, 0.033 on each other): the loss cannot go below their
    # entropy, ~0.29 over 3 classes, however well the batch is fit.
    kwargs = healthy_classifier()
    soft = [(x, 0.9 * nn.functional.one_hot(y, 3).float() + 0.1 / 3) for x, y in kwargs["data"]]
    kwargs["data"] = soft
    report = run(select=["cannot-overfit-tiny-batch"], **kwargs)
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"


def test_the_floor_under_class_probabilities_is_reached_by_their_logarithm() -> None:
    from nndoctor.subject import ideal_prediction

    g = torch.Generator().manual_seed(0)
    target = torch.softmax(torch.randn(6, 4, generator=g), dim=1)
    for smoothing in (0.0, 0.2):
        kwargs = {"label_smoothing": smoothing}
        ideal = ideal_prediction("cross_entropy", kwargs, target)
        assert ideal is not None
        floor = float(nn.functional.cross_entropy(ideal, target, label_smoothing=smoothing))
        nudged = ideal + 0.1 * torch.randn(6, 4, generator=g)
        assert floor < float(nn.functional.cross_entropy(nudged, target, label_smoothing=smoothing))
    # Class indices: the floor is not the targets' (0, or label smoothing's own).
    assert ideal_prediction("cross_entropy", {}, torch.tensor([0, 1])) is None


def test_the_label_smoothing_floor_is_the_entropy_of_the_smoothed_targets() -> None:
    import math

    from nndoctor.subject import Subject, Task

    kwargs = healthy_classifier()
    subject = Subject(
        model=kwargs["model"],
        batches=kwargs["data"],
        task=Task.classification(3),
        criterion=nn.CrossEntropyLoss(label_smoothing=0.3),
    )
    lab = Lab(subject)
    floor = lab.loss_floor()
    q = [0.8, 0.1, 0.1]
    assert math.isclose(floor, -sum(p * math.log(p) for p in q), rel_tol=1e-9)
    logits = torch.log(torch.tensor([q]))  # the best prediction reaches it exactly
    assert math.isclose(
        float(nn.CrossEntropyLoss(label_smoothing=0.3)(logits, torch.tensor([0]))),
        floor,
        rel_tol=1e-5,
    )


def _counts() -> dict[str, object]:
    """Poisson regression of small counts with a log-rate output: a fitted batch keeps a
    loss well above zero (a count of 1 costs 1 at the rate equal to it, one of 2 costs
    2 - 2 ln 2), most of a fresh model's."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    counts = torch.poisson((0.3 * x[:, :1]).exp(), generator=g)  # mostly 0, 1 and 2
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 1))
    return {
        "model": model,
        "data": [(x[i : i + 32], counts[i : i + 32]) for i in range(0, 256, 32)],
        "loss_fn": nn.PoissonNLLLoss(log_input=True),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-2),
    }


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_poisson_counts_are_fit_down_to_the_floor_their_targets_set() -> None:
    report = run(select=["cannot-overfit-tiny-batch"], **_counts())
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"


def test_the_poisson_floor_is_the_loss_at_rates_equal_to_the_counts() -> None:
    import math

    from nndoctor.subject import Subject, Task

    kwargs = _counts()
    subject = Subject(
        model=kwargs["model"],
        batches=kwargs["data"],
        task=Task.regression(),
        criterion=nn.PoissonNLLLoss(log_input=True),
    )
    batch = kwargs["data"][0]
    y = batch[1]
    expected = float((y - torch.where(y > 0, y * y.log(), torch.zeros_like(y))).mean())
    floor = subject.loss_floor(batch)
    assert floor is not None and math.isclose(floor, expected, rel_tol=1e-4, abs_tol=1e-6)
    assert floor < float(nn.PoissonNLLLoss()(torch.zeros_like(y), y))
    assert Lab(subject).floor_of([batch]) == floor


def test_the_soft_target_floor_of_bce_with_logits_holds_targets_of_exactly_0_and_1() -> None:
    import math

    from nndoctor.subject import Subject, Task

    # Noisy images clamped to [0, 1]: many pixels exactly 0 or 1, the rest in between.
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(8, 16, generator=g) + 0.3 * torch.randn(8, 16, generator=g)).clamp(0, 1)
    model = nn.Linear(16, 16)
    subject = Subject(
        model=model,
        batches=[(y, y)],
        task=Task.regression(),
        criterion=nn.BCEWithLogitsLoss(),
    )
    floor = subject.loss_floor((y, y))
    inner = y.double().clamp(1e-12, 1 - 1e-12)
    entropy = float(-(inner * inner.log() + (1 - inner) * (1 - inner).log()).mean())
    assert floor is not None and math.isfinite(floor)
    assert math.isclose(floor, entropy, rel_tol=1e-4, abs_tol=1e-5)


class _BagOfTokens(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bag = nn.EmbeddingBag(50, 16, mode="sum")
        self.head = nn.Linear(16, 2)

    def forward(self, tokens: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(tokens, offsets))


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_batch_whose_tensors_disagree_on_the_batch_axis_is_fit_whole() -> None:
    # Flat token ids (all documents) beside per-document offsets and targets: cutting the
    # first axis of each apart would break the offsets, which is no fault of the model.
    g = torch.Generator().manual_seed(0)
    data = []
    for _ in range(4):
        lengths = torch.randint(3, 9, (16,), generator=g)
        tokens = torch.randint(0, 50, (int(lengths.sum()),), generator=g)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        data.append(((tokens, offsets), torch.randint(0, 2, (16,), generator=g)))
    model = _BagOfTokens()
    report = run(
        select=["cannot-overfit-tiny-batch"],
        model=model,
        data=data,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"


def test_an_experiment_that_cannot_take_one_step_is_a_crashed_check_not_a_finding() -> None:
    class Fragile(nn.Module):
        """Works on the user's batches of 32, fails on any other batch size."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Linear(10, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] != 32:
                raise RuntimeError("expected a batch of 32")
            return self.net(x)

    kwargs = healthy_classifier()
    model = Fragile()
    kwargs.update(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
    report = run(select=["cannot-overfit-tiny-batch"], **kwargs)
    assert report.by_check("cannot-overfit-tiny-batch") == []
    result = report.result("cannot-overfit-tiny-batch")
    assert result.status.value == "crashed" and "could not take one training step" in result.detail


MIXUP = """
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(512, 8); y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0).long()
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
epochs = 40
sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-2, total_steps=epochs * len(loader){extra})
for epoch in range(epochs):
    for xb, yb in loader:
        lam = float(torch.distributions.Beta(1.0, 1.0).sample())
        perm = torch.randperm(len(xb))
        out = model(lam * xb + (1 - lam) * xb[perm])  # mixup: a new mix at every step
        loss = lam * F.cross_entropy(out, yb, label_smoothing=0.1) + (1 - lam) * F.cross_entropy(
            out, yb[perm], label_smoothing=0.1
        )
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
"""


def _check_replayed(tmp_path: Path, name: str, text: str) -> Any:
    """``cannot-overfit-tiny-batch`` alone on the script ``text``, written as ``name``: a
    script whose loss no copy can take in process, so that the check replays it."""
    script = tmp_path / name
    script.write_text(textwrap.dedent(text))
    return check_script(
        str(script),
        phase_steps=0,
        timeout=REPLAY_TIMEOUT,
        selection=Selection(select=("cannot-overfit-tiny-batch",)),
    )


def _mixup(tmp_path: Path, extra: str = "") -> object:
    return _check_replayed(tmp_path, "mixup.py", MIXUP.replace("{extra}", extra))


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_mixup_in_the_loop_has_a_floor_and_a_per_batch_schedule_may_end_the_replay(
    tmp_path: Path,
) -> None:
    # The replay feeds one fixed batch forever: the script's OneCycleLR, sized for its own
    # epochs, raises past its end, and mixup redraws the batch's mix at every step.
    report = _mixup(tmp_path)
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value in ("passed", "skipped"), result.detail
    assert "could not be trained" not in result.detail


def test_a_replay_whose_script_raises_early_is_skipped_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raised = ReplayResult(
        False,
        losses=[1.1, 1.0, 0.9],
        error="ValueError: Tried to step 4 times",
        substituted=True,
        steps=3,
    )
    monkeypatch.setattr(Lab, "replay", lambda self, mode, **plan: raised)
    report = _mixup(tmp_path)
    result = report.result("cannot-overfit-tiny-batch")
    assert result.status.value == "skipped" and "raised after 3 of" in result.detail


def test_a_replay_notes_when_the_script_changes_the_fixed_batch(
    tmp_path: Path, replay_server: Any
) -> None:
    from nndoctor.capture.replay import ReplayPlan, run_replay

    script = tmp_path / "mixup.py"
    script.write_text(textwrap.dedent(MIXUP.replace("{extra}", "")))
    varied = run_replay(ReplayPlan(str(script), [], "overfit", steps=5), replay_server)
    assert varied.ok and varied.substituted and varied.inputs_vary
    plain = tmp_path / "plain.py"
    unmixed = MIXUP.replace("lam * xb + (1 - lam) * xb[perm]", "xb").replace("{extra}", "")
    plain.write_text(textwrap.dedent(unmixed))
    fixed = run_replay(ReplayPlan(str(plain), [], "overfit", steps=5), replay_server)
    assert fixed.ok and not fixed.inputs_vary


# Skip-gram with negative sampling: the negatives are drawn anew at every step, so even
# one fixed batch of (centre, context) pairs has a loss floor above zero.
NEGATIVE_SAMPLING = """
import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
V, D, K = 500, 32, 5
freq = 1.0 / torch.arange(1, V + 1).float()
corpus = torch.multinomial(freq, 4000, replacement=True)
centres, contexts = corpus[1:-1].repeat(2), torch.cat([corpus[:-2], corpus[2:]])
noise = freq ** 0.75 / (freq ** 0.75).sum()

class SkipGram(nn.Module):
    def __init__(self):
        super().__init__()
        self.centre, self.context = nn.Embedding(V, D), nn.Embedding(V, D)
        nn.init.uniform_(self.centre.weight, -0.5 / D, 0.5 / D)
        nn.init.zeros_(self.context.weight)

    def forward(self, c, o, negatives):
        v = self.centre(c)
        positive = F.logsigmoid((v * self.context(o)).sum(-1))
        negative = F.logsigmoid(-(self.context(negatives) @ v.unsqueeze(2)).squeeze(2)).sum(1)
        return -(positive + negative).mean()

model = SkipGram()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(2):
    for c, o in DataLoader(TensorDataset(centres, contexts), batch_size=64, shuffle=True):
        negatives = torch.multinomial(noise, len(c) * K, replacement=True).view(len(c), K)
        loss = model(c, o, negatives)
        opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_negatives_drawn_at_every_step_give_the_fixed_batch_a_floor(tmp_path: Path) -> None:
    report = _check_replayed(tmp_path, "skipgram.py", NEGATIVE_SAMPLING)
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value == "passed" and "floor above zero" in result.detail


# A loss divided over 16 accumulated micro-batches, computed from a transformed output (so
# no copy can be stepped in process and the script is replayed); with ``{bug}`` the model
# multiplies its input by zero and cannot fit even a tiny batch.
ACCUMULATED_REPLAY = """
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(2048, 8); y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0).long()

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))

    def forward(self, x):
        return self.body(x * {scale})

model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)
k = 16
for epoch in range(20):
    for i, (xb, yb) in enumerate(loader):
        loss = F.cross_entropy(model(xb) * 1.0, yb) / k
        loss.backward()
        if (i + 1) % k == 0:
            opt.step(); opt.zero_grad()
"""


def _accumulated_replay(tmp_path: Path, scale: str) -> object:
    return _check_replayed(tmp_path, "accumulated.py", ACCUMULATED_REPLAY.replace("{scale}", scale))


@pytest.mark.fires("cannot-overfit-tiny-batch")
def test_a_replayed_accumulated_loss_is_judged_in_the_criterions_units(tmp_path: Path) -> None:
    # A sixteenth of the label entropy (about 1.0) would pass the absolute fit target of 0.1.
    report = _accumulated_replay(tmp_path, "0.0")
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert finding.evidence["method"] == "script replay (custom loss)"
    assert finding.evidence["final_loss"] > 0.5


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_replayed_accumulated_loss_that_fits_passes(tmp_path: Path) -> None:
    report = _accumulated_replay(tmp_path, "1.0")
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value == "passed" and "replaying the script" in result.detail


class CoralMLP(nn.Module):
    """Rank-consistent ordinal regression (CORAL): one shared weight vector and K - 1 biases.
    Its thresholds must spread apart before a tiny batch is fit, which takes Adam at 5e-3
    several hundred steps: a healthy model that learns slowly."""

    def __init__(self, num_features: int = 10, num_classes: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Linear(num_features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU()
        )
        self.coral_weights = nn.Linear(32, 1, bias=False)
        self.coral_bias = nn.Parameter(torch.arange(num_classes - 1, 0, -1).float() / 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.coral_weights(self.features(x)) + self.coral_bias


def _coral_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    logits = model(x)
    levels = (y[:, None] > torch.arange(logits.shape[1])[None, :]).float()
    log_p = nn.functional.logsigmoid(logits)
    return -(log_p * levels + (log_p - logits) * (1 - levels)).sum(dim=1).mean()


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_model_still_learning_after_the_longer_run_is_slow_not_stuck() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 10, generator=g), torch.randint(0, 6, (256,), generator=g)
    model = CoralMLP()
    report = _overfit_on(model, x, y, _coral_loss, torch.optim.Adam(model.parameters(), lr=5e-3))
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value == "passed"
    assert "not fit in 450 steps" in result.detail and "slow, not stuck" in result.detail


@pytest.mark.fires("cannot-overfit-tiny-batch")
def test_a_loss_that_came_far_and_then_stopped_falling_cannot_fit() -> None:
    # The bug: a sigmoid output for targets in [0, 2.5]. The loss falls by four fifths, to
    # the floor the bounded output sets, and stays there through the longer run.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = x[:, :2].sum(1, keepdim=True).sigmoid() * 2.5
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
    report = _overfit_on(model, x, y, nn.MSELoss(), torch.optim.Adam(model.parameters(), lr=1e-2))
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert finding.severity.value == "error"
    assert finding.evidence["steps"] == 450
    assert finding.evidence["best_loss"] < 0.5 * finding.evidence["initial_loss"]


def _curve(losses: list[float]) -> TrainResult:
    return TrainResult(losses=losses)


def test_a_run_that_came_far_is_extended_whatever_its_last_steps_did() -> None:
    t, lab = DEFAULT_THRESHOLDS, Lab(None)
    steps = t.overfit_steps
    spike = [1.0 - 0.6 * i / 100 for i in range(100)] + [3.0] * (steps - 100)
    stuck = [1.0 - 0.2 * i / steps for i in range(steps)]  # never below half its start
    assert lab.deserves_longer_run(_curve(spike), t)
    assert not lab.deserves_longer_run(_curve(stuck), t)


def test_still_learning_asks_for_a_clear_fall_over_the_last_third() -> None:
    t, lab = DEFAULT_THRESHOLDS, Lab(None)
    n = t.overfit_steps * t.overfit_extension
    slow = [0.3 + 0.7 * 0.995**i for i in range(n)]  # 1.0 → 0.37, a fifth lower in its last third
    plateau = [max(0.3, 1.0 - i / 100) for i in range(n)]  # at its floor from step 70
    assert lab.still_learning(_curve(slow), t)
    assert not lab.still_learning(_curve(plateau), t)


# An orthogonality penalty written in plain torch, ||W W^T - I||^2 on a first layer of 64
# units over 8 inputs (Parseval-style regularisation): W W^T has rank 8 at most, so the
# penalty cannot fall below 56 whatever the batch, while the cross-entropy beside it can
# reach zero. With ``{scale}`` 0 the model cannot see its input.
ORTHOGONALITY = """
import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(512, 8); y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0).long()

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1, self.l2 = nn.Linear(8, 64), nn.Linear(64, 3)

    def forward(self, x):
        return self.l2(torch.relu(self.l1(x * {scale})))

    def orthogonality(self):
        w = self.l1.weight
        return (w @ w.T - torch.eye(w.shape[0])).pow(2).sum()

model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
for epoch in range(10):
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb) + model.orthogonality()
        opt.zero_grad(); loss.backward(); opt.step()
"""


def _orthogonality(tmp_path: Path, scale: str) -> object:
    return _check_replayed(tmp_path, "orthogonal.py", ORTHOGONALITY.replace("{scale}", scale))


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_penalty_with_a_floor_in_plain_torch_leaves_the_recognised_terms_to_judge(
    tmp_path: Path,
) -> None:
    report = _orthogonality(tmp_path, "1.0")
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value == "passed", result.detail
    assert "the recognised terms, which read the targets, fit it" in result.detail


@pytest.mark.fires("cannot-overfit-tiny-batch")
def test_a_penalty_with_a_floor_does_not_hide_a_model_that_cannot_fit(tmp_path: Path) -> None:
    report = _orthogonality(tmp_path, "0.0")
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert finding.evidence["method"] == "script replay (custom loss)"


# Barlow Twins on two fixed views per sample: the loss is taken over the batch's
# cross-correlation, of rank 7 at most on 8 samples, so no model takes it near zero there;
# on 16 samples it goes lower. With ``{scale}`` 0 the model cannot see its input.
BARLOW = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(512, 16)
v1, v2 = x + 0.3 * torch.randn(512, 16), x + 0.3 * torch.randn(512, 16)

class Barlow(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 48))
        self.bn = nn.BatchNorm1d(48, affine=False)

    def forward(self, a, b):
        z1, z2 = self.net(a * {scale}), self.net(b * {scale})
        c = self.bn(z1).T @ self.bn(z2) / a.shape[0]
        on = (torch.diagonal(c) - 1).pow(2).sum()
        off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
        return on + 0.02 * off

model = Barlow()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loader = DataLoader(TensorDataset(v1, v2), batch_size=64, shuffle=True, drop_last=True)
for epoch in range(10):
    for a, b in loader:
        loss = model(a, b)
        opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_loss_over_the_batchs_cross_correlation_has_a_floor_set_by_the_batch(
    tmp_path: Path,
) -> None:
    report = _check_replayed(tmp_path, "barlow.py", BARLOW.replace("{scale}", "1.0"))
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == [], result.detail
    assert "couples the samples of a batch" in result.detail


@pytest.mark.fires("cannot-overfit-tiny-batch")
def test_a_batch_coupled_loss_does_not_hide_a_model_that_cannot_fit(tmp_path: Path) -> None:
    report = _check_replayed(tmp_path, "barlow.py", BARLOW.replace("{scale}", "0.0"))
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert finding.evidence["method"] == "script replay (custom loss)"


DANN_SCRIPT = textwrap.dedent("""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    class Reversal(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, lambda_):
            ctx.lambda_ = lambda_
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            return grad.neg() * ctx.lambda_, None

    torch.manual_seed(0)
    x = torch.randn(256, 6); y = (x[:, 0] > 0).long(); d = (torch.arange(256) % 2).float()
    features = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
    classifier, discriminator = nn.Linear(16, 2), nn.Linear(16, 1)
    parts = [features, classifier, discriminator]
    opt = torch.optim.Adam([p for m in parts for p in m.parameters()], lr=1e-2)
    for epoch in range(3):
        for xb, yb, db in DataLoader(TensorDataset(x, y, d), batch_size=32, shuffle=True):
            h = features(xb)
            domain = discriminator(Reversal.apply(h, LAMBDA)).squeeze(1)
            loss = nn.functional.cross_entropy(classifier(h), yb)
            loss = loss + nn.functional.binary_cross_entropy_with_logits(domain, db)
            opt.zero_grad(); loss.backward(); opt.step()
""")


@pytest.mark.parametrize(("reversed_", "status"), [(True, "skipped"), (False, "failed")])
def test_a_loss_through_a_gradient_reversal_has_no_minimum_to_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reversed_: bool, status: str
) -> None:
    # DANN: the feature extractor ascends the domain loss its discriminator descends, so the
    # total stays near the domain loss at chance (ln 2) on any batch. The same replay (one
    # that does not fit) fails the check once the Function multiplies the gradient by +1.
    script = tmp_path / "train.py"
    script.write_text(DANN_SCRIPT.replace("LAMBDA", "1.0" if reversed_ else "-1.0"))
    stuck = ReplayResult(True, losses=[1.4] + [0.7] * 149, substituted=True, steps=150)
    # At rate 0 the loss stays where it is: it reads the model and the batch alone.
    still = ReplayResult(True, losses=[1.4] * 20, substituted=True, steps=20)

    def replay(self: Lab, mode: str, **plan: Any) -> ReplayResult:
        return still if plan.get("overrides", {}).get("lr") == 0.0 else stuck

    monkeypatch.setattr(Lab, "replay", replay)
    report = check_script(str(script), selection=Selection(select=("cannot-overfit-tiny-batch",)))
    result = report.result("cannot-overfit-tiny-batch")
    assert result.status.value == status
    assert ("gradient reversal (Reversal" in result.detail) == reversed_


def test_a_rate_zero_replay_cut_by_its_time_limit_decides_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replay that would tell a loss reading kept state from one that cannot fit hits
    # the clock: the finding must not stand in its place on a slow machine.
    script = tmp_path / "train.py"
    script.write_text(DANN_SCRIPT.replace("LAMBDA", "-1.0"))
    stuck = ReplayResult(True, losses=[1.4] + [0.7] * 149, substituted=True, steps=150)
    cut = ReplayResult(False, losses=[1.4] * 3, substituted=True, steps=3, timed_out=True)

    def replay(self: Lab, mode: str, **plan: Any) -> ReplayResult:
        return cut if plan.get("overrides", {}).get("lr") == 0.0 else stuck

    monkeypatch.setattr(Lab, "replay", replay)
    report = check_script(str(script), selection=Selection(select=("cannot-overfit-tiny-batch",)))
    result = report.result("cannot-overfit-tiny-batch")
    assert result.status.value == "skipped"
    assert "replay at rate 0" in result.detail and "time limit" in result.detail


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_batch_held_fit_then_lost_again_was_memorised(monkeypatch: pytest.MonkeyPatch) -> None:
    # A graph attention network without its dropout and weight decay: the tiny batch's
    # loss falls below a tenth of its start, holds there, then rises as the steps
    # overshoot. The model memorised the batch; the rate is for the rate checks to judge.
    held = [1.6 - 0.15 * i for i in range(10)] + [0.1] * 10 + [0.4, 0.3, 0.5, 0.35, 0.4] * 4
    monkeypatch.setattr(Lab, "overfit_user", lambda self, t: TrainResult(losses=held))
    report = run(select=["cannot-overfit-tiny-batch"], **healthy_classifier())
    result = report.result("cannot-overfit-tiny-batch")
    assert result.status == "passed"
    assert "held for five steps" in result.detail
    assert report.findings == []


# Batches cut by hand from a fresh permutation each epoch, no DataLoader, and a loss written
# in plain torch: the replay hands the rows it cut at its second step out again, cut to the
# tiny batch. ``{scores}`` is what the softmax reads.
HAND_CUT_BATCHES = """
import torch
from torch import nn
torch.manual_seed(0)
x = torch.randn(600, 2); y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for epoch in range(30):
    perm = torch.randperm(len(x))
    for start in range(0, len(x), 64):
        idx = perm[start:start + 64]
        logits = model(x[idx])
        scores = {scores}
        loss = -scores.log_softmax(1).gather(1, y[idx][:, None]).mean()
        opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_batch_cut_by_hand_is_replayed_as_a_tiny_batch_and_fit(tmp_path: Path) -> None:
    report = _check_replayed(tmp_path, "cut.py", HAND_CUT_BATCHES.format(scores="logits"))
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value == "passed", result.detail
    assert "one batch of 8 samples (rows the script cut by hand" in result.detail


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_batch_cut_by_hand_that_is_not_fit_but_learnt_from_is_no_finding(tmp_path: Path) -> None:
    # Scores bounded to [-1, 1] leave the loss a floor of 0.24 on any batch: not fit, but
    # learnt from. On a batch the replay made itself that is all that is asked.
    report = _check_replayed(tmp_path, "cut.py", HAND_CUT_BATCHES.format(scores="logits.tanh()"))
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert "the model learns on it" in result.detail and "8 samples" in result.detail


@pytest.mark.fires("cannot-overfit-tiny-batch")
def test_scores_that_ignore_the_input_learn_nothing_on_a_batch_cut_by_hand(
    tmp_path: Path,
) -> None:
    # The bug: the scores are computed from the input times zero, so only the bias moves,
    # and on balanced classes the loss does not fall.
    script = HAND_CUT_BATCHES.format(scores="logits").replace("model(x[idx])", "model(0 * x[idx])")
    report = _check_replayed(tmp_path, "cut.py", script)
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert 27 in finding.reasons
    assert "8 samples" in finding.evidence["batch"]
    assert finding.evidence["best_loss"] > 0.9 * finding.evidence["initial_loss"]


# Noisy regression data drawn anew at every step, no DataLoader and a loss in plain torch:
# the replay rewinds the random streams to draw the second step's batch again, which it
# cannot cut; the noise leaves that batch of 256 a floor a small model does not memorise.
DRAWN_EACH_STEP = """
import torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(400):
    x = torch.randn(256, 1)
    y = 2 * x + torch.randn(256, 1)
    loss = ((model(x) - y) ** 2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_the_scripts_own_batch_drawn_anew_need_only_show_learning(tmp_path: Path) -> None:
    report = _check_replayed(tmp_path, "drawn.py", DRAWN_EACH_STEP)
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value == "passed", result.detail
    assert "one batch of 256 samples (the script's own draw" in result.detail
    assert "learns on it" in result.detail


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_rows_that_cannot_be_cut_are_replayed_as_the_scripts_own_batch(tmp_path: Path) -> None:
    # Rows drawn at random with noise drawn for the script's batch size of 64: eight rows
    # cut from the batch meet 64 rows of noise and the replay raises, so the batch is
    # replayed uncut (the random streams, rewound, draw the same rows and noise each step).
    script = (
        HAND_CUT_BATCHES.format(scores="logits")
        .replace("perm = torch.randperm(len(x))", "perm = None")
        .replace("perm[start:start + 64]", "torch.randint(0, len(x), (64,))")
        .replace("model(x[idx])", "model(x[idx] + 0.01 * torch.randn(64, 2))")
    )
    report = _check_replayed(tmp_path, "cut.py", script)
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value == "passed", result.detail
    assert "one batch of 64 samples (the script's own draw" in result.detail


# A DataLoader-fed regressor whose forward adds noise while it trains (random by design,
# eval-mode calls exact) and whose output is squashed far below its targets: it cannot fit.
# Replayed at rate 0 on the substituted batch, its loss stays put once the random streams
# repeat each step's draws: randomness is no state carried between steps.
NOISY_AND_SQUASHED = """
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.randn(512, 10)
y = x[:, :1] * 3.0 + 2.0


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 1)

    def forward(self, x):
        h = self.fc(x)
        if self.training:
            h = h + 0.1 * torch.randn_like(h)
        return 0.01 * torch.tanh(h)


model = Noisy()
opt = torch.optim.Adam(model.parameters(), 1e-2)
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
for epoch in range(2):
    for xb, yb in loader:
        loss = (model(xb) - yb).pow(2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.fires("cannot-overfit-tiny-batch")
def test_a_forward_random_by_design_is_no_state_carried_between_steps(tmp_path: Path) -> None:
    report = _check_replayed(tmp_path, "noisy.py", NOISY_AND_SQUASHED)
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert finding.evidence["method"] == "script replay (custom loss)"


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_margin_loss_its_tiny_batch_meets_from_the_start_is_fit() -> None:
    # A hinge at its floor from the first step (a batch-hard triplet loss whose few
    # identities already lie a margin apart): nothing is left to memorise.
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 6, generator=g), torch.randint(0, 3, (256,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))

    def hinge_met(model: nn.Module, batch: Any) -> torch.Tensor:
        return torch.relu(model(batch[0]).abs().mean() - 100.0)  # a margin every output meets

    report = _overfit_on(model, x, y, hinge_met, torch.optim.Adam(model.parameters(), lr=1e-3))
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert "loss 0 → 0" in report.result("cannot-overfit-tiny-batch").detail


def test_a_loss_at_its_floor_is_fit_and_one_above_it_is_judged_by_its_fall() -> None:
    from nndoctor.capture.replay import loss_fit

    rule = {"fraction": 0.1, "absolute": None}
    assert loss_fit(0.0, 0.0, floor=0.0, **rule)
    assert loss_fit(0.7, 0.7, floor=0.7, **rule)  # label smoothing's floor, met
    assert not loss_fit(0.0, 0.01, floor=0.0, **rule)
    assert not loss_fit(1.0, 0.5, floor=0.0, **rule) and loss_fit(1.0, 0.05, floor=0.0, **rule)


class TrainingNoise(nn.Module):
    """Noise added to the input in training mode only (Keras' GaussianNoise)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) if self.training else x


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_noise_a_layer_adds_in_training_mode_only_is_a_loss_floor() -> None:
    # Eval mode is deterministic; the tiny-batch runs train in training mode, where the
    # noise stays on (it is no dropout to switch off): the loss falls, not to a tenth.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = x.sum(1, keepdim=True)
    torch.manual_seed(0)
    model = nn.Sequential(TrainingNoise(), nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1))
    report = _overfit_on(model, x, y, nn.MSELoss(), torch.optim.Adam(model.parameters(), lr=1e-2))
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert "forward is random" in report.result("cannot-overfit-tiny-batch").detail


# Full-batch training on arrays the script holds, under a loss written by hand: the replay
# cuts the tiny batch by writing the arrays' first rows down their length. With ``{bias}``
# at -100 every ReLU is dead and the model outputs one constant.
FULL_BATCH = """
import numpy as np
import torch
from torch import nn
rng = np.random.default_rng(0)
x = rng.normal(size=(600, 4)).astype(np.float32)
y = (np.sin(2 * x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3]).astype(np.float32)
inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 1))
with torch.no_grad():
    model[0].bias.fill_({bias})
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(300):
    loss = (model(inputs) - targets).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_full_batch_training_is_replayed_on_the_first_rows_of_its_arrays(tmp_path: Path) -> None:
    report = _check_replayed(tmp_path, "full_batch.py", FULL_BATCH.replace("{bias}", "0.0"))
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert result.status.value == "passed", result.detail
    assert "the first rows of the arrays the script trains on whole" in result.detail


@pytest.mark.fires("cannot-overfit-tiny-batch")
def test_full_batch_training_that_cannot_fit_its_first_rows_is_found(tmp_path: Path) -> None:
    report = _check_replayed(tmp_path, "full_batch.py", FULL_BATCH.replace("{bias}", "-100.0"))
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert finding.evidence["method"] == "script replay (custom loss)"
    assert "first rows of the arrays" in finding.evidence["batch"]


# Full-batch contrastive learning on two fixed views: written down the arrays, the tiny
# batch's samples meet their own copies among the negatives, a floor no model gets under.
FULL_BATCH_CONTRASTIVE = """
import torch
import torch.nn.functional as F
from torch import nn
torch.manual_seed(0)
base = torch.randn(256, 16)
view1, view2 = base + 0.1 * torch.randn(256, 16), base + 0.1 * torch.randn(256, 16)
encoder = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32))
opt = torch.optim.Adam(encoder.parameters(), lr=1e-3)
for epoch in range(200):
    z1, z2 = F.normalize(encoder(view1), dim=1), F.normalize(encoder(view2), dim=1)
    loss = F.cross_entropy(z1 @ z2.T / 0.2, torch.arange(len(z1)))
    opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_contrastive_loss_over_whole_arrays_is_asked_to_learn_on_them(tmp_path: Path) -> None:
    report = _check_replayed(tmp_path, "contrastive.py", FULL_BATCH_CONTRASTIVE)
    result = report.result("cannot-overfit-tiny-batch")
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert "appears there many times over" in result.detail, result.detail
