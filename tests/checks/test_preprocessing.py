"""Augmentation strength, pretrained normalisation, and the same preprocessing for every split."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from subjects import blobs, mlp, run
from torch import nn
from torch.utils.data import DataLoader, Dataset

import nndoctor
from nndoctor.engine import Selection, check_script


class NoisyViews(Dataset):
    """Blobs with additive-noise augmentation of a chosen strength."""

    def __init__(self, strength: float) -> None:
        self.x, self.y = blobs(n=256)
        self.strength = strength

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i] + self.strength * torch.randn(10), self.y[i]


def _augmented(strength: float) -> nndoctor.Report:
    model = mlp()
    loader = DataLoader(NoisyViews(strength), batch_size=32, shuffle=True)
    return run(
        select=["augmentation-too-strong"],
        model=model,
        data=loader,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )


def _split_check(path: Path, script: str) -> nndoctor.Report:
    """``script`` written to ``path`` and checked by split-preprocessing-differs alone."""
    path.write_text(script)
    return check_script(
        str(path), steps=20, selection=Selection(select=("split-preprocessing-differs",))
    )


@pytest.mark.fires("augmentation-too-strong")
def test_augmentation_noise_larger_than_the_signal() -> None:
    (finding,) = _augmented(strength=5.0).by_check("augmentation-too-strong")
    assert finding.reasons == [13] and finding.evidence["ratio"] >= 0.9


@pytest.mark.silent("augmentation-too-strong")
def test_mild_augmentation_passes() -> None:
    report = _augmented(strength=0.1)
    assert report.by_check("augmentation-too-strong") == []
    assert "ratio" in report.result("augmentation-too-strong").detail


class PointSets(Dataset):
    """Each fetch draws a fresh set of 32 points around its class's centre: two views of
    a sample share no point, and only an order-free model sees that they are alike."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.y = torch.randint(0, 4, (256,), generator=g)
        self.centres = 0.4 * torch.randn(4, 3, generator=g)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.centres[self.y[i]] + torch.randn(32, 3), self.y[i]


class _MeanPooled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.point = nn.Sequential(nn.Linear(3, 16), nn.ReLU())
        self.head = nn.Linear(16, 4)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.point(points).mean(dim=1))  # (B, 32, 3) -> (B, 4)


@pytest.mark.silent("augmentation-too-strong")
def test_views_far_apart_in_the_tensor_that_the_model_tells_apart_pass() -> None:
    model = _MeanPooled()
    loader = DataLoader(PointSets(), batch_size=32, shuffle=True)
    report = run(
        select=["augmentation-too-strong"],
        model=model,
        data=loader,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    detail = report.result("augmentation-too-strong").detail
    assert report.by_check("augmentation-too-strong") == []
    assert "as far apart as two samples" in detail and "the views keep their label" in detail


def _conv_subject(images: torch.Tensor, pretrained: bool) -> nndoctor.Subject:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)
    )
    y = torch.randint(0, 2, (len(images),), generator=torch.Generator().manual_seed(0))
    data = [(images[i : i + 16], y[i : i + 16]) for i in range(0, len(images), 16)]
    return nndoctor.Subject(
        model=model, batches=data, criterion=nn.CrossEntropyLoss(), pretrained=pretrained
    )


@pytest.mark.fires("pretrained-normalization-mismatch")
def test_raw_unit_range_pixels_into_a_pretrained_model() -> None:
    images = torch.rand(
        64, 3, 16, 16, generator=torch.Generator().manual_seed(0)
    )  # the bug: not normalised
    report = nndoctor.check_subject(
        _conv_subject(images, pretrained=True),
        selection=Selection(select=("pretrained-normalization-mismatch",)),
    )
    (finding,) = report.by_check("pretrained-normalization-mismatch")
    assert finding.reasons == [14] and "raw [0, 1]" in finding.message


@pytest.mark.silent("pretrained-normalization-mismatch")
def test_imagenet_normalised_inputs_pass() -> None:
    raw = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    images = (raw * 0.5 + 0.25 - mean) / std  # natural-image-like statistics after normalisation
    images = (images - images.mean((0, 2, 3), keepdim=True)) / images.std((0, 2, 3), keepdim=True)
    report = nndoctor.check_subject(
        _conv_subject(images, pretrained=True),
        selection=Selection(select=("pretrained-normalization-mismatch",)),
    )
    assert report.by_check("pretrained-normalization-mismatch") == []


PRETEXT_THEN_PROBE = """
import io, torch, torch.nn as nn
torch.manual_seed(0)
images = torch.rand(256, 3, 8, 8)  # pixels in [0, 1]: this run's own preprocessing
labels = (images[:, 0].mean((1, 2)) > images[:, 2].mean((1, 2))).long()

def encoder(width):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())

def train(model, optimizer, steps, scale=1.0):
    for step in range(steps):
        i = torch.randint(0, 256, (32,))
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images[i] * scale), labels[i]).backward()
        optimizer.step()

pretext = nn.Sequential(encoder(8), nn.Linear(8, 2))
train(pretext, torch.optim.Adam(pretext.parameters(), 1e-2), 30)
saved = io.BytesIO()
torch.save({checkpoint}.state_dict(), saved)
saved.seek(0)
probe_encoder = encoder({width})
{load}
probe_encoder.requires_grad_(False)
head = nn.Linear({width}, 2)
train(nn.Sequential(probe_encoder, head), torch.optim.Adam(head.parameters(), 1e-2), 30, {scale})
"""


