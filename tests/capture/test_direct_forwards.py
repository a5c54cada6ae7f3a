"""A network whose ``forward`` the script calls directly (layer-local training code)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from nndoctor.capture.runner import run_script
from nndoctor.engine import Selection, check_script

# Each layer trains itself, in a method that overrides nn.Module.train and calls its own
# forward directly, as Forward-Forward implementations do.
LAYER_LOCAL = """
import torch
from torch import nn

torch.manual_seed(0)


class Layer(nn.Linear):
    def __init__(self, d_in, d_out):
        super().__init__(d_in, d_out)
        self.opt = torch.optim.Adam(self.parameters(), lr=1e-2)

    def forward(self, x):
        return torch.relu(super().forward(x / (x.norm(dim=1, keepdim=True) + 1e-4)))

    def train(self, x_pos, x_neg, steps=30):
        for _ in range(steps):
            g_pos = self.forward(x_pos).pow(2).mean(1)
            g_neg = self.forward(x_neg).pow(2).mean(1)
            loss = torch.log1p(torch.exp(torch.cat([2.0 - g_pos, g_neg - 2.0]))).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return self.forward(x_pos).detach(), self.forward(x_neg).detach()


x = torch.randn(256, 16)
y = (x @ torch.randn(16, 4)).argmax(1)
pos, neg = x.clone(), x.clone()
pos[:, :4] = nn.functional.one_hot(y, 4).float()
neg[:, :4] = nn.functional.one_hot((y + 1) % 4, 4).float()
layers = [Layer(16, 32), Layer(32, 32)]
h_pos, h_neg = pos, neg
for layer in layers:
    h_pos, h_neg = layer.train(h_pos, h_neg)
"""


def test_direct_forwards_are_observed_and_the_class_is_put_back(tmp_path: Path) -> None:
    path = tmp_path / "layer_local.py"
    path.write_text(textwrap.dedent(LAYER_LOCAL))
    capture = run_script(str(path), steps=5, phase_steps=0)
    assert capture.observed and capture.steps == 5
    assert type(capture.model).__name__ == "Layer"
    assert capture.direct_forwards == ["Layer"]
    # Every observed step saw the layer's input and the gradients of its parameters.
    assert all(s.inputs is not None and s.grad_norms for s in capture.recording.steps)
    assert "forward" in type(capture.model).__dict__  # the script's own, put back
    assert not hasattr(type(capture.model).forward, "__wrapped__")
    assert "forward" not in vars(capture.model)  # the instance never changed


def test_a_layer_local_script_is_checked_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "layer_local.py"
    path.write_text(textwrap.dedent(LAYER_LOCAL))
    report = check_script(
        str(path),
        steps=5,
        phase_steps=0,
        selection=Selection(select=("dead-relus", "model-ignores-input", "batch-dependence")),
    )
    assert report.run.observed, report.run.error
    assert any("Layer.forward directly" in n for n in report.run.notes)
    assert not [r for r in report.checks if r.status.value == "crashed"]


def test_a_module_called_normally_runs_its_forward_once(tmp_path: Path) -> None:
    script = """
    import torch
    from torch import nn
    torch.manual_seed(0)
    calls = []

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            calls.append(1)
            return self.fc(x)

    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    for step in range(8):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    assert len(calls) == 8, calls
    """
    path = tmp_path / "plain.py"
    path.write_text(textwrap.dedent(script))
    capture = run_script(str(path), steps=20, phase_steps=0)
    assert capture.exception is None and capture.steps == 8
    assert capture.direct_forwards == []


def test_set_training_leaves_a_train_method_of_another_meaning_uncalled() -> None:
    from nndoctor.copying import set_training

    class Trains(nn.Linear):
        def train(self, x_pos, x_neg):  # type: ignore[override]
            raise AssertionError("the script's training loop must not run")

    class FreezesNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.BatchNorm1d(3)

        def train(self, mode: bool = True) -> FreezesNorm:
            super().train(mode)
            self.norm.eval()
            return self

    net = nn.Sequential(nn.Linear(3, 3), Trains(3, 3))
    set_training(net, False)
    assert not any(m.training for m in net.modules())
    set_training(net, True)
    assert all(m.training for m in net.modules())
    frozen = FreezesNorm()
    set_training(frozen, True)  # a mode switch of its own is honoured
    assert frozen.training and not frozen.norm.training


def test_direct_forwards_without_an_optimizer_say_what_to_do(tmp_path: Path) -> None:
    script = """
    import torch
    from torch import nn
    torch.manual_seed(0)
    net = nn.Linear(4, 2)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    for step in range(5):
        loss = nn.functional.cross_entropy(net.forward(x), y)
        net.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad
    """
    path = tmp_path / "by_hand.py"
    path.write_text(textwrap.dedent(script))
    report = check_script(str(path), steps=3, phase_steps=0)
    assert not report.run.observed
    assert "2 nn.Parameter(s) of a module" in report.run.error
    assert "layer(x)" in report.run.error


# ``net.forward(x)`` on a Sequential: its layers are called normally, so the first Linear
# is found first; the network the optimizer trains is the Sequential around it.
SEQUENTIAL_FORWARD = """
import torch
from torch import nn
import torch.nn.functional as F

