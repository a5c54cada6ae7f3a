"""Multi-task self-supervision — Doersch & Zisserman, "Multi-task Self-Supervised
Visual Learning", ICCV 2017.

One shared trunk, several pretext heads, the sum of their losses. The paper
combines relative position, colorization, exemplar and motion segmentation on
a ResNet; here three of the zoo's tasks whose inputs are all RGB scenes:
rotation (Gidaris 2018), relative position (Doersch 2015) and colorization
(Zhang 2016). Colorization needs a colourless input; as in the paper
("harmonisation" of the inputs) the trunk gets the greyscale image replicated
to three channels, so the same trunk serves all tasks.

A batch holds one sub-batch per task; ``forward`` takes them as keyword
arguments and returns a dict of logits, one entry per head.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nndoctor.subject import Subject, Task
from nndoctor.zoo.data import standardise, to_unit_rgb
from nndoctor.zoo.registry import ZooEntry, register_zoo
from nndoctor.zoo.ssl import colorization, relative_position, rotation
from nndoctor.zoo.ssl._common import (
    BATCH_SIZE,
    POOL_SIZE,
    ConvTrunk,
    PretextModel,
    ProgressFn,
    ScenePool,
    evaluate,
    pretext_subject,
    train_subject,
)

TASKS = ("rotation", "relative_position", "colorization")
# Of every slice of BATCH_SIZE scenes: the first ROTATION_IMAGES are rotated (×4),
# all give a patch pair, the last COLOR_IMAGES are colorized.
ROTATION_IMAGES = 16
COLOR_IMAGES = 32
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights for the greyscale input
DEFAULT_STEPS = 300
# Sum of the three heads' chance losses.
CHANCE = rotation.CHANCE + relative_position.CHANCE + colorization.CHANCE


# -- pretext transform ---------------------------------------------------------------------


def greyscale(images: Tensor) -> Tensor:
    """Standardised scenes → their standardised greyscale version, still 3 channels."""
    rgb = to_unit_rgb(images)
    luma = torch.einsum("c,nchw->nhw", rgb.new_tensor(LUMA), rgb).unsqueeze(1)  # [N, 1, H, W]
    return standardise(luma.expand(-1, 3, -1, -1))


def make_batch(images: Tensor, generator: torch.Generator | None = None) -> dict[str, Any]:
    """One sub-batch per task, each ``(inputs, labels)``; [B, 3, H, W] scenes in."""
    rot = rotation.make_batch(images[:ROTATION_IMAGES], generator)  # ([64, 3, H, W], [64])
    pairs = relative_position.make_batch(images, generator)  # (([B, 3, 8, 8] ×2), [B])
    colour = images[-COLOR_IMAGES:]
    bins = colorization.quantise_ab(colorization.scenes_to_lab(colour))  # [32, H/4, W/4]
    return {"rotation": rot, "relative_position": pairs, "colorization": (greyscale(colour), bins)}


def task_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The model's keyword arguments: each task's inputs."""
    return {task: batch[task][0] for task in TASKS}


# -- model -------------------------------------------------------------------------------


class MultiTaskNet(PretextModel):
    """A shared RGB trunk with a rotation, a relative-position and a colorization head."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=3)
        c = self.trunk.out_channels
        self.rotation_head = nn.Linear(c, rotation.NUM_ROTATIONS)
        self.position_head = relative_position.PairClassifier(c, relative_position.NUM_POSITIONS)
        self.color_head = colorization.ColorHead(c)

    def forward(
        self, rotation: Tensor, relative_position: tuple[Tensor, Tensor], colorization: Tensor
    ) -> dict[str, Tensor]:
        centre, neighbour = relative_position
        return {
            "rotation": self.rotation_head(self.trunk.pooled(rotation)),  # [4R, 4]
            "relative_position": self.position_head(
                self.trunk.pooled(centre), self.trunk.pooled(neighbour)
            ),  # [B, 8]
            "colorization": self.color_head(self.trunk(colorization)),  # [C, Q, H/4, W/4]
        }


def task_losses(model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
    """Each head's cross-entropy (colorization with its class rebalancing weights)."""
    logits = model(**task_inputs(batch))
    colour_weight = colorization.ab_class_weights().to(logits["colorization"].device)
    return {
        task: F.cross_entropy(
            logits[task], batch[task][1], weight=colour_weight if task == "colorization" else None
        )
        for task in TASKS
    }


def multitask_loss(model: nn.Module, batch: dict[str, Any]) -> Tensor:
    """The sum of the three pretext losses (equal weights, as the paper's baseline)."""
    return torch.stack(list(task_losses(model, batch).values())).sum()


# -- subject -------------------------------------------------------------------------------


def build(seed: int = 0, device: str = "cpu", pool_size: int | None = None) -> Subject:
    """A fresh multi-task subject; batches are dicts ``{task: (inputs, labels)}``."""
    return pretext_subject(
        "multitask",
        MultiTaskNet,
        make_batch,
        BATCH_SIZE,
        ScenePool(seed, pool_size or POOL_SIZE),
        seed,
        device,
        loss_fn=multitask_loss,
        inputs=task_inputs,
        targets=lambda batch: {task: batch[task][1] for task in TASKS},
        task=Task("custom"),
    )


def train(
    steps: int | None = None, device: str = "cpu", seed: int = 0, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """Train from scratch; returns loss_start, loss_end, chance (sum of heads), seconds, and
    each head's final loss on held-out batches (``loss_rotation`` …)."""
    subject = build(seed, device)
    result = train_subject(subject, steps or DEFAULT_STEPS, seed, progress, chance=CHANCE)
    for task in TASKS:
        result[f"loss_{task}"] = _evaluate_task(subject, task)
    return result


def _evaluate_task(subject: Subject, task: str) -> float:
    return evaluate(subject, lambda model, batch: task_losses(model, batch)[task].item())


ENTRY = register_zoo(
    ZooEntry(
        name="multitask",
        family="ssl",
        learns="rotation, relative position and colorization at once, on one shared trunk",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/multitask.py",
    )
)