def _pretext_then_probe(
    tmp_path: Path, checkpoint: str, width: int, scale: float = 1.0, renamed: bool = False
) -> nndoctor.Report:
    path = tmp_path / "probe.py"
    load = "probe_encoder.load_state_dict(torch.load(saved))"
    if renamed:  # the keys handed over under another prefix, as to a SimCLR classifier
        load = (
            "wrapper = nn.Module()\nwrapper.backbone = probe_encoder\n"
            "wrapper.load_state_dict({'backbone.' + k: v for k, v in torch.load(saved).items()})"
        )
    script = PRETEXT_THEN_PROBE.format(checkpoint=checkpoint, width=width, scale=scale, load=load)
    path.write_text(script)
    return check_script(
        str(path), steps=10, selection=Selection(select=("pretrained-normalization-mismatch",))
    )


@pytest.mark.silent("pretrained-normalization-mismatch")
def test_a_probe_on_the_encoder_this_run_trained_is_not_a_pretrained_model(
    tmp_path: Path,
) -> None:
    report = _pretext_then_probe(tmp_path, checkpoint="pretext[0]", width=8)
    assert report.by_check("pretrained-normalization-mismatch") == []
    (second,) = [
        c for c in report.checks if c.phase == 2 and c.check == "pretrained-normalization-mismatch"
    ]
    assert "checkpoint of the network the earlier phase trained" in second.detail
    assert "preprocessed alike" in second.detail


@pytest.mark.silent("pretrained-normalization-mismatch")
def test_the_encoder_this_run_trained_handed_over_under_another_prefix_is_its_own(
    tmp_path: Path,
) -> None:
    report = _pretext_then_probe(tmp_path, checkpoint="pretext[0]", width=8, renamed=True)
    assert report.by_check("pretrained-normalization-mismatch") == []
    (second,) = [
        c for c in report.checks if c.phase == 2 and c.check == "pretrained-normalization-mismatch"
    ]
    assert "checkpoint of the network the earlier phase trained" in second.detail


@pytest.mark.fires("pretrained-normalization-mismatch")
def test_a_probe_fed_pixels_scaled_apart_from_its_pretext_task(tmp_path: Path) -> None:
    report = _pretext_then_probe(tmp_path, checkpoint="pretext[0]", width=8, scale=255.0)
    (finding,) = report.by_check("pretrained-normalization-mismatch")
    assert finding.where.phase == 2 and finding.reasons == [14]
    assert finding.evidence["std_ratio"] > 100


@pytest.mark.fires("pretrained-normalization-mismatch")
def test_a_checkpoint_the_run_did_not_train_loaded_before_the_probe_is_pretrained(
    tmp_path: Path,
) -> None:
    # A wider network's weights (a downloaded model, here saved by the script itself):
    # nothing the first phase trained has its shapes.
    report = _pretext_then_probe(tmp_path, checkpoint="encoder(16)", width=16)
    (finding,) = report.by_check("pretrained-normalization-mismatch")
    assert finding.where.phase == 2 and "raw [0, 1]" in finding.message


