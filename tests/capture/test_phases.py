"""Scripts that train in stages: the second phase (a new optimizer) is observed too."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from subjects import serious

from nndoctor.capture.runner import run_script
from nndoctor.engine import Selection, check_script

TWO_PHASES = """
import io, torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(512, 8)
y = (x[:, 0] > 0).long()

def train(model, loader, optimizer, epochs):
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()

backbone = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
pretrain = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
train(nn.Sequential(backbone, nn.Linear(32, 2)), pretrain,
      torch.optim.Adam(backbone.parameters(), lr=3e-2), {pretrain_epochs})
checkpoint = io.BytesIO()
torch.save(backbone.state_dict(), checkpoint)
checkpoint.seek(0)

fresh = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
{load}
fresh.requires_grad_(False)
head = nn.Linear(32, 2)
x2 = torch.randn(256, 8)
finetune = DataLoader(TensorDataset(x2, (x2[:, 0] > 0).long()), batch_size=32, shuffle=True)
train(nn.Sequential(fresh, head), finetune, torch.optim.Adam(head.parameters(), lr=1e-2), 10)
"""


def _script(tmp_path: Path, load: bool = True, pretrain_epochs: int = 4) -> str:
    path = tmp_path / "staged.py"
    path.write_text(
        textwrap.dedent(TWO_PHASES).format(
            load="fresh.load_state_dict(torch.load(checkpoint))" if load else "",
            pretrain_epochs=pretrain_epochs,
        )
    )
    return str(path)


def test_a_second_optimizer_after_the_budget_starts_an_observed_phase(tmp_path: Path) -> None:
    capture = run_script(_script(tmp_path), steps=10)
    assert capture.stop_reason == "step budget" and capture.steps == 10
    second = capture.next_phase
    assert second is not None and second.observed and second.steps == 10
    assert "second phase" in capture.phase_note
    # 4 epochs of 16 batches: 64 steps, 10 observed, the rest unobserved.
    assert "after 54 unobserved step(s)" in capture.phase_note
    assert second.recording.optimizer_class == "Adam"
    assert second.recording.weights_loaded == ["Sequential"]  # loaded between the phases
    # ... a checkpoint of the backbone the first phase trained, not a pretrained model
    assert second.recording.weights_from_this_run == ["Sequential"]
    assert second.recording.weights_from_elsewhere == []
    assert capture.recording.weights_loaded == []
    frozen = [n for n, trains in second.recording.requires_grad.items() if not trains]
    assert frozen == ["0.0.weight", "0.0.bias"]
    # The fine-tuning loader belongs to the second phase only.
    assert [info.dataset_len for info in capture.recording.loaders] == [512]
    assert [info.dataset_len for info in second.recording.loaders] == [512, 256]
    assert {s.loader for s in second.recording.steps} == {1}


def test_each_phase_reads_the_plan_of_its_own_loops(tmp_path: Path) -> None:
    # The first phase plans 4 epochs of 16 batches, the fine-tuning 10 epochs of 8: checks
    # that weigh a delay against the run (a rate that only trails) read the phase's own.
    capture = run_script(_script(tmp_path), steps=10)
    second = capture.next_phase
    assert second is not None and second.observed
    assert capture.recording.horizon is not None and capture.recording.horizon.steps == 64
    assert second.recording.horizon is not None and second.recording.horizon.steps == 80


SEQUENTIAL = """
import torch
m = torch.nn.Linear(3, 1)
o = torch.optim.SGD(m.parameters(), lr=0.1)
for _ in range(100):
    o.zero_grad()
    m(torch.randn(8, 3)).pow(2).mean().backward()
    o.step()
if {second}:
    o2 = torch.optim.Adam(m.parameters(), lr=1e-3)
    for _ in range(20):
        o2.zero_grad()
        m(torch.randn(8, 3)).pow(2).mean().backward()
        o2.step()
