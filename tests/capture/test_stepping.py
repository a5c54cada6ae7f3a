"""Every way people step: optimizers that need a closure, full-batch training."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from subjects import serious

from nndoctor.capture.runner import run_script
from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

LBFGS_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
t = torch.linspace(0, 20, 1000)
x, y = torch.sin(t).unsqueeze(1), torch.cos(t).unsqueeze(1)
model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
opt = torch.optim.LBFGS(model.parameters(), lr=0.8)
for i in range(30):
    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss
    opt.step(closure)
"""


@pytest.mark.silent("batch-repeated")
@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_lbfgs_with_a_closure_on_the_whole_data_is_healthy(tmp_path: Path) -> None:
    path = tmp_path / "lbfgs.py"
    path.write_text(textwrap.dedent(LBFGS_SCRIPT))
    report = check_script(str(path), steps=20)
    assert report.run.observed and report.run.steps_observed == 20
    assert serious(report) == []
    # Several closure evaluations per step are one loss, not several terms: the experiments
    # run, stepping their copies with a closure of their own.
    assert report.result("cannot-overfit-tiny-batch").status == "passed"
    assert "full-batch training" in report.result("batch-repeated").detail


SPARSE_BESIDE_DENSE_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
ids = torch.randint(0, 200, (2048, 2))
w = torch.randn(200)
y = (w[ids[:, 0]] - w[ids[:, 1]] > 0).float()

class CTR(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(200, 8, sparse=True)
        self.mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, ids):
        return self.mlp(self.emb(ids).flatten(1)).squeeze(1)

model = CTR()
sparse = torch.optim.SparseAdam(list(model.emb.parameters()), lr=1e-2)
dense = torch.optim.Adam(model.mlp.parameters(), lr=1e-3)
for epoch in range(3):
    perm = torch.randperm(2048)
    for i in range(0, 2048, 64):
        idx = perm[i:i + 64]
        sparse.zero_grad()
        dense.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(model(ids[idx]), y[idx]).backward()
        sparse.step()
        dense.step()
"""


@pytest.mark.silent("optimizer-underperforms")
def test_sparse_embeddings_under_their_own_optimizer_train_beside_the_dense_layers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ctr.py"
    path.write_text(textwrap.dedent(SPARSE_BESIDE_DENSE_SCRIPT))
    only = ("optimizer-underperforms", "cannot-overfit-tiny-batch")
    report = check_script(str(path), steps=20, selection=Selection(select=only))
    # Copies step both parts as the script does (the embeddings alone would leave the MLP
    # at its start), and the known-good Adam hands the sparse table to SparseAdam.
    assert report.subject["optimizer"].startswith("SparseAdam(")
    assert "+ Adam(lr=0.001)" in report.subject["optimizer"]
    for check in only:
        assert report.result(check).status == "passed", report.result(check).detail
    assert serious(report) == []


def test_the_optimizers_beside_the_first_are_those_of_the_observed_phase(tmp_path: Path) -> None:
    # The script steps on past the budget with the live optimizers while the capture holds
    # copies of them: the live ones are not optimizers beside the copies.
    path = tmp_path / "ctr.py"
    path.write_text(textwrap.dedent(SPARSE_BESIDE_DENSE_SCRIPT))
    capture = run_script(str(path), steps=5)
    assert capture.steps == 5 and len(capture.other_optimizers) == 1
    own = {id(p) for p in capture.model.parameters()}
    for opt in (capture.optimizer, *capture.other_optimizers):
        assert {id(p) for g in opt.param_groups for p in g["params"]} <= own
    one = SPARSE_BESIDE_DENSE_SCRIPT.replace("sparse=True", "sparse=False")
    one = one.replace("SparseAdam(list(model.emb.parameters())", "Adam(model.parameters()")
    one = one.replace("        dense.step()\n", "").replace("        dense.zero_grad()\n", "")
    path.write_text(textwrap.dedent(one))
    capture = run_script(str(path), steps=5)
    assert capture.steps == 5 and capture.optimizer is not None
    assert capture.other_optimizers == []


MANUAL_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.randn(2000, 20)
y = (x[:, :3].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
lr = 0.1
for epoch in range(3):
    perm = torch.randperm(2000)
    for i in range(0, 2000, 32):
        idx = perm[i:i + 32]
        {zero_before}
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        with torch.no_grad():
            for p in {updated}:
                p -= lr * p.grad
                {zero_after}
"""