SPLIT_SCRIPT = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
X = torch.randn(600, 8) * 3 + 5
y = (X[:, 0] > 5).long()
mean, std = X[:500].mean(0), X[:500].std(0)
Xtr = (X[:500] - mean) / std
Xva = {val}
train = DataLoader(TensorDataset(Xtr, y[:500]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(Xva, y[{labels}]), batch_size=100)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for epoch in range(5):
    for xb, yb in train:
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val_loss = sum(nn.functional.cross_entropy(model(xb), yb).item() for xb, yb in val)
    model.train()
"""


def _split(tmp_path: Path, val: str, labels: str) -> nndoctor.Report:
    script = textwrap.dedent(SPLIT_SCRIPT.format(val=val, labels=labels))
    return _split_check(tmp_path / "train.py", script)


@pytest.mark.fires("split-preprocessing-differs")
def test_validation_split_left_unnormalised(tmp_path: Path) -> None:
    report = _split(tmp_path, val="X[500:]", labels="500:")
    (finding,) = report.by_check("split-preprocessing-differs")
    assert finding.reasons == [15] and finding.evidence["max_mean_shift_in_std"] > 1


def test_validation_samples_shared_with_training(tmp_path: Path) -> None:
    report = _split(tmp_path, val="Xtr[300:]", labels="300:500")
    shared = [f for f in report.by_check("split-preprocessing-differs") if "shared" in f.title]
    assert shared and shared[0].severity.value == "error" and shared[0].evidence["shared"] > 0


@pytest.mark.silent("split-preprocessing-differs")
def test_same_normalisation_and_disjoint_splits_pass(tmp_path: Path) -> None:
    report = _split(tmp_path, val="(X[500:] - mean) / std", labels="500:")
    assert report.by_check("split-preprocessing-differs") == []
    assert "evaluation forwards" in report.result("split-preprocessing-differs").detail


EVALUATED_AT_EPOCH_END = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
X = torch.randn(600, 8) * 3 + 5
y = (X[:, 0] > 5).long()
mean, std = X[:500].mean(0), X[:500].std(0)
# 63 steps an epoch: the evaluation comes after the 20 observed steps.
train = DataLoader(TensorDataset((X[:500] - mean) / std, y[:500]), batch_size=8, shuffle=True)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for epoch in range(3):
    for xb, yb in train:
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val_loss = nn.functional.cross_entropy(model({val}), y[500:]).item()
    model.train()
"""


@pytest.mark.fires("split-preprocessing-differs")
def test_an_unnormalised_validation_set_evaluated_after_the_budget_is_found(
    tmp_path: Path,
) -> None:
    # The script is followed past its budget to its first evaluation pass; the inputs of
    # that pass are evaluation data like any seen within the budget.
    script = textwrap.dedent(EVALUATED_AT_EPOCH_END.format(val="X[500:]"))
    (finding,) = _split_check(tmp_path / "train.py", script).by_check("split-preprocessing-differs")
    assert finding.reasons == [15] and finding.evidence["max_mean_shift_in_std"] > 1


@pytest.mark.silent("split-preprocessing-differs")
def test_a_validation_set_normalised_alike_and_evaluated_after_the_budget_passes(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(EVALUATED_AT_EPOCH_END.format(val="(X[500:] - mean) / std"))
    report = _split_check(tmp_path / "train.py", script)
    assert report.by_check("split-preprocessing-differs") == []
    assert "evaluation forwards" in report.result("split-preprocessing-differs").detail


TRAINING_ACCURACY_TOO = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
X = torch.randn(600, 8)
y = (X[:, 0] > 0).long()
Xtr = {train}
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for epoch in range(4):
    for xb, yb in {batches}:
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        # The training accuracy over the training array itself, then the validation's.
        train_acc = (model(Xtr).argmax(1) == y[:500]).float().mean().item()
        val_acc = (model({val}).argmax(1) == y[-len({val}):]).float().mean().item()
    model.train()
"""
LOADER = "DataLoader(TensorDataset(Xtr, y[:500]), batch_size=50, shuffle=True)"
SLICES = "((Xtr[i : i + 50], y[i : i + 50]) for i in range(0, 500, 50))"


@pytest.mark.silent("split-preprocessing-differs")
def test_a_training_accuracy_over_the_loaders_own_array_is_no_leak(tmp_path: Path) -> None:
    script = TRAINING_ACCURACY_TOO.format(train="X[:500]", batches=LOADER, val="X[500:]")
    report = _split_check(tmp_path / "train.py", textwrap.dedent(script))
    assert report.by_check("split-preprocessing-differs") == []
    assert "training data's own array" in report.result("split-preprocessing-differs").detail


def test_a_training_accuracy_over_the_array_batches_are_sliced_from_is_no_leak(
    tmp_path: Path,
) -> None:
    script = TRAINING_ACCURACY_TOO.format(train="X[:500].clone()", batches=SLICES, val="X[500:]")
    report = _split_check(tmp_path / "train.py", textwrap.dedent(script))
    assert report.by_check("split-preprocessing-differs") == []
    assert "training data's own array" in report.result("split-preprocessing-differs").detail


@pytest.mark.fires("split-preprocessing-differs")
def test_a_validation_slice_overlapping_the_training_rows_still_leaks(tmp_path: Path) -> None:
    # Cut from the same array as the training rows and reaching into them: not within the
    # training array, so its shared samples are counted.
    script = TRAINING_ACCURACY_TOO.format(train="X[:500]", batches=LOADER, val="X[400:]")
    report = _split_check(tmp_path / "train.py", textwrap.dedent(script))
    (finding,) = report.by_check("split-preprocessing-differs")
    assert finding.title == "Samples shared between training and evaluation"
    assert finding.evidence["shared"] >= 90


PASS_OVER_A_LOADER = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
X = torch.randn(600, 8)
y = (X[:, 0] > 0).long()
train_set = TensorDataset(X[:500].clone(), y[:500].clone())
measured = DataLoader({measured}, batch_size=100)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for epoch in range(4):
    model.eval()
    with torch.no_grad():
        hits = sum((model(xb).argmax(1) == yb).sum().item() for xb, yb in measured)
    model.train()
    for xb, yb in DataLoader(train_set, batch_size=50, shuffle=True):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
"""


@pytest.mark.silent("split-preprocessing-differs")
def test_a_pass_over_another_loader_of_the_training_dataset_is_no_leak(tmp_path: Path) -> None:
    # A training accuracy, or a statistic of the training data (Deep SVDD's centre), read
    # through a loader of its own over the very dataset the training loader draws from.
    script = PASS_OVER_A_LOADER.format(measured="train_set")
    report = _split_check(tmp_path / "train.py", textwrap.dedent(script))
    assert report.by_check("split-preprocessing-differs") == []
    assert "training data's own array" in report.result("split-preprocessing-differs").detail


@pytest.mark.fires("split-preprocessing-differs")
def test_a_loader_over_other_rows_that_overlap_the_training_rows_leaks(tmp_path: Path) -> None:
    script = PASS_OVER_A_LOADER.format(measured="TensorDataset(X[400:], y[400:])")
    (finding,) = _split_check(tmp_path / "train.py", textwrap.dedent(script)).by_check(
        "split-preprocessing-differs"
    )
    assert finding.title == "Samples shared between training and evaluation"


FULL_BATCH_VALIDATION = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
X = 3 * torch.randn(800, 8) + torch.arange(8.0)
y = (X[:, 0] > 0).float().unsqueeze(1)
mean, std = X[:600].mean(0), X[:600].std(0)
Xtr = {train}
Xva = {val}
loader = DataLoader(TensorDataset(Xtr, y[:600]), batch_size=50, shuffle=True)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for epoch in range(3):
    for xb, yb in loader:
        opt.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(xb), yb).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        train_loss = nn.functional.binary_cross_entropy_with_logits(model(Xtr), y[:600])
        val_loss = nn.functional.binary_cross_entropy_with_logits(model(Xva), y[600:])
    model.train()
"""
OWN_SCALER = "(X[:600] - mean) / std"


def test_a_validation_batch_standardised_with_its_own_statistics_gets_a_note(
    tmp_path: Path,
) -> None:
    # Evaluated in one forward, not through a DataLoader: the forward's input is exact. A
    # note only: a generator that standardises each split it makes looks the same.
    val = "(X[600:] - X[600:].mean(0)) / X[600:].std(0)"
    script = FULL_BATCH_VALIDATION.format(train=OWN_SCALER, val=val)
    report = _split_check(tmp_path / "val.py", textwrap.dedent(script))
    (finding,) = report.by_check("split-preprocessing-differs")
    assert "statistics of its own" in finding.title and finding.severity.value == "info"
    assert finding.evidence["shape"] == [200, 8] and finding.evidence["probability"] < 1e-10


@pytest.mark.silent("split-preprocessing-differs")
def test_a_validation_batch_standardised_with_the_training_statistics_passes(
    tmp_path: Path,
) -> None:
    script = FULL_BATCH_VALIDATION.format(train=OWN_SCALER, val="(X[600:] - mean) / std")
    report = _split_check(tmp_path / "val.py", textwrap.dedent(script))
    assert report.by_check("split-preprocessing-differs") == []
    assert report.result("split-preprocessing-differs").status == "passed"


def test_a_training_accuracy_on_a_copy_of_the_exact_training_array_is_not_judged_exact(
    tmp_path: Path,
) -> None:
    # The training split is fitted exactly by its own scaler; read from the loader's array
    # it is the training data, however exact.
    script = FULL_BATCH_VALIDATION.format(train=OWN_SCALER, val="(X[600:] - mean) / std")
    script = script.replace("model(Xtr)", "model(loader.dataset.tensors[0])")
    report = _split_check(tmp_path / "val.py", textwrap.dedent(script))
    assert report.by_check("split-preprocessing-differs") == []


def test_a_scheme_that_standardises_every_batch_is_no_own_statistics(tmp_path: Path) -> None:
    # Every batch standardised with its own statistics, in training as in evaluation: the
    # training batches are exact too, so the evaluation's exactness is the scheme's.
    per_batch = "(X[600:] - X[600:].mean(0)) / X[600:].std(0)"
    script = FULL_BATCH_VALIDATION.format(train=OWN_SCALER, val=per_batch).replace(
        "model(xb)", "model((xb - xb.mean(0)) / xb.std(0))"
    )
    report = _split_check(tmp_path / "val.py", textwrap.dedent(script))
    assert not [f for f in report.by_check("split-preprocessing-differs") if "own" in f.title]


TEACHER_THEN_STUDENT = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
X = torch.randn(3000, 8)
y = (X[:, 0] > 0).long()
train = DataLoader(TensorDataset(X[:2500], y[:2500]), batch_size=64, shuffle=True)


def fit_teacher(teacher, epochs):
    opt = torch.optim.Adam(teacher.parameters(), 1e-3)
    for epoch in range(epochs):
        for xb, yb in train:
            opt.zero_grad()
            nn.functional.cross_entropy(teacher(xb), yb).backward()
            opt.step()


class Distiller(nn.Module):
    def __init__(self, student, teacher):
        super().__init__()
        self.student, self.teacher = student, teacher.requires_grad_(False)

    def forward(self, x, y):
        with torch.no_grad():  # the frozen teacher scores the training batch
            soft = self.teacher(x).softmax(1)
        logits = self.student(x)
        return nn.functional.cross_entropy(logits, soft) + nn.functional.cross_entropy(logits, y)


teacher = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
fit_teacher(teacher, 2)
teacher.eval()
with torch.no_grad():
    print("teacher", (teacher(X[2500:]).argmax(1) == y[2500:]).float().mean().item())
distiller = Distiller(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)), teacher)
opt = torch.optim.SGD(distiller.student.parameters(), 0.1)
for epoch in range(2):
    for xb, yb in train:
        loss = distiller(xb, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


def test_a_frozen_teacher_scoring_training_batches_past_the_budget_is_no_evaluation(
    tmp_path: Path,
) -> None:
    # Past the budget, the first model's no-grad forwards count as an evaluation pass only
    # if that model trains again before any optimizer steps; here another network steps
    # on the teacher's scores of training batches, so nothing is evaluation data.
    script = textwrap.dedent(TEACHER_THEN_STUDENT)
    report = _split_check(tmp_path / "train.py", script)
    assert report.by_check("split-preprocessing-differs") == []


SEMI_SUPERVISED_SCRIPT = """
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
X = torch.randn(600, 8)
y = (X[:, 0] > 0).long()
# A few labelled samples, repeated to fill an epoch, and all training samples unlabelled
# (the labelled ones among them, as in FixMatch): two sources of every training step.
labelled = DataLoader(TensorDataset(X[:40].repeat(10, 1), y[:40].repeat(10)), batch_size=16,
                      shuffle=True, drop_last=True)
unlabelled = DataLoader(TensorDataset(X[:500], y[:500]), batch_size=64, shuffle=True,
                        drop_last=True)
val = DataLoader(TensorDataset(X[500:], y[500:]), batch_size=100)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), 1e-3)
li, ui = iter(labelled), iter(unlabelled)
for step in range(60):
    try:
        xl, yl = next(li)
    except StopIteration:
        li = iter(labelled)
        xl, yl = next(li)
    try:
        xu, _ = next(ui)
    except StopIteration:
        ui = iter(unlabelled)
        xu, _ = next(ui)
    logits = model(torch.cat([xl, xu]))
    pseudo = logits[16:].detach().argmax(1)
    loss = F.cross_entropy(logits[:16], yl) + 0.5 * F.cross_entropy(logits[16:], pseudo)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 10 == 9:
        with torch.no_grad():
            val_loss = sum(F.cross_entropy(model(xb), yb).item() for xb, yb in val)