"""


def test_one_optimizer_in_the_source_means_no_search(tmp_path: Path) -> None:
    path = tmp_path / "single.py"
    path.write_text(SEQUENTIAL.format(second="False").replace("o2 = torch.optim.Adam", "o2 = o"))
    capture = run_script(str(path), steps=10)
    assert capture.next_phase is None and capture.steps == 10
    assert "no search" in capture.phase_note and "1 place(s)" in capture.phase_note
    off = run_script(str(path), steps=10, phase_steps=0)
    assert off.phase_note == "" and off.steps == 10


INPUT_OPTIMISED = """
import torch
net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
o = torch.optim.SGD(net.parameters(), lr=0.1)
for _ in range(30):
    o.zero_grad()
    net(torch.randn(8, 3)).pow(2).mean().backward()
    o.step()
net.requires_grad_(False)
image = torch.zeros(4, 3, requires_grad=True)
lbfgs = torch.optim.LBFGS([image], max_iter=5)

def closure():
    lbfgs.zero_grad()
    loss = (net(image) - 1).pow(2).mean()
    loss.backward()
    return loss

for _ in range(6):
    lbfgs.step(closure)
"""


def test_a_later_optimizer_of_a_plain_tensor_is_named_not_taken_for_the_same(
    tmp_path: Path,
) -> None:
    path = tmp_path / "style.py"
    path.write_text(INPUT_OPTIMISED)
    capture = run_script(str(path), steps=10)
    assert capture.next_phase is None and capture.steps == 10
    note = capture.phase_note
    assert "new optimizer (LBFGS) took 6 step(s)" in note
    assert "no module run since holds the tensors it trains" in note
    assert "the script finished" in note and "same optimizer" not in note


def test_a_search_ends_at_its_step_limit_or_with_the_script(tmp_path: Path) -> None:
    path = tmp_path / "two.py"
    path.write_text(SEQUENTIAL.format(second="True"))
    found = run_script(str(path), steps=10)
    assert found.next_phase is not None and "after 90 unobserved" in found.phase_note
    limited = run_script(str(path), steps=10, phase_steps=30)
    assert limited.next_phase is None and limited.stop_reason == "step budget"
    assert "31 more" in limited.phase_note and "within 30 further steps" in limited.phase_note
    never = tmp_path / "never.py"
    never.write_text(SEQUENTIAL.format(second="False"))  # the second optimizer is never made
    ended = run_script(str(never), steps=10)
    assert ended.next_phase is None and "90 more" in ended.phase_note
    assert "the script finished" in ended.phase_note


def test_two_optimizers_stepping_from_the_start_are_not_phases(tmp_path: Path) -> None:
    path = tmp_path / "gan.py"
    path.write_text(
        "import torch\ng, d = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)\n"
        "og, od = torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters())\n"
        "for _ in range(60):\n"
        "    od.zero_grad(); d(g(torch.randn(8, 2)).detach()).mean().backward(); od.step()\n"
        "    og.zero_grad(); (-d(g(torch.randn(8, 2)))).mean().backward(); og.step()\n"
    )
    capture = run_script(str(path), steps=10)
    assert capture.next_phase is None and "no search" in capture.phase_note
    assert "2 place(s)" in capture.phase_note


@pytest.mark.fires("params-frozen")
def test_random_weights_frozen_in_the_second_phase_are_found_there(tmp_path: Path) -> None:
    report = check_script(
        _script(tmp_path, load=False), steps=10, selection=Selection(select=("params-frozen",))
    )
    (finding,) = serious(report)
    assert finding.check == "params-frozen" and finding.where.phase == 2
    assert report.diagnosis.causes[0].lead is finding
    assert any(c.phase == 2 for c in report.checks)
    assert any("second phase" in n for n in report.run.notes)


@pytest.mark.silent("params-frozen")
def test_a_loaded_checkpoint_frozen_in_the_second_phase_is_healthy(tmp_path: Path) -> None:
    report = check_script(
        _script(tmp_path, load=True), steps=10, selection=Selection(select=("params-frozen",))
    )
    assert serious(report) == []
    (second,) = [c for c in report.checks if c.phase == 2 and c.check == "params-frozen"]
    assert second.status.value == "passed"


def test_the_first_phase_is_kept_as_it_was_at_its_budget(tmp_path: Path) -> None:
    # The second phase freezes the very backbone the first trained, and replaces its head.
    path = tmp_path / "shared.py"
    path.write_text(
        "import torch, torch.nn as nn\ntorch.manual_seed(0)\n"
        "model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for _ in range(30):\n    opt.zero_grad()\n"
        "    nn.functional.cross_entropy(model(torch.randn(16, 4)), torch.randint(0, 2, (16,)))"
        ".backward()\n    opt.step()\n"
        "model[0].requires_grad_(False)\nmodel[2] = nn.Linear(8, 3)\n"
        "opt2 = torch.optim.Adam(model[2].parameters(), lr=1e-3)\n"
        "for _ in range(30):\n    opt2.zero_grad()\n"
        "    nn.functional.cross_entropy(model(torch.randn(16, 4)), torch.randint(0, 3, (16,)))"
        ".backward()\n    opt2.step()\n"
    )
    capture = run_script(str(path), steps=10)
    assert capture.next_phase is not None
    first = capture.model
    assert all(p.requires_grad for p in first.parameters())
    assert first[2].out_features == 2
    assert {id(p) for g in capture.optimizer.param_groups for p in g["params"]} == {
        id(p) for p in first.parameters()
    }
    assert capture.next_phase.model[2].out_features == 3


EPOCHS_WITH_VALIDATION = """
import torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(800, 8)
y = (x[:, 0] > 0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)  # 25 steps an epoch
val = torch.randn(128, 8)
model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2),
                      nn.Linear(32, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
model.train()
for epoch in range(4):
    {restore}
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        print("val", model(val).argmax(1).float().mean().item())
"""


def _epochs(tmp_path: Path, restore: bool) -> str:
    path = tmp_path / "epochs.py"
    path.write_text(
        textwrap.dedent(EPOCHS_WITH_VALIDATION).format(
            restore="model.train()" if restore else "pass"
        )
    )
    return str(path)


@pytest.mark.fires("train-in-eval-mode")
def test_train_mode_not_restored_after_validation_is_seen_past_the_budget(
    tmp_path: Path,
) -> None:
    path = _epochs(tmp_path, restore=False)
    capture = run_script(path, steps=20)
    after = capture.recording.mode_after_evaluation
    assert after is not None and after.model_training is False and after.step == 25
    assert {"1", "3"} <= set(after.modules_in_eval)  # the BatchNorm and the Dropout
    assert capture.steps == 20 and capture.stop_reason == "step budget"
    assert "6 more optimizer step(s)" in capture.phase_note
    report = check_script(path, steps=20, selection=Selection(select=("train-in-eval-mode",)))
    (finding,) = report.by_check("train-in-eval-mode")
    assert finding.severity.value == "warning" and finding.reasons == [32]
    assert "after the model's first evaluation pass" in finding.message


@pytest.mark.silent("train-in-eval-mode")
def test_train_mode_restored_after_validation_is_silent(tmp_path: Path) -> None:
    path = _epochs(tmp_path, restore=True)
    capture = run_script(path, steps=20)
    after = capture.recording.mode_after_evaluation
    assert after is not None and after.model_training is True and after.modules_in_eval == []
    report = check_script(path, steps=20, selection=Selection(select=("train-in-eval-mode",)))
    assert serious(report) == []
    assert "resumed in train mode" in report.result("train-in-eval-mode").detail


def test_no_watch_without_an_eval_call_or_when_following_is_off(tmp_path: Path) -> None:
    path = Path(_epochs(tmp_path, restore=True))
    path.write_text(path.read_text().replace("model.eval()", "pass"))
    silent = run_script(str(path), steps=20)
    assert silent.recording.mode_after_evaluation is None and silent.steps == 20
    assert silent.recording.epoch_watch_end == ""
    off = run_script(_epochs(tmp_path, restore=False), steps=20, phase_steps=0)
    assert off.recording.mode_after_evaluation is None and off.phase_note == ""


def test_a_watch_cut_short_is_said_not_judged() -> None:
    from nndoctor.checks.lab import Lab
    from nndoctor.engine import run_checks
    from nndoctor.probes.recording import Recording, StepRecord

    rec = Recording(steps=[StepRecord(step=i, forwards=1, model_training=True) for i in range(3)])
    rec.epoch_watch_end = "the time limit was reached"
    results, findings = run_checks(
        None, rec, Lab(None), selection=Selection(select=("train-in-eval-mode",))
    )
    (result,) = [r for r in results if r.check == "train-in-eval-mode"]
    assert findings == [] and "the time limit was reached" in result.detail
    assert "not judged" in result.detail