def _manual(tmp_path: Path, updated: str, zero_before: str, zero_after: str) -> object:
    path = tmp_path / "manual.py"
    script = MANUAL_SCRIPT.format(updated=updated, zero_before=zero_before, zero_after=zero_after)
    path.write_text(script)
    return check_script(str(path), steps=20)


@pytest.mark.silent("params-not-in-optimizer")
@pytest.mark.silent("zero-grad-missing")
@pytest.mark.parametrize(
    ("zero_before", "zero_after"),
    [("model.zero_grad()", "pass"), ("pass", "p.grad.zero_()"), ("pass", "p.grad = None")],
)
def test_parameters_updated_by_hand_are_steps(
    tmp_path: Path, zero_before: str, zero_after: str
) -> None:
    report = _manual(tmp_path, "model.parameters()", zero_before, zero_after)
    assert report.run.observed and report.run.steps_observed == 20
    assert any("no optimizer object" in n for n in report.run.notes)
    # The rule is plain SGD: its rate is read off the updates, and the experiments use it.
    assert report.subject["optimizer"] == "by hand: SGD(lr=0.1), inferred from the updates"
    assert report.result("cannot-overfit-tiny-batch").status == "passed"
    assert serious(report) == []


@pytest.mark.fires("params-not-in-optimizer")
def test_a_layer_left_out_of_the_update_by_hand(tmp_path: Path) -> None:
    report = _manual(tmp_path, "model[2].parameters()", "model.zero_grad()", "pass")
    (finding,) = report.by_check("params-not-in-optimizer")
    assert finding.reasons == [23]
    assert finding.evidence["parameters"] == ["0.weight", "0.bias"]
    assert "never updated" in finding.title


# The manual script's loop, its gradients taken with torch.autograd.grad instead.
TAKEN_GRADIENTS_SCRIPT = (
    MANUAL_SCRIPT.partition("        {zero_before}")[0]
    + """\
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        grads = torch.autograd.grad(loss, {updated})
        with torch.no_grad():
            for p, g in zip({updated}, grads):
                p -= lr * g
"""
)


def _taken(tmp_path: Path, updated: str) -> Report:
    path = tmp_path / "taken.py"
    path.write_text(TAKEN_GRADIENTS_SCRIPT.format(updated=updated))
    selected = ("params-not-in-optimizer", "cannot-overfit-tiny-batch", "zero-grad-missing")
    return check_script(str(path), steps=20, selection=Selection(select=selected))


@pytest.mark.silent("params-not-in-optimizer")
@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_gradients_taken_with_autograd_grad_and_applied_by_hand_are_steps(tmp_path: Path) -> None:
    # No backward pass and no .grad: the gradients are returned to the script, which
    # subtracts them itself (teaching code, first-order meta-learning).
    report = _taken(tmp_path, "model.parameters()")
    assert report.run.observed and report.run.steps_observed == 20
    assert any("torch.autograd.grad on the parameters" in n for n in report.run.notes)
    assert report.subject["optimizer"] == "by hand: SGD(lr=0.1), inferred from the updates"
    assert report.result("cannot-overfit-tiny-batch").status == "passed"
    assert serious(report) == []


@pytest.mark.fires("params-not-in-optimizer")
def test_a_layer_whose_gradients_are_never_taken_is_left_out_of_the_update(
    tmp_path: Path,
) -> None:
    report = _taken(tmp_path, "model[2].parameters()")
    (finding,) = report.by_check("params-not-in-optimizer")
    assert finding.evidence["parameters"] == ["0.weight", "0.bias"]