"""


@pytest.mark.silent("split-preprocessing-differs")
def test_a_second_loader_feeding_every_step_is_a_training_source(tmp_path: Path) -> None:
    report = _split_check(tmp_path / "train.py", textwrap.dedent(SEMI_SUPERVISED_SCRIPT))
    detail = report.result("split-preprocessing-differs").detail
    assert report.by_check("split-preprocessing-differs") == []
    assert "evaluation forwards" in detail and "stored rows of loader 0" not in detail


FULL_GRAPH_SCRIPT = """
import torch
from torch import nn
torch.manual_seed(0)
n = 200
labels = torch.randint(0, 3, (n,))
features = torch.randn(n, 16) + nn.functional.one_hot(labels, 3).float().repeat(1, 6)[:, :16]
adj = (torch.rand(n, n) < 0.05).float() + torch.eye(n)
adj = adj / adj.sum(1, keepdim=True)
train_mask, val_mask = torch.arange(n) < 120, torch.arange(n) >= 120


class GCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(16, 32), nn.Linear(32, 3)

    def forward(self, x):
        return adj @ self.lin2(torch.relu(adj @ self.lin1(x)))


model = GCN()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(40):
    model.train()
    opt.zero_grad()
    out = model(features)
    nn.functional.cross_entropy(out[train_mask], labels[train_mask]).backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        val_acc = (model(features)[val_mask].argmax(1) == labels[val_mask]).float().mean()