torch.manual_seed(0)
x = torch.randn(512, 10)
y = (x[:, 0] - x[:, 1] > 0).long()
net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.SGD(net.parameters(), lr=0.1)
for epoch in range(5):
    for i in range(0, 512, 32):
        loss = F.cross_entropy(net.forward(x[i:i + 32]), y[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


@pytest.mark.silent("params-not-in-optimizer")
def test_a_network_around_the_layer_found_first_is_observed(tmp_path: Path) -> None:
    path = tmp_path / "sequential_forward.py"
    path.write_text(textwrap.dedent(SEQUENTIAL_FORWARD))
    capture = run_script(str(path), steps=5, phase_steps=0)
    assert capture.observed and capture.steps == 5
    assert isinstance(capture.model, nn.Sequential)
    assert capture.direct_forwards == ["Sequential"]
    assert "forward" not in nn.Sequential.__dict__ or not hasattr(
        nn.Sequential.forward, "__wrapped__"
    )
    report = check_script(
        str(path),
        steps=5,
        phase_steps=0,
        selection=Selection(select=("params-not-in-optimizer",)),
    )
    assert report.result("params-not-in-optimizer").status.value == "passed"
    assert report.subject["model"] == "Sequential"


def test_a_routed_forward_that_calls_itself_runs_as_written() -> None:
    from nndoctor.capture.direct_forwards import DirectForwards

    class Recursive(nn.Linear):
        def forward(self, x: torch.Tensor, depth: int = 2) -> torch.Tensor:
            out = super().forward(x)
            return self.forward(out, depth - 1) if depth else out

    calls: list[int] = []
    layer = Recursive(3, 3)
    handle = layer.register_forward_pre_hook(lambda m, a: calls.append(1))
    direct = DirectForwards()
    try:
        with direct.installed():
            direct.route_modules([layer])
            routed = layer.forward(torch.ones(1, 3))
            called = layer(torch.ones(1, 3))
    finally:
        handle.remove()
    # The outer direct call runs the hooks once, the recursion inside it runs as written.
    assert calls == [1, 1]
    assert torch.equal(routed, called)
    assert "forward" in Recursive.__dict__ and not hasattr(Recursive.forward, "__wrapped__")


# ``net.forward(view_1, view_2)`` on a siamese network: its backbone, called with one view,
# is found first; the batches kept for copies must be the network's own two arguments.
TWO_VIEW_FORWARD = """
import torch
from torch import nn

torch.manual_seed(0)


class Siamese(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.projector = nn.Linear(16, 4)

    def forward(self, view_1, view_2):
        z_1 = self.projector(self.backbone(view_1))
        z_2 = self.projector(self.backbone(view_2))
        return (z_1 - z_2).pow(2).mean()


net = Siamese()
opt = torch.optim.SGD(net.parameters(), lr=0.1)
x = torch.randn(256, 8)
for i in range(0, 256, 32):
    batch = x[i:i + 32]
    loss = net.forward(batch + 0.1 * torch.randn_like(batch), batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def test_the_batches_kept_are_the_arguments_of_the_network_observed(tmp_path: Path) -> None:
    path = tmp_path / "two_views.py"
    path.write_text(textwrap.dedent(TWO_VIEW_FORWARD))
    capture = run_script(str(path), steps=4, phase_steps=0)
    assert type(capture.model).__name__ == "Siamese"
    assert capture.batches
    for batch in capture.batches:
        views = batch["args"]
        assert len(views) == 2 and all(v.shape == (32, 8) for v in views)
        capture.model(*views)  # the copies' call: both views
    # The first step was the backbone's (its activations, its parameters' gradients).
    assert capture.recording.steps
    assert all(s.step >= 2 for s in capture.recording.steps)
    assert all("backbone.0.weight" in s.grad_norms for s in capture.recording.steps)