def test_a_loss_constant_in_the_weights_is_named_when_nothing_can_step(tmp_path: Path) -> None:
    # log_softmax over an axis of size 1 is 0 everywhere: the loss is 0, every gradient
    # zero, and the update by hand changes nothing, so no step is ever recognised.
    path = tmp_path / "manual.py"
    script = MANUAL_SCRIPT.format(
        updated="model.parameters()", zero_before="model.zero_grad()", zero_after="pass"
    ).replace(
        "nn.functional.cross_entropy(model(x[idx]), y[idx])",
        "nn.functional.nll_loss(model(x[idx]).unsqueeze(2).log_softmax(2).squeeze(2), y[idx])",
    )
    path.write_text(script)
    report = check_script(str(path), steps=20)
    assert not report.run.observed
    assert "every gradient they left was zero" in (report.run.error or "")
    assert report.run.likely_reasons == [19, 18]
    assert "does not depend on the weights" in (report.run.likely_cause or "")


ACCUMULATION_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.randn(2000, 20)
y = (x[:, :3].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for i in range(0, 2000, 32):
    loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32]) / 4
    loss.backward()
    if (i // 32) % 4 == 3:
        opt.step()
        opt.zero_grad()
"""


def test_accumulated_backward_passes_are_not_taken_for_updates_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "accumulate.py"
    path.write_text(ACCUMULATION_SCRIPT)
    report = check_script(str(path), steps=5)
    assert report.run.steps_observed == 5
    assert not any("no optimizer object" in n for n in report.run.notes)
    assert report.subject["optimizer"].startswith("SGD")


LOSS_IN_FORWARD_SCRIPT = """
import torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
data = torch.randint(0, 16, (5000,))
data[1::2] = (data[::2] * 3 + 1) % 16  # every second token follows from the one before
class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(16, 32)
        self.rnn = nn.GRU(32, 64, batch_first=True)
        self.head = nn.Linear(64, 16)
    def forward(self, idx, targets=None):
        logits = self.head(self.rnn(self.emb(idx))[0])
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss
model = TinyLM()
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
def get_batch():
    ix = torch.randint(len(data) - 9, (16,))
    return torch.stack([data[i:i + 8] for i in ix]), torch.stack([data[i + 1:i + 9] for i in ix])
for it in range(100):
    for micro in range(2):
        x, y = get_batch()
        _, loss = model(x, y)
        (loss / 2).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
"""


def test_a_loss_computed_in_forward_and_divided_over_micro_batches_is_replayed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tiny_lm.py"
    path.write_text(LOSS_IN_FORWARD_SCRIPT)
    report = check_script(str(path), steps=10)
    assert report.subject["replayable"], report.run.notes
    assert report.result("cannot-overfit-tiny-batch").status == "passed"
    assert report.result("labels-not-connected").status == "passed"
    assert serious(report) == []


COMPILED_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.randn(2048, 16)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
compiled = torch.compile(model)
opt = torch.optim.Adam(model.parameters(), 1e-3)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True)
for xb, yb in loader:
    opt.zero_grad()
    nn.functional.cross_entropy(compiled(xb), yb).backward()
    opt.step()
"""


@pytest.mark.slow
def test_a_compiled_model_is_observed_without_breaking_the_compile(tmp_path: Path) -> None:
    # The hooks run eagerly (graph breaks around them), the compiled module's original is
    # the model, and Inductor's build folders are real, inside the scratch.
    path = tmp_path / "compiled.py"
    path.write_text(COMPILED_SCRIPT)
    report = check_script(str(path), steps=10, timeout=300)
    assert report.run.observed, report.run.error
    assert report.subject["model"] == "Sequential" and report.subject["parameters"] == 610
    assert serious(report) == []


SLICE_REPEATED_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.randn(4096, 16)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.Adam(model.parameters(), 1e-3)
perm = torch.randperm(4096)
for step in range(100):
    idx = perm[:64]  # the bug: the same 64 rows of 4096 at every step
    xb, yb = (x[idx], y[idx]) if {indexed} else (x[:64], y[:64])
    opt.zero_grad()
    nn.functional.cross_entropy(model(xb), yb).backward()
    opt.step()
"""


@pytest.mark.fires("batch-repeated")
@pytest.mark.parametrize("indexed", [True, False])
def test_the_same_rows_drawn_at_every_step_are_a_repeated_batch(
    tmp_path: Path, indexed: bool
) -> None:
    # No DataLoader, but the batch is rebuilt from a larger tensor at every step (indexed
    # or sliced): more data was there.
    path = tmp_path / "slice.py"
    path.write_text(SLICE_REPEATED_SCRIPT.format(indexed=indexed))
    report = check_script(str(path), steps=20, selection=Selection(select=("batch-repeated",)))
    (finding,) = report.by_check("batch-repeated")
    assert set(finding.reasons) == {1, 3}


ACCUMULATED_LM_SCRIPT = """
import torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
V, T, B, ACC = 16, 24, 16, 4
# A text with structure: each token mostly follows from the one before it.
nxt = torch.randperm(V)
tokens = [0]
for _ in range(20000):
    tokens.append(int(nxt[tokens[-1]]) if torch.rand(()) < 0.8 else int(torch.randint(V, ())))
data = torch.tensor(tokens)

class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 32)
        self.rnn = nn.GRU(32, 64, batch_first=True)
        self.head = nn.Linear(64, V)

    def forward(self, idx, targets=None):
        logits = self.head(self.rnn(self.emb(idx))[0])
        loss = None if targets is None else F.cross_entropy(logits.view(-1, V), targets.view(-1))
        return logits, loss