"""


@pytest.mark.silent("split-preprocessing-differs")
def test_a_graph_trained_in_full_and_evaluated_by_node_masks_shares_no_samples(
    tmp_path: Path,
) -> None:
    # Transductive node classification: every step and every evaluation reads all the
    # nodes; the split is the masks on the outputs, so the shared inputs are by design.
    path = tmp_path / "gcn.py"
    path.write_text(textwrap.dedent(FULL_GRAPH_SCRIPT))
    report = check_script(
        str(path), steps=10, selection=Selection(select=("split-preprocessing-differs",))
    )
    assert report.by_check("split-preprocessing-differs") == []
    assert "re-read the one full batch" in report.result("split-preprocessing-differs").detail


@pytest.mark.silent("split-preprocessing-differs")
def test_a_validation_period_shifted_with_the_same_spread_is_a_note(tmp_path: Path) -> None:
    # The same normalisation on both splits, the later period's level 0.8 stds higher (a
    # trend in a chronological split): the data moved, not their preprocessing.
    report = _split(tmp_path, val="(X[500:] - mean) / std + 0.8", labels="500:")
    (note,) = report.by_check("split-preprocessing-differs")
    assert note.severity.value == "info" and "spread alike" in note.title
    assert note.evidence["max_std_ratio"] < 2 and note.evidence["max_mean_shift_in_std"] > 0.5


CLUSTER_SCRIPT = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
g = torch.Generator().manual_seed({seed})
centers = torch.randn(4, 16, generator=g) * 1.5
y = torch.arange(2560) % 4
X = centers[y] + torch.randn(2560, 16, generator=g)
mean, std = X[:2048].mean(0), X[:2048].std(0)
Xtr = (X[:2048] - mean) / std
Xva = {val}
train = DataLoader(TensorDataset(Xtr, y[:2048]), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(Xva, y[2048:]), batch_size=256)
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for xb, yb in train:  # one epoch of 32 steps: no evaluation within the 20 observed
    opt.zero_grad()
    nn.functional.cross_entropy(model(xb), yb).backward()
    opt.step()
"""


def _clusters(tmp_path: Path, val: str, seed: int) -> nndoctor.Report:
    return _split_check(
        tmp_path / f"train_{seed}.py", textwrap.dedent(CLUSTER_SCRIPT.format(val=val, seed=seed))
    )


