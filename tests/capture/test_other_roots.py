"""The networks noted beside the observed model."""

from __future__ import annotations

import torch
from torch import nn

from nndoctor.capture.other_roots import MAX_OTHER_ROOTS, UNUSED_STEPS, OtherRootRecorder


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


def _recorded(model: nn.Module, other: nn.Module) -> OtherRootRecorder:
    recorder = OtherRootRecorder()
    recorder.note(other, (torch.randn(2, 4),), model)
    return recorder


def test_a_network_with_gradients_that_no_optimizer_holds_is_unheld() -> None:
    model, other = nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    recorder = _recorded(model, other)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # holds the model only
    recorder.note_gradients(optimizer, model)  # no gradient yet: nothing is decided
    assert recorder.roots[0].holders is None
    other(torch.randn(2, 4)).sum().backward()
    recorder.note_gradients(optimizer, model)
    (net,) = recorder.unheld(model, loaded=[])
    assert (net.module, net.parameters, net.with_grad, net.loaded) == ("Sequential", 4, 4, False)
    assert recorder.roots[0].live is None  # released
    del optimizer


def test_a_held_a_changed_or_a_loaded_network_is_told_apart() -> None:
    model = nn.Linear(4, 4)
    held = nn.Linear(4, 2)
    recorder = _recorded(model, held)
    optimizer = torch.optim.SGD(held.parameters(), lr=0.1)
    held(torch.randn(2, 4)).sum().backward()
    recorder.note_gradients(optimizer, model)
    assert recorder.unheld(model, loaded=[]) == []

    # Held, but another optimizer steps in its place, UNUSED_STEPS times.
    recorder = _recorded(model, held)
    other = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(UNUSED_STEPS):
        recorder.note_gradients(other, model)
    (net,) = recorder.unheld(model, loaded=[])
    assert net.holders == ["SGD"] and net.steps_without == UNUSED_STEPS
    recorder = _recorded(model, held)
    for _ in range(UNUSED_STEPS - 1):
        recorder.note_gradients(other, model)
    recorder.note_gradients(optimizer, model)  # its own steps in the end
    assert recorder.unheld(model, loaded=[]) == []
    del optimizer, other

    changed = nn.Linear(4, 2)
    recorder = _recorded(model, changed)
    changed(torch.randn(2, 4)).sum().backward()
    step = torch.optim.SGD(model.parameters(), lr=0.1)
    recorder.note_gradients(step, model)
    with torch.no_grad():
        changed.weight.mul_(0.5)  # a moving average, an update by hand
    assert recorder.unheld(model, loaded=[]) == []

    loaded = nn.Linear(4, 2)
    recorder = _recorded(model, loaded)
    loaded(torch.randn(2, 4)).sum().backward()
    recorder.note_gradients(step, model)
    (net,) = recorder.unheld(model, loaded=["Linear"])
    assert net.loaded
