"""Full-batch training on one part of an array, evaluation on the other few rows.

The sine-wave recipe holds out three waves of 48: evaluated at every step, three rows are
three samples however often they are fed, their standard deviation may be a tenth of the
training one by chance, and the training rows are cut once from the array beside them.
None of it is a bug; evaluation rows scaled differently, or a few rows of a larger set fed
at every step, are.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

SCRIPT = """
import numpy as np, torch, torch.nn as nn
torch.manual_seed(0)
rs = np.random.RandomState(0)
x = np.arange(40) + rs.uniform(-20, 20, 48).reshape(48, 1)
data = torch.from_numpy(np.sin(x / 5.0)).float()    # 48 waves
{split}
model = nn.Sequential(nn.Linear(39, 64), nn.Tanh(), nn.Linear(64, 39))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(40):
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(train_x), train_y)
    loss.backward()
    opt.step()
    with torch.no_grad():
        test_loss = nn.functional.mse_loss(model(test_x), test_y)
"""

HELD_OUT = """
train_x, train_y = data[3:, :-1], data[3:, 1:]
test_x, test_y = data[:3, :-1], data[:3, 1:]
"""

CHECKS = ("batch-repeated", "split-preprocessing-differs")


def _check(tmp_path: Path, split: str) -> Report:
    path = tmp_path / "waves.py"
    path.write_text(textwrap.dedent(SCRIPT.replace("{split}", textwrap.dedent(split))))
    return check_script(str(path), steps=20, phase_steps=0, selection=Selection(select=CHECKS))


@pytest.mark.silent("batch-repeated")
@pytest.mark.silent("split-preprocessing-differs")
def test_a_few_held_out_rows_of_the_array_trained_on_whole_are_no_alarm(tmp_path: Path) -> None:
    report = _check(tmp_path, HELD_OUT)
    assert "held-out split" in report.result("batch-repeated").detail
    # 20 evaluations of 3 waves are 3 samples against 45.
    assert "evaluation forwards" in report.result("split-preprocessing-differs").detail


@pytest.mark.silent("batch-repeated")
def test_rows_without_their_last_column_are_still_all_the_rows(tmp_path: Path) -> None:
    split = HELD_OUT.replace("data[3:", "torch.from_numpy(data.numpy()[3:]).clone()[:")
    report = _check(tmp_path, split.replace("data[:3", "data.clone()[:3"))
    assert "full-batch training" in report.result("batch-repeated").detail


COLUMN_MAJOR = """
waves = torch.from_numpy(np.asfortranarray(data.numpy()[{rows}]))   # numpy's column-major order
train_x, train_y = waves[:, :-1], waves[:, 1:]
test_x, test_y = data[:3, :-1].clone(), data[:3, 1:].clone()
"""


@pytest.mark.silent("batch-repeated")
def test_a_column_major_training_array_fed_whole_is_all_its_rows(tmp_path: Path) -> None:
    # Its rows interleave in memory: the first axis spans a fraction of the storage, the
    # tensor all of it.
    report = _check(tmp_path, COLUMN_MAJOR.format(rows="3:"))
    assert "full-batch training" in report.result("batch-repeated").detail


HAMILTONIAN = """
import numpy as np, torch, torch.nn as nn
torch.manual_seed(0)
rs = np.random.RandomState(0)
q = rs.uniform(-2, 2, (600, 2))
dq = np.stack([q[:, 1], -q[:, 0]]).T          # column-major, as np.stack(...).T gives
x, dxdt = torch.tensor(q[:300], dtype=torch.float32), torch.tensor(dq[:300], dtype=torch.float32)
test_x, test_dxdt = torch.tensor(q[300:], dtype=torch.float32), torch.tensor(dq[300:], dtype=torch.float32)


class Hamiltonian(nn.Module):
    def __init__(self):
        super().__init__()
        self.h = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 1))

    def forward(self, x):
        with torch.enable_grad():
            x = x.detach().requires_grad_()
            dh = torch.autograd.grad(self.h(x).sum(), x, create_graph=True)[0]
        return torch.cat([dh[:, 1:], -dh[:, :1]], dim=1)


model = Hamiltonian()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(40):
    loss = (model(x) - dxdt).pow(2).mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    if step % 20 == 0:
        test_loss = (model(test_x).detach() - test_dxdt).pow(2).mean()