@pytest.mark.silent("split-preprocessing-differs")
@pytest.mark.parametrize("seed", [0, 4, 5])
def test_sampling_noise_of_a_clustered_dataset_is_not_a_split_difference(
    tmp_path: Path, seed: int
) -> None:
    # Four clusters 1.5 apart: the means of two samples of the splits differ by chance.
    report = _clusters(tmp_path, "(X[2048:] - mean) / std", seed)
    assert report.by_check("split-preprocessing-differs") == []
    assert "dataset of loader" in report.result("split-preprocessing-differs").detail


@pytest.mark.fires("split-preprocessing-differs")
def test_an_unnormalised_validation_dataset_is_found_without_an_evaluation_pass(
    tmp_path: Path,
) -> None:
    report = _clusters(tmp_path, "X[2048:] * 3 + 2", 1)
    (finding,) = report.by_check("split-preprocessing-differs")
    assert "loader 1" in finding.message


@pytest.mark.fires("split-preprocessing-differs")
def test_a_validation_set_stored_from_training_rows_is_found_without_an_evaluation_pass(
    tmp_path: Path,
) -> None:
    # The validation tensors are training rows: no evaluation forward runs in 20 steps, but
    # the datasets store the same rows.
    report = _clusters(tmp_path, "Xtr[:512]", 2)
    shared = [f for f in report.by_check("split-preprocessing-differs") if "shared" in f.title]
    assert shared and shared[0].reasons == [15] and shared[0].severity.value == "error"
    assert shared[0].evidence["binomial_p"] < 0.01
    assert "loader 1" in shared[0].message


# A table split by rows into a training and a validation loader; ``{data}`` makes X and y.
TABLE_SPLITS = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
g = torch.Generator().manual_seed(0)
{data}
train = DataLoader(TensorDataset(X[:2048], y[:2048]), batch_size=64, shuffle=True)
val = DataLoader(TensorDataset(X[2048:], y[2048:]), batch_size=256)
model = nn.Sequential(nn.Linear(X.shape[1], 16), nn.ReLU(), nn.Linear(16, int(y.max()) + 1))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for xb, yb in train:
    opt.zero_grad()
    nn.functional.cross_entropy(model(xb), yb).backward()
    opt.step()
"""

DISCRETE_SCRIPT = TABLE_SPLITS.format(
    data="""
X = torch.randint(0, 2, (2560, 4), generator=g).float()  # 16 distinct rows: repeats are normal
y = (X.sum(1) > 1).long()
"""
)


@pytest.mark.silent("split-preprocessing-differs")
def test_rows_repeated_by_nature_are_not_taken_for_shared_samples(tmp_path: Path) -> None:
    report = _split_check(tmp_path / "discrete.py", DISCRETE_SCRIPT)
    assert report.by_check("split-preprocessing-differs") == []
    assert "stored rows of loader 1" in report.result("split-preprocessing-differs").detail


# Twelve columns of three skewed levels, evaluated every five steps: most rows are unique,
# a few repeat by nature, in training and between the splits alike. ``{copies}`` rows of
# the validation part are replaced by training rows.
SKEWED_TABLE = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
g = torch.Generator().manual_seed(17)
p = torch.tensor([1.0, 2 ** -0.8, 3 ** -0.8])
X = torch.multinomial(p, 2560 * 12, replacement=True, generator=g).view(2560, 12).float()
y = (X[:, :3].sum(1) > 1).long()
X[2048:2048 + {copies}] = X[:{copies}]
train = DataLoader(TensorDataset(X[:2048], y[:2048]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(X[2048:], y[2048:]), batch_size=256)
model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for step, (xb, yb) in enumerate(train):
    opt.zero_grad()
    nn.functional.cross_entropy(model(xb), yb).backward()
    opt.step()
    if step % 5 == 4:
        with torch.no_grad():
            val_loss = sum(nn.functional.cross_entropy(model(vx), vy).item() for vx, vy in val)
"""


@pytest.mark.silent("split-preprocessing-differs")
def test_rare_natural_repeats_across_splits_are_no_leak(tmp_path: Path) -> None:
    # 6 of 510 evaluation rows meet a training row, 2 of 639 training rows meet one of
    # another step: taken as a known rate, 0.3% made 6 a leak (binomial p = 0.006).
    report = _split_check(tmp_path / "table.py", SKEWED_TABLE.format(copies=0))
    assert report.by_check("split-preprocessing-differs") == []
    assert "2 of 639" in report.result("split-preprocessing-differs").detail


@pytest.mark.fires("split-preprocessing-differs")
def test_copied_rows_stand_out_from_natural_repeats(tmp_path: Path) -> None:
    report = _split_check(tmp_path / "table.py", SKEWED_TABLE.format(copies=200))
    shared = [f for f in report.by_check("split-preprocessing-differs") if "shared" in f.title]
    assert shared and shared[0].severity.value == "error"
    assert shared[0].evidence["binomial_p"] < 1e-3


@pytest.mark.silent("split-preprocessing-differs")
def test_a_second_loader_over_the_training_rows_is_no_leak(tmp_path: Path) -> None:
    # Training accuracy measured through a loader of its own over the same rows.
    script = CLUSTER_SCRIPT.format(val="Xtr", seed=3).replace("y[2048:]", "y[:2048]")
    report = _split_check(tmp_path / "train_acc.py", textwrap.dedent(script))
    assert report.by_check("split-preprocessing-differs") == []
    assert report.result("split-preprocessing-differs").status == "passed"