def get_batch():
    ix = torch.randint(len(data) - T - 1, (B,))
    x = torch.stack([data[i:i + T] for i in ix])
    y = torch.stack([data[i + 1:i + T + 1] for i in {target_starts}])
    return x, y

model = TinyLM()
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
for it in range(200):
    for micro in range(ACC):
        x, y = get_batch()
        _, loss = model(x, y)
        (loss / ACC).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
"""


def _accumulated_lm(tmp_path: Path, target_starts: str) -> Report:
    # The back-propagated loss is a quarter of the criterion's value. A held-out batch's loss
    # compared with the best constant prediction, or an initial loss with chance, must be the
    # criterion's own value: a quarter of it beat any prior and sat far below chance.
    path = tmp_path / "accumulated_lm.py"
    path.write_text(ACCUMULATED_LM_SCRIPT.format(target_starts=target_starts))
    report = check_script(
        str(path),
        steps=20,
        selection=Selection(select=("labels-not-connected", "loss-not-at-chance")),
    )
    assert report.result("loss-not-at-chance").status == "passed"
    assert "initial loss 2.7" in report.result("loss-not-at-chance").detail
    return report


@pytest.mark.silent("labels-not-connected")
@pytest.mark.silent("loss-not-at-chance")
def test_an_accumulated_language_model_on_its_own_next_tokens_is_connected(tmp_path: Path) -> None:
    report = _accumulated_lm(tmp_path, "ix")
    assert report.result("labels-not-connected").status == "passed"


@pytest.mark.fires("labels-not-connected")
def test_an_accumulated_language_model_on_other_windows_targets_is_disconnected(
    tmp_path: Path,
) -> None:
    report = _accumulated_lm(tmp_path, "torch.randint(len(data) - T - 1, (B,))")
    (finding,) = report.by_check("labels-not-connected")
    assert 4 in finding.reasons, report.result("labels-not-connected").detail


PLAIN_TENSORS_SCRIPT = """
import torch
import torch.nn.functional as F
g = torch.Generator().manual_seed(0)
x = torch.randn(512, 6, generator=g)
y = (x[:, 0] > 0).long()
W1 = (torch.randn(6, 32, generator=g) * 0.4).requires_grad_()
b1 = torch.zeros(32, requires_grad=True)
W2 = (torch.randn(32, 2, generator=g) * 0.1).requires_grad_()
for i in range(50):
    ix = torch.randint(0, 512, (32,), generator=g)
    loss = F.cross_entropy(torch.tanh(x[ix] @ W1 + b1) @ W2, y[ix])
    for p in (W1, b1, W2):
        p.grad = None
    loss.backward()
    for p in (W1, b1, W2):
        p.data += -0.1 * p.grad