"""


@pytest.mark.silent("batch-repeated")
def test_full_batch_training_with_an_evaluation_forward_under_gradients_is_no_repeat(
    tmp_path: Path,
) -> None:
    # A model that needs its input's gradient (a Hamiltonian network) is evaluated with
    # gradients on: at the step after it, that forward stands in for the step's batch.
    path = tmp_path / "hnn.py"
    path.write_text(HAMILTONIAN)
    report = check_script(str(path), steps=20, phase_steps=0, selection=Selection(select=CHECKS))
    assert "full-batch training" in report.result("batch-repeated").detail


@pytest.mark.fires("batch-repeated")
def test_a_few_rows_of_a_column_major_array_fed_at_every_step_are_found(tmp_path: Path) -> None:
    split = COLUMN_MAJOR.format(rows="3:").replace("waves[:, ", "waves[:8, ")
    (finding,) = _check(tmp_path, split).by_check("batch-repeated")
    assert finding.reasons == [1, 3]


@pytest.mark.fires("split-preprocessing-differs")
def test_three_held_out_rows_scaled_differently_are_found(tmp_path: Path) -> None:
    report = _check(tmp_path, HELD_OUT.replace("data[:3, :-1]", "10 * data[:3, :-1]"))
    (finding,) = report.by_check("split-preprocessing-differs")
    assert finding.reasons == [15] and finding.evidence["max_std_ratio"] > 5


@pytest.mark.fires("batch-repeated")
def test_a_few_rows_of_a_larger_set_fed_at_every_step_are_found(tmp_path: Path) -> None:
    # The debug subset left in: 8 rows fed at every step, the rest never used.
    report = _check(tmp_path, HELD_OUT.replace("data[3:", "data[3:11"))
    (finding,) = report.by_check("batch-repeated")
    assert finding.severity == "error" and finding.reasons == [1, 3]


def test_a_chance_match_evaluated_at_every_epoch_is_one_match() -> None:
    from nndoctor.checks.fingerprints import distinct_fingerprints
    from nndoctor.checks.lab import Lab
    from nndoctor.engine import Selection, run_checks
    from nndoctor.probes.recording import Recording, StepRecord

    train = [-1.0 - 0.5 * i for i in range(1024)]
    held_out = [1000.0 + 10.0 * i for i in range(255)]
    # One validation sample collides with a training one (one-number fingerprints of
    # thousands of samples do), and the validation set is evaluated at each of 6 epochs.
    val = [*held_out, train[7]]
    rec = Recording()
    rec.steps = [
        StepRecord(step=i, sample_fingerprints=train[i * 256 : (i + 1) * 256]) for i in range(4)
    ]
    rec.eval_sample_fingerprints = val * 6
    assert len(distinct_fingerprints(rec.eval_sample_fingerprints)) == 256
    results, findings = run_checks(
        None, rec, Lab(None), selection=Selection(select=("split-preprocessing-differs",))
    )
    assert [f for f in findings if "shared" in f.title] == []
    (result,) = [r for r in results if r.check == "split-preprocessing-differs"]
    assert "256 distinct evaluation samples against 1024 distinct training samples" in result.detail


CONVERTED_EACH_STEP = """
import numpy as np, torch, torch.nn as nn
torch.manual_seed(0)
rs = np.random.RandomState(0)
x_all = rs.uniform(-3, 3, (200, 3)).astype(np.float32)
y_all = np.sin(x_all[:, :1]).astype(np.float32)
{keep}
model = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(30):
    {feed}
    loss = nn.functional.mse_loss(model(inputs), targets)
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def _converted(tmp_path: Path, feed: str, keep: str = "x_train, y_train = x_all, y_all") -> Report:
    path = tmp_path / "tutorial.py"
    path.write_text(CONVERTED_EACH_STEP.format(feed=feed, keep=keep))
    return check_script(
        str(path), steps=20, phase_steps=0, selection=Selection(select=("batch-repeated",))
    )


@pytest.mark.silent("batch-repeated")
@pytest.mark.parametrize(
    "feed",
    [
        # The tutorial loop: the numpy arrays made tensors again at every epoch.
        "inputs, targets = torch.from_numpy(x_train), torch.from_numpy(y_train)",
        # Copied anew (as x.to(device) does on an accelerator).
        "inputs, targets = torch.tensor(x_train), torch.tensor(y_train)",
    ],
    ids=["from-numpy", "copied"],
)
def test_the_whole_array_converted_at_every_step_is_full_batch_training(
    tmp_path: Path, feed: str
) -> None:
    report = _converted(tmp_path, feed)
    assert "its whole array of 200 rows" in report.result("batch-repeated").detail


@pytest.mark.silent("batch-repeated")
@pytest.mark.parametrize(
    "feed",
    [
        # Scaled at every step: a new tensor no held array matches.
        "inputs, targets = torch.from_numpy(x_train) / 3.0, torch.from_numpy(y_train)",
        # Features computed from the data at every step (the polynomial tutorial's powers).
        "inputs = torch.from_numpy(x_train[:, :1]) ** torch.arange(1, 4); "
        "targets = torch.from_numpy(y_train)",
    ],
    ids=["scaled", "features"],
)
def test_an_input_computed_anew_from_the_whole_data_is_full_batch_training(
    tmp_path: Path, feed: str
) -> None:
    # Nothing shows more data than the batch: no larger array holds its samples, no seed
    # is reset before it is drawn.
    report = _converted(tmp_path, feed)
    assert report.by_check("batch-repeated") == []
    assert "nothing shows the script had other samples" in report.result("batch-repeated").detail


@pytest.mark.fires("batch-repeated")
def test_the_first_rows_of_a_larger_array_converted_at_every_step_repeat(tmp_path: Path) -> None:
    # Drawn from 200 rows, 64 of them fed at every step: the source had more to give.
    report = _converted(
        tmp_path, "inputs, targets = torch.tensor(x_train[:64]), torch.tensor(y_train[:64])"
    )
    (finding,) = report.by_check("batch-repeated")
    assert finding.severity == "error"


@pytest.mark.fires("batch-repeated")
def test_a_batch_drawn_anew_after_a_seed_reset_repeats(tmp_path: Path) -> None:
    # The input is held only as itself: nothing it could be the whole of.
    report = _converted(
        tmp_path,
        "torch.manual_seed(1); inputs = torch.randn(64, 3); targets = inputs[:, :1].sin()",
        keep="",
    )
    (finding,) = report.by_check("batch-repeated")
    assert finding.severity == "error"
    assert finding.evidence["more_to_give"].startswith("the script re-seeds its random generator")