@pytest.mark.fires("split-preprocessing-differs")
def test_validation_standardised_with_its_own_statistics(tmp_path: Path) -> None:
    report = _clusters(tmp_path, "(X[2048:] - X[2048:].mean(0)) / X[2048:].std(0)", 0)
    (finding,) = report.by_check("split-preprocessing-differs")
    assert finding.reasons == [15] and "their own statistics" in finding.message
    assert finding.evidence["probability"] < 0.01


@pytest.mark.fires("split-preprocessing-differs")
def test_validation_standardised_over_n_as_scikit_learn_does_is_found(tmp_path: Path) -> None:
    # StandardScaler and numpy divide by the std over n, torch's std by the one over n - 1.
    val = "(X[2048:] - X[2048:].mean(0)) / X[2048:].std(0, correction=0)"
    report = _clusters(tmp_path, val, 0)
    (finding,) = report.by_check("split-preprocessing-differs")
    assert "their own statistics" in finding.message


WINDOWS = """
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
g = torch.Generator().manual_seed(0)
t = torch.arange(3000.0)
series = torch.stack([torch.sin(t / 20) * 3 + 0.002 * t, torch.cos(t / 7) + 10], 1)
series = series + 0.3 * torch.randn(series.shape, generator=g)
train_raw, val_raw = series[:2400], series[2400:]
lo, hi = train_raw.min(0).values, train_raw.max(0).values
train_scaled = (train_raw - lo) / (hi - lo)
val_scaled = {val}

class Windows(Dataset):
    def __init__(self, data, window=24):
        self.data, self.window = data, window
    def __len__(self):
        return len(self.data) - self.window
    def __getitem__(self, i):
        return self.data[i : i + self.window], self.data[i + self.window, :1]

train = DataLoader(Windows(train_scaled), batch_size=64, shuffle=True)
val = DataLoader(Windows(val_scaled), batch_size=256)
model = nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 1))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for x, y in train:
    opt.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    opt.step()
"""


@pytest.mark.fires("split-preprocessing-differs")
def test_a_validation_series_min_max_scaled_with_its_own_range_is_found(tmp_path: Path) -> None:
    # The scaler refit on the validation part (fit_transform instead of transform).
    own = "(val_raw - val_raw.min(0).values) / (val_raw.max(0).values - val_raw.min(0).values)"
    report = _split_check(tmp_path / "refit.py", WINDOWS.format(val=own))
    (finding,) = report.by_check("split-preprocessing-differs")
    assert "extremes at exactly the ends" in finding.message
    assert finding.evidence["probability"] < 0.01


@pytest.mark.silent("split-preprocessing-differs")
def test_a_validation_series_scaled_with_the_training_range_passes(tmp_path: Path) -> None:
    report = _split_check(tmp_path / "windows.py", WINDOWS.format(val="(val_raw - lo) / (hi - lo)"))
    # The trend moves the later period's mean: a note at most, as for any chronological split.
    found = report.by_check("split-preprocessing-differs")
    assert [f.severity.value for f in found] in ([], ["info"])
    assert "normalisation of loader 1" in report.result("split-preprocessing-differs").detail


EIGHT_BIT = TABLE_SPLITS.format(
    data="""
images = torch.randint(0, 256, (2560, 48), generator=g).float()
images[::7] = 255.0  # saturated
images[::11] = 0.0
X, y = images / 255.0, torch.arange(2560) % 4
"""
)


@pytest.mark.silent("split-preprocessing-differs")
def test_eight_bit_images_divided_by_255_reach_0_and_1_in_every_split(tmp_path: Path) -> None:
    report = _split_check(tmp_path / "pixels.py", EIGHT_BIT)
    assert report.by_check("split-preprocessing-differs") == []
    assert "normalisation of loader 1" in report.result("split-preprocessing-differs").detail


CLIPPED = TABLE_SPLITS.format(
    data="""
y = torch.arange(2560) % 4
X = (torch.rand(4, 48, generator=g)[y] + 0.35 * torch.randn(2560, 48, generator=g)).clamp(0, 1)
"""
)


@pytest.mark.silent("split-preprocessing-differs")
def test_values_clipped_to_a_fixed_range_reach_its_ends_in_every_split(tmp_path: Path) -> None:
    # Clipped to [0, 1], every column of every split piles up at exactly 0 and 1: a fixed
    # range, not one fitted to the split.
    report = _split_check(tmp_path / "clipped.py", CLIPPED)
    assert report.by_check("split-preprocessing-differs") == []
    assert "normalisation of loader 1" in report.result("split-preprocessing-differs").detail


WHOLE_DATA_SCRIPT = TABLE_SPLITS.format(
    data="""
y = torch.arange(2560) % 4
X = torch.randn(4, 16, generator=g)[y] * 1.5 + torch.randn(2560, 16, generator=g) + 3
X = (X - X.mean(0)) / X.std(0)  # statistics of all the data, validation included
"""
)