"""


def test_parameters_kept_as_plain_tensors_are_named_with_what_to_do(tmp_path: Path) -> None:
    # No module is ever called: the script cannot be observed, and the report says why
    # (the loss reaches tensors no module holds) and how to make it observable.
    path = tmp_path / "plain.py"
    path.write_text(PLAIN_TENSORS_SCRIPT)
    report = check_script(str(path), steps=10)
    assert not report.run.observed
    error = report.run.error or ""
    assert "3 plain tensor(s) (288 values)" in error, error
    assert "nn.Module" in error and "nndoctor.check(" in error


PER_CHARACTER_RNN_SCRIPT = """
import random, string
import torch, torch.nn as nn
random.seed(0); torch.manual_seed(0)
letters = string.ascii_lowercase
stems = [["son", "ley"], ["eau", "ier"], ["ini", "ucci"]]
names = [("".join(random.choice(letters) for _ in range(3)) + random.choice(stems[c]), c)
         for c in range(3) for _ in range(200)]

def line_tensor(line):
    t = torch.zeros(len(line), 1, len(letters))
    for i, ch in enumerate(line):
        t[i][0][letters.index(ch)] = 1
    return t

class RNN(nn.Module):
    def __init__(self, n_in, n_hidden, n_out):
        super().__init__()
        self.i2h = nn.Linear(n_in + n_hidden, n_hidden)
        self.i2o = nn.Linear(n_in + n_hidden, n_out)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, input, hidden):
        combined = torch.cat((input, hidden), 1)
        return self.softmax(self.i2o(combined)), self.i2h(combined)

rnn = RNN(len(letters), 64, 3)
criterion = nn.NLLLoss()
for it in range(2000):
    line, c = random.choice(names)
    x = line_tensor(line)
    hidden = torch.zeros(1, 64)
    rnn.zero_grad()
    for i in range(x.size(0)):
        output, hidden = rnn(x[i], hidden)
    loss = criterion(output, torch.tensor([c]))
    loss.backward()
    for p in rnn.parameters():
        p.data.add_(p.grad.data, alpha=-0.005)
"""


@pytest.mark.silent("loss-not-at-chance")
def test_a_recurrence_unrolled_in_the_script_is_not_replayed_from_one_call(
    tmp_path: Path,
) -> None:
    # The model is called once per character, its hidden state fed back: a copy trained on
    # the first call alone (the first letter, a zero state) learns another task, and its
    # failure to fit a tiny batch said nothing about this model.
    path = tmp_path / "char_rnn.py"
    path.write_text(PER_CHARACTER_RNN_SCRIPT)
    report = check_script(str(path), steps=20)
    assert report.run.observed
    assert not report.subject["replayable"]
    assert "called" in report.result("cannot-overfit-tiny-batch").detail
    assert report.result("cannot-overfit-tiny-batch").status == "skipped"
    assert serious(report) == []


ROLLOUT_SCRIPT = """
import torch, torch.nn as nn
from torch.distributions import Categorical
torch.manual_seed(0)
policy = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2), nn.Softmax(dim=1))
opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
for episode in range(200):
    pos, log_probs, rewards = 0, [], []
    for t in range(12):
        state = torch.zeros(1, 8)
        state[0, pos] = 1.0
        dist = Categorical(policy(state))
        action = dist.sample()
        log_probs.append(dist.log_prob(action))
        pos = max(0, min(7, pos + (1 if action.item() == 1 else -1)))
        rewards.append(1.0 if pos == 6 else -0.01)
        if pos == 6:
            break
    returns = torch.tensor([sum(rewards[i:]) for i in range(len(rewards))])
    returns = (returns - returns.mean()) / (returns.std() + 1e-8) if len(returns) > 1 else returns
    loss = -(torch.cat(log_probs) * returns).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


