"""A network compiled with torch.jit before training is observed eagerly."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from nndoctor.capture.runner import run_script
from nndoctor.capture.torchscript import EagerScripting
from nndoctor.engine import Selection, check_script

# torch.jit is deprecated in recent torch; scripts written for it still run and are checked.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SCRIPTED = """
import torch
from torch import nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 64)
        self.fc2 = nn.Linear(64, 2)

    def forward(self, x):
        return {output}


@torch.jit.script
def scaled(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0


torch.manual_seed(0)
x = torch.randn(1024, 20)
y = (x[:, :5].sum(1) > 0).long()
model = torch.jit.{compile}
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for epoch in range(5):
    for i in range(0, 1024, 64):
        loss = F.cross_entropy(model(scaled(x[i:i + 64]) / 2.0), y[i:i + 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
"""
LOGITS = "self.fc2(F.relu(self.fc1(x)))"


def _script(tmp_path: Path, output: str = LOGITS, compile: str = "script(Net())") -> str:
    path = tmp_path / "scripted.py"
    path.write_text(textwrap.dedent(SCRIPTED.format(output=output, compile=compile)))
    return str(path)


@pytest.mark.parametrize("compile", ["script(Net())", "trace(Net(), torch.randn(4, 20))"])
def test_a_scripted_or_traced_network_is_observed_eagerly(tmp_path: Path, compile: str) -> None:
    capture = run_script(_script(tmp_path, compile=compile), steps=5, phase_steps=0)
    assert capture.observed and capture.steps == 5
    assert type(capture.model).__name__ == "Net"
    assert capture.kept_eager == ["Net"]
    assert torch.jit.script.__module__.startswith("torch.jit")  # put back


@pytest.mark.fires("loss-input-mismatch")
def test_a_fault_inside_a_scripted_network_is_found(tmp_path: Path) -> None:
    script = _script(tmp_path, output="F.softmax(" + LOGITS + ", dim=1)")
    report = check_script(script, steps=10, selection=Selection(select=("loss-input-mismatch",)))
    assert report.run.observed
    assert any("ran eagerly" in note for note in report.run.notes)
    (finding,) = report.by_check("loss-input-mismatch")
    assert 19 in finding.reasons


def test_functions_are_still_compiled_and_modules_kept_as_they_are() -> None:
    scripting = EagerScripting()
    net = nn.Linear(3, 2)
    with scripting.installed():
        assert torch.jit.script(net) is net

        def double(x: torch.Tensor) -> torch.Tensor:
            return x * 2

        compiled = torch.jit.script(double)
    assert isinstance(compiled, torch.jit.ScriptFunction)
    assert scripting.kept_eager == ["Linear"]
    assert isinstance(torch.jit.script(net), torch.jit.ScriptModule)  # put back


SCRIPT_MODULE_SUBCLASS = """
import torch
from torch import nn
import torch.nn.functional as F


class Net(torch.jit.ScriptModule):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    @torch.jit.script_method
    def forward(self, x):
        return self.fc(x)


torch.manual_seed(0)
x, y = torch.randn(256, 8), torch.randint(0, 2, (256,))
model = Net()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(0, 256, 32):
    loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def test_a_script_module_subclass_is_named_with_what_to_do(tmp_path: Path) -> None:
    # Compiled at construction: no eager forward exists to observe, so the run says why.
    path = tmp_path / "script_module.py"
    path.write_text(textwrap.dedent(SCRIPT_MODULE_SUBCLASS))
    report = check_script(str(path), steps=3, phase_steps=0)
    assert not report.run.observed
    assert "Net, a TorchScript module" in report.run.error
    assert "plain nn.Module" in report.run.error
    assert "direct module.forward" not in report.run.error
