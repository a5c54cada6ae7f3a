"""The networks noted beside the observed model."""

from __future__ import annotations

import torch
from torch import nn

from nndoctor.capture.other_roots import MAX_OTHER_ROOTS, OtherRootRecorder


def test_a_second_network_is_noted_once_at_its_first_training_call() -> None:
    model, other = nn.Sequential(nn.Linear(4, 4), nn.ReLU()), nn.Linear(4, 2)
    recorder = OtherRootRecorder()
    x = torch.randn(3, 4)
    recorder.note(model, (x,), model)
    recorder.note(model[0], (x,), model)  # a part of the model
    with torch.no_grad():
        recorder.note(other, (x,), model)  # an evaluation
    other.eval()
    recorder.note(other, (x,), model)  # in eval mode
    other.train()
    recorder.note(other, (x,), model)
    x.add_(1.0)
    recorder.note(other, (x,), model)  # met again
    (root,) = recorder.beside(model)
    assert root.name == "Linear" and root.module is not other
    assert torch.allclose(root.args[0], x - 1.0)  # a copy of the first call's input


def test_wrappers_frozen_networks_and_the_model_itself_are_not_noted() -> None:
    model = nn.Linear(4, 4)
    wrapper = nn.Sequential(model)
    frozen = nn.Linear(4, 4).requires_grad_(False)
    recorder = OtherRootRecorder()
    x = torch.randn(2, 4)
    for module in (wrapper, frozen):
        recorder.note(module, (x,), model)
    assert recorder.beside(model) == []
    # Noted before a retarget made it the observed model: left out in the end.
    early = nn.Linear(4, 4)
    recorder.note(early, (x,), model)
    assert recorder.beside(early) == []


def test_at_most_a_few_networks_are_kept() -> None:
    model = nn.Linear(4, 4)
    recorder = OtherRootRecorder()
    networks = [nn.Linear(4, 4) for _ in range(MAX_OTHER_ROOTS + 2)]
    for network in networks:
        recorder.note(network, (torch.randn(2, 4),), model)
    assert len(recorder.beside(model)) == MAX_OTHER_ROOTS