@pytest.mark.silent("loss-diverging")
def test_an_episode_that_starts_from_the_same_state_is_no_repeated_batch(tmp_path: Path) -> None:
    # Every episode's first call sees the start state; the step's batch is the whole rollout.
    path = tmp_path / "rollout.py"
    path.write_text(ROLLOUT_SCRIPT)
    report = check_script(str(path), steps=20)
    assert report.run.observed
    assert report.result("batch-repeated").status == "skipped"
    assert "rollout" in report.result("batch-repeated").detail
    assert serious(report) == []


EVALUATED_WITHOUT_NO_GRAD = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.randn(2048, 10)
y = (x[:, :2].sum(1) > 0).long()
xv, yv = x[:256], y[:256]
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for i in range(256, 2048, 32):
    loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
    opt.zero_grad(); loss.backward(); opt.step()
    model.eval()
    accuracy = (model(xv).argmax(1) == yv).float().mean()  # no torch.no_grad()
    model.train()
"""


def test_an_evaluation_forward_that_forgot_no_grad_is_no_second_call_per_loss(
    tmp_path: Path,
) -> None:
    # In eval mode it is no part of the training step: the step stays replayable.
    path = tmp_path / "evaluated.py"
    path.write_text(EVALUATED_WITHOUT_NO_GRAD)
    report = check_script(
        str(path), steps=10, selection=Selection(select=("cannot-overfit-tiny-batch",))
    )
    assert report.subject["replayable"], report.run.notes
    assert report.result("cannot-overfit-tiny-batch").status == "passed"


PER_SAMPLE = """
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

torch.manual_seed(0)
x, y = torch.randn(256, 6), torch.randint(0, 3, (256,))
model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
params = {k: v.detach() for k, v in model.named_parameters()}


def sample_loss(p, xi, yi):
    logits = functional_call(model, p, (xi.unsqueeze(0),))
    return nn.functional.cross_entropy(logits, yi.unsqueeze(0))


per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))
for step in range(30):
    idx = torch.randint(0, 256, (32,))
    grads = per_sample(params, x[idx], y[idx])
    with torch.no_grad():
        for k in params:
            norms = grads[k].flatten(1).norm(dim=1).clamp(min=1.0)
            params[k].sub_(0.1 * (grads[k] / norms.view(-1, *[1] * (grads[k].dim() - 1))).mean(0))
with torch.no_grad():
    print("accuracy", (model(x).argmax(1) == y).float().mean().item())
"""


STACKED_ENSEMBLE = """
import copy
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

torch.manual_seed(0)
x, y = torch.randn(256, 6), torch.randint(0, 3, (256,))
members = [nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)) for _ in range(4)]
params, buffers = stack_module_state(members)
base = copy.deepcopy(members[0]).to("meta")
ensemble = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)), in_dims=(0, 0, None))
optimizer = torch.optim.Adam(params.values(), lr=1e-2)
for step in range(30):
    idx = torch.randint(0, 256, (32,))
    logits = ensemble(params, buffers, x[idx])
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), y[idx].repeat(4))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""


def test_an_ensemble_trained_as_stacked_tensors_is_said_so(tmp_path: Path) -> None:
    # torch.func's model-ensembling recipe: the optimizer steps the stacked tensors, and
    # the module (on the meta device) only lends its forward to functional_call.
    path = tmp_path / "ensemble.py"
    path.write_text(STACKED_ENSEMBLE)
    report = check_script(str(path), steps=5)
    assert not report.run.observed
    error = report.run.error or ""
    assert "Adam stepped 30 time(s) on 4 tensor(s) that no module holds" in error, error
    assert "stack_module_state" in error


def test_a_model_trained_inside_torch_func_transforms_is_said_so(tmp_path: Path) -> None:
    # vmap(grad(functional_call(...))) runs the model's hooks on per-sample stand-ins that
    # must not leave the transform: the probe lets them pass (keeping one for its statistics
    # broke torch's internal checks), and the report says why no step was observed.
    path = tmp_path / "train.py"
    path.write_text(PER_SAMPLE)
    report = check_script(str(path), steps=5)
    assert not report.run.observed
    assert "only inside torch.func transforms" in (report.run.error or "")