@pytest.mark.fires("split-preprocessing-differs")
def test_standardisation_fitted_on_all_the_data(tmp_path: Path) -> None:
    report = _split_check(tmp_path / "whole.py", WHOLE_DATA_SCRIPT)
    (finding,) = report.by_check("split-preprocessing-differs")
    assert "evaluation included" in finding.message


LIST_DATASETS = """
import torch
from torch import nn
from torch.utils.data import DataLoader
g = torch.Generator().manual_seed(0)
x = torch.randn(600, 8, generator=g)
y = (x[:, 0] > 0).long()
samples = list(zip(x, y))  # datasets as plain lists of (input, label) pairs
train = DataLoader(samples[:500], batch_size=32, shuffle=True)
val = DataLoader(samples[500:], batch_size=100)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), 1e-2)
for epoch in range(2):
    for xb, yb in train:
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    with torch.no_grad():
        for xb, yb in val:
            model(xb)
"""


@pytest.mark.silent("split-preprocessing-differs")
def test_datasets_kept_as_plain_lists_are_compared_not_crashed(tmp_path: Path) -> None:
    path = tmp_path / "lists.py"
    path.write_text(textwrap.dedent(LIST_DATASETS))
    select = Selection(select=("split-preprocessing-differs",))
    report = check_script(str(path), steps=20, phase_steps=0, selection=select)
    assert report.result("split-preprocessing-differs").status.value == "passed"


ROLLOUT_SCRIPT = """
import torch
from torch import nn
g = torch.Generator().manual_seed(0)
states = torch.eye(36)[torch.randint(0, 36, (4000,), generator=g)]  # one-hot grid cells
model = nn.Sequential(nn.Linear(36, 32), nn.Tanh(), nn.Linear(32, 5))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for update in range(40):
    rollout = states[update * 16 : (update + 1) * 16]
    with torch.no_grad():  # acting: choose actions, then train on the same states
        actions = torch.distributions.Categorical(logits=model(rollout)[:, :4]).sample()
        bootstrap = model(states[(update + 1) * 16 : (update + 2) * 16])[:, 4]
    out = model(rollout)
    returns = torch.ones(16) + bootstrap.mean()
    loss = nn.functional.cross_entropy(out[:, :4], actions) + (out[:, 4] - returns).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


@pytest.mark.silent("split-preprocessing-differs")
def test_no_grad_forwards_on_states_trained_on_next_are_no_evaluation(tmp_path: Path) -> None:
    # A2C-style: the no-grad forwards choose actions on a rollout and bootstrap a value on
    # the next rollout's first states; all are trained on at that step or the next.
    report = _split_check(tmp_path / "rollout.py", ROLLOUT_SCRIPT)
    assert report.by_check("split-preprocessing-differs") == []
    result = report.result("split-preprocessing-differs")
    assert result.status == "passed" and "prepare training" in result.detail


@pytest.mark.silent("split-preprocessing-differs")
def test_evaluation_states_of_a_small_world_recur_in_training_by_nature(tmp_path: Path) -> None:
    # A greedy evaluation every ten updates on fresh states of the same 36 cells: each one
    # is a cell trained on before, as every training state is, which is no leak.
    script = ROLLOUT_SCRIPT + textwrap.dedent("""
        if update % 10 == 9:
            with torch.no_grad():
                model(torch.eye(36)[torch.randint(0, 36, (64,), generator=g)]).argmax(1)
    """).replace("\n", "\n    ")
    report = _split_check(tmp_path / "greedy.py", script)
    assert report.by_check("split-preprocessing-differs") == []
    assert (
        "recurs at another step of the first epoch"
        in report.result("split-preprocessing-differs").detail
    )


# A momentum encoder started as a copy of the model it follows, by ``load_state_dict`` of
# the model's own state in memory; or the model itself loading a state from a file.
COPIED_IN_MEMORY = """
import io, torch, torch.nn as nn
torch.manual_seed(0)
images = torch.rand(256, 3, 8, 8)  # pixels in [0, 1]
labels = (images[:, 0].mean((1, 2)) > images[:, 2].mean((1, 2))).long()

def encoder():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))

model, follower = encoder(), encoder()
saved = io.BytesIO()
torch.save(encoder().state_dict(), saved)
saved.seek(0)
{load}
optimizer = torch.optim.Adam(model.parameters(), 1e-2)
for step in range(20):
    i = torch.randint(0, 256, (32,))
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(images[i]), labels[i]).backward()
    optimizer.step()
    with torch.no_grad():
        for f, m in zip(follower.parameters(), model.parameters()):
            f.mul_(0.9).add_(m, alpha=0.1)
"""


@pytest.mark.parametrize(
    ("load", "status"),
    [
        ("follower.load_state_dict(model.state_dict())", "skipped"),
        ("model.load_state_dict(torch.load(saved))", "failed"),
    ],
)
def test_a_copy_of_the_model_loaded_in_memory_is_not_a_pretrained_model(
    tmp_path: Path, load: str, status: str
) -> None:
    path = tmp_path / "follow.py"
    path.write_text(COPIED_IN_MEMORY.format(load=load))
    report = check_script(
        str(path), steps=10, selection=Selection(select=("pretrained-normalization-mismatch",))
    )
    result = report.result("pretrained-normalization-mismatch")
    assert result.status.value == status, result.detail
    assert ("handed on in memory" in result.detail) == (status == "skipped")
