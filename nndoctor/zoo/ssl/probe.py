"""The linear-probe protocol: how good are the features a pretext task taught?

As in the evaluation tables of Zhang et al. 2016/2017 and Noroozi & Favaro
2016 (after Zhang's "linear classification on frozen conv layers"): train a
trunk on its pretext task, *freeze* it, and train only a linear classifier on
labelled data — here the object class of the scenes — on top of the features
of each stage. The same is done for a trunk with random weights (the floor)
and for a trunk trained with the labels themselves (the ceiling).

Features of a stage are average-pooled to ``PROBE_GRID``×``PROBE_GRID`` cells
and flattened (the papers resize every layer's features to ~9000 dimensions
the same way); ``pool`` is the global average of conv4. Each feature is
standardised with the training split's statistics, then a linear classifier
is trained full-batch with Adam and scored on a held-out split of new scenes.

Every trunk is probed in eval mode (BatchNorm uses its running statistics;
the random trunk's are the initial ones).

Reading the table: conv1 is one 3×3 convolution on the pixels, and a probe on
it reads the scenes' colour layout about as well from random filters as from
trained ones (as in the published tables, where random init is close to the
self-supervised trunks at conv1); the trunks differ from conv2 on, where the
comparison with the random trunk is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nndoctor.subject import OptimizerSpec, Subject, Task
from nndoctor.zoo.data import NUM_CLASSES, make_scenes
from nndoctor.zoo.registry import zoo_entries
from nndoctor.zoo.ssl._common import (
    BATCH_SIZE,
    LEARNING_RATE,
    POOL_SIZE,
    STAGES,
    ConvTrunk,
    PretextBatches,
    PretextModel,
    train_subject,
)

DEPTHS = (*STAGES, "pool")
PROBE_GRID = 4  # each stage's map is average-pooled to 4×4 cells before the linear layer
PROBE_TRAIN = 4000  # labelled scenes to train the linear classifiers
PROBE_TEST = 2000  # held-out scenes to score them
PROBE_ITERATIONS = 300  # full-batch Adam steps of each linear classifier
PROBE_LR = 1e-2
PROBE_WEIGHT_DECAY = 1e-3
SUPERVISED_STEPS = 300
# Seeds of the probe splits, offset from the pretext pools' seeds so no scene is shared.
TRAIN_SEED_OFFSET = 10_000
TEST_SEED_OFFSET = 20_000

# progress(label, step, total, loss): label names the trunk being trained or probed.
ProbeProgress = Callable[[str, int, int, float], None]


# -- reference trunks -------------------------------------------------------------------------


class RandomTrunk(PretextModel):
    """The floor: the trunk at its random initialisation, never trained."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=3)


class SupervisedNet(PretextModel):
    """The ceiling: the trunk trained with the object labels (trunk → pool → linear)."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=3)
        self.classifier = nn.Linear(self.trunk.out_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.trunk.pooled(x))


def supervised_subject(seed: int = 0, device: str = "cpu") -> Subject:
    """The supervised reference as a Subject: labelled scenes of the pretext pool, cross-entropy."""
    torch.manual_seed(seed)
    images, labels = make_scenes(POOL_SIZE, seed=seed)
    return Subject(
        model=SupervisedNet().to(device),
        batches=lambda: PretextBatches(
            (images, labels), lambda items, _g: items, BATCH_SIZE, seed, device
        ),
        criterion=nn.CrossEntropyLoss(),
        optimizer=OptimizerSpec.of(torch.optim.Adam, lr=LEARNING_RATE),
        task=Task.classification(NUM_CLASSES),
        name="supervised",
    )


# -- the probe --------------------------------------------------------------------------------


def probe_sets(
    seed: int = 0, n_train: int = PROBE_TRAIN, n_test: int = PROBE_TEST
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Labelled (images, object class) splits for training and scoring the linear classifiers."""
    return (
        make_scenes(n_train, seed=seed + TRAIN_SEED_OFFSET),
        make_scenes(n_test, seed=seed + TEST_SEED_OFFSET),
    )


@torch.no_grad()
def extract_features(
    model: PretextModel, images: Tensor, device: str = "cpu", chunk: int = 500
) -> dict[str, Tensor]:
    """Frozen features at every depth, flattened: {depth: [N, D]} (computed in eval mode)."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[Tensor]] = {d: [] for d in DEPTHS}
    for start in range(0, len(images), chunk):
        feats = model.probe_features(images[start : start + chunk].to(device))
        for name in STAGES:
            pooled = F.adaptive_avg_pool2d(feats[name], PROBE_GRID)  # [n, C, 4, 4]
            parts[name].append(pooled.flatten(1).cpu())
        parts["pool"].append(feats[STAGES[-1]].mean(dim=(2, 3)).cpu())  # [n, C]
    model.train(was_training)
    return {d: torch.cat(v) for d, v in parts.items()}


def linear_probe(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int = NUM_CLASSES,
    seed: int = 0,
) -> float:
    """Test accuracy of a linear classifier trained on standardised frozen features."""
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    g = torch.Generator().manual_seed(seed)
    classifier = nn.Linear(train_x.shape[1], num_classes)
    with torch.no_grad():  # seeded init, independent of the global RNG
        classifier.weight.uniform_(-1, 1, generator=g).mul_(train_x.shape[1] ** -0.5)
        classifier.bias.zero_()
    optimizer = torch.optim.Adam(
        classifier.parameters(), lr=PROBE_LR, weight_decay=PROBE_WEIGHT_DECAY
    )
    for _ in range(PROBE_ITERATIONS):
        loss = F.cross_entropy(classifier(train_x), train_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return (classifier(test_x).argmax(1) == test_y).float().mean().item()


def probe_model(
    model: PretextModel,
    train_set: tuple[Tensor, Tensor],
    test_set: tuple[Tensor, Tensor],
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, float]:
    """{depth: test accuracy} of linear probes on ``model``'s frozen features."""
    num_classes = int(max(train_set[1].max(), test_set[1].max())) + 1
    train_f = extract_features(model, train_set[0], device)
    test_f = extract_features(model, test_set[0], device)
    return {
        d: linear_probe(train_f[d], train_set[1], test_f[d], test_set[1], num_classes, seed)
        for d in DEPTHS
    }


def linear_probe_table(
    steps_scale: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
    progress: ProbeProgress | None = None,
    names: list[str] | None = None,
    dataset: str = "scenes",
) -> list[dict[str, Any]]:
    """Train every self-supervised trunk and the two references, then probe each at every depth.

    Returns one row per trunk: ``{"trunk": name, "conv1": acc, …, "conv4": acc, "pool": acc,
    "steps": pretext steps, "seconds": training time, "loss_start": …, "loss_end": …}``
    (accuracies in [0, 1]; losses None for the random trunk) — first ``random``, then the
    self-supervised trunks (``names`` restricts them), last ``supervised``.
    Pretext training runs for each subject's default steps × ``steps_scale``.
    ``dataset`` is ``"scenes"`` (object class of new scenes) or ``"digits"``
    (scikit-learn's 8×8 digits, only if scikit-learn is installed).
    """
    train_set, test_set = _labelled_sets(dataset, seed)
    rows: list[dict[str, Any]] = []

    def add_row(
        name: str, model: PretextModel, steps: int, seconds: float, trained: dict[str, Any]
    ) -> None:
        if progress is not None:
            progress(f"probing {name}", 0, 1, float("nan"))
        accs = probe_model(model, train_set, test_set, device, seed)
        rows.append(
            {
                "trunk": name,
                **accs,
                "steps": steps,
                "seconds": round(seconds, 1),
                "loss_start": trained.get("loss_start"),
                "loss_end": trained.get("loss_end"),
            }
        )

    def step_progress(label: str) -> Callable[[int, int, float], None] | None:
        if progress is None:
            return None
        return lambda step, total, loss: progress(label, step, total, loss)

    torch.manual_seed(seed)
    add_row("random", RandomTrunk().to(device), 0, 0.0, {})

    for entry in zoo_entries():
        if entry.family != "ssl" or (names is not None and entry.name not in names):
            continue
        steps = max(1, round(entry.default_steps * steps_scale))
        subject = entry.build(seed=seed, device=device)
        start = time.perf_counter()
        trained = train_subject(subject, steps, seed, step_progress(entry.name))
        seconds = time.perf_counter() - start
        assert isinstance(subject.model, PretextModel)
        add_row(entry.name, subject.model, steps, seconds, trained)

    steps = max(1, round(SUPERVISED_STEPS * steps_scale))
    subject = supervised_subject(seed, device)
    start = time.perf_counter()
    trained = train_subject(subject, steps, seed, step_progress("supervised"))
    assert isinstance(subject.model, PretextModel)
    add_row("supervised", subject.model, steps, time.perf_counter() - start, trained)
    return rows


def _labelled_sets(dataset: str, seed: int) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    if dataset == "scenes":
        return probe_sets(seed)
    if dataset == "digits":
        from nndoctor.zoo.data import digits_probe_set

        digits = digits_probe_set()
        if digits is None:
            raise RuntimeError("the digits probe set needs scikit-learn (pip install scikit-learn)")
        images, labels = digits
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        cut = len(images) * 2 // 3
        train, test = order[:cut], order[cut:]
        return (images[train], labels[train]), (images[test], labels[test])
    raise ValueError(f"unknown probe dataset {dataset!r}: use 'scenes' or 'digits'")


def format_table(rows: list[dict[str, Any]]) -> str:
    """The probe table as plain text: one line per trunk, accuracy (%) per depth."""
    header = (
        f"{'trunk':<18}"
        + "".join(f"{d:>8}" for d in DEPTHS)
        + f"{'steps':>8}{'train s':>9}  pretext loss start → end"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        accs = "".join(
            f"{100 * row[d]:>7.1f}%" if isinstance(row.get(d), float) else f"{'-':>8}"
            for d in DEPTHS
        )
        start, end = row.get("loss_start"), row.get("loss_end")
        loss = f"{start:.4g} → {end:.4g}" if start is not None and end is not None else "-"
        lines.append(
            f"{row['trunk']:<18}{accs}{row.get('steps', 0):>8}{row.get('seconds', 0):>9}  {loss}"
        )
    lines.append(
        f"linear probes on frozen features; chance = {100 / NUM_CLASSES:.1f}% "
        f"({NUM_CLASSES} object classes)"
    )
    return "\n".join(lines)
