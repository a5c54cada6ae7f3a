"""Targets that are the model's own input tokens (reason 3), told from the setups that
hand a model its input or its labels on purpose."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

CHECK = "targets-copy-input"

LANGUAGE_MODEL = """
import torch
from torch import nn
torch.manual_seed(0)
V, L = 20, 12
tokens = torch.randint(1, V, (512, L + 1))

class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 32)
        self.rnn = nn.GRU(32, 32, batch_first=True)
        self.out = nn.Linear(32, V)

    def forward(self, x):
        {shift}
        return self.out(self.rnn(self.emb(x))[0])

model = LM()
opt = torch.optim.Adam(model.parameters(), 1e-3)
for step in range(30):
    batch = tokens[torch.randint(0, 512, (16,))]
    inputs, targets = {split}
    logits = model(inputs)
    loss = nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    opt.zero_grad(); loss.backward(); opt.step()
"""

# A tagger that computes its loss inside forward, from the tags it is handed.
TAGGER = """
import torch
from torch import nn
torch.manual_seed(0)
V, T, L = 20, 5, 12
words = torch.randint(1, V, (512, L))
tags = words % T

class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 32)
        self.out = nn.Linear(32, T)

    def forward(self, input_ids, {labels}):
        logits = self.out(self.emb(input_ids))
        return nn.functional.cross_entropy(logits.reshape(-1, T), {labels}.reshape(-1))

model = Tagger()
opt = torch.optim.Adam(model.parameters(), 1e-3)
for step in range(30):
    i = torch.randint(0, 512, (16,))
    loss = model({call})
    opt.zero_grad(); loss.backward(); opt.step()
"""

# An encoder-decoder over batch-first or sequence-first sequences, for the scripts below.
SEQ2SEQ = """class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 32)
        self.encoder = nn.GRU(32, 32{layout})
        self.decoder = nn.GRU(32, 32{layout})
        self.out = nn.Linear(32, V)

    def forward(self, src, tgt_in):
        _, h = self.encoder(self.emb(src))
        return self.out(self.decoder(self.emb(tgt_in), h)[0])
"""
BATCH_FIRST_SEQ2SEQ = SEQ2SEQ.format(layout=", batch_first=True")
SEQUENCE_FIRST_SEQ2SEQ = SEQ2SEQ.format(layout="")

# The copy task: the decoder is fed the source shifted behind a start token, and predicts it.
COPY_TASK = """
import torch
from torch import nn
torch.manual_seed(0)
V, L, BOS = 20, 10, 0
source = torch.randint(1, V, (512, L))

{model}
model = Seq2Seq()
opt = torch.optim.Adam(model.parameters(), 1e-3)
for step in range(30):
    src = source[torch.randint(0, 512, (16,))]
    tgt_in = torch.cat([torch.full((16, 1), BOS), src[:, :-1]], 1)
    logits = model(src, tgt_in)
    loss = nn.functional.cross_entropy(logits.reshape(-1, V), src.reshape(-1))
    opt.zero_grad(); loss.backward(); opt.step()
"""


def _check(tmp_path: Path, script: str) -> Report:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(script))
    return check_script(str(path), steps=10, phase_steps=0, selection=Selection(select=(CHECK,)))


@pytest.mark.fires("targets-copy-input")
def test_next_token_targets_sliced_like_the_inputs_are_found(tmp_path: Path) -> None:
    report = _check(
        tmp_path, LANGUAGE_MODEL.format(split="batch[:, :-1], batch[:, :-1]", shift="pass")
    )
    (finding,) = report.by_check(CHECK)
    assert finding.reasons == [3, 4, 21] and finding.severity == "warning"
    assert finding.evidence["min_same_position_share"] == 1.0


@pytest.mark.silent("targets-copy-input")
def test_next_token_targets_one_position_on_pass(tmp_path: Path) -> None:
    report = _check(
        tmp_path, LANGUAGE_MODEL.format(split="batch[:, :-1], batch[:, 1:]", shift="pass")
    )
    assert report.by_check(CHECK) == []
    assert "one position on" in report.result(CHECK).detail


@pytest.mark.silent("targets-copy-input")
@pytest.mark.parametrize(
    ("labels", "call"),
    [("tags", "words[i], tags[i]"), ("labels", "input_ids=words[i], labels=tags[i]")],
    ids=["positional", "keyword"],
)
def test_labels_handed_to_a_model_that_computes_its_loss_are_no_input(
    tmp_path: Path, labels: str, call: str
) -> None:
    report = _check(tmp_path, TAGGER.format(labels=labels, call=call))
    assert report.by_check(CHECK) == []
    assert report.result(CHECK).status == "passed"


@pytest.mark.silent("targets-copy-input")
def test_a_copy_task_whose_decoder_is_fed_the_shifted_source_passes(tmp_path: Path) -> None:
    report = _check(tmp_path, COPY_TASK.format(model=BATCH_FIRST_SEQ2SEQ))
    assert report.by_check(CHECK) == []
    assert "one position on" in report.result(CHECK).detail


# Translation with teacher forcing, sequence-first: the decoder reads tgt[:-1] and the loss
# scores {target}, two slices of one tensor, the loss computed outside the model.
TEACHER_FORCED = """
import torch
from torch import nn
torch.manual_seed(0)
V, L, BOS = 20, 10, 0
pairs = torch.randint(1, V, (L, 512))

{model}
model = Seq2Seq()
opt = torch.optim.Adam(model.parameters(), 1e-3)
for step in range(30):
    idx = torch.randint(0, 512, (16,))
    src = pairs[:, idx]
    tgt = torch.cat([torch.full((1, 16), BOS), src.flip(0)], 0)
    logits = model(src, tgt[:-1, :])
    loss = nn.functional.cross_entropy(logits.reshape(-1, V), {target}.reshape(-1))
    opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.fires("targets-copy-input")
def test_a_decoder_fed_the_very_slice_it_is_scored_on_is_found(tmp_path: Path) -> None:
    report = _check(
        tmp_path, TEACHER_FORCED.format(model=SEQUENCE_FIRST_SEQ2SEQ, target="tgt[:-1, :]")
    )
    (finding,) = report.by_check(CHECK)
    assert finding.evidence["min_same_position_share"] == 1.0


@pytest.mark.silent("targets-copy-input")
def test_a_decoder_fed_the_slice_before_its_targets_passes(tmp_path: Path) -> None:
    report = _check(
        tmp_path, TEACHER_FORCED.format(model=SEQUENCE_FIRST_SEQ2SEQ, target="tgt[1:, :]")
    )
    assert report.by_check(CHECK) == []


# A decoder that shifts its tokens inside ``forward`` (a start token 0 in front, the last
# token dropped): handed the very sequence it is scored on, it predicts each token from the
# ones before it and never sees the one it predicts.
SHIFT_INSIDE = "x = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)"


@pytest.mark.silent("targets-copy-input")
def test_a_decoder_that_shifts_inside_forward_cannot_see_what_it_predicts(tmp_path: Path) -> None:
    report = _check(tmp_path, LANGUAGE_MODEL.format(split="batch, batch", shift=SHIFT_INSIDE))
    assert report.by_check(CHECK) == []
    assert "cannot see the token it predicts" in report.result(CHECK).detail


@pytest.mark.fires("targets-copy-input")
def test_the_same_decoder_without_its_shift_is_found(tmp_path: Path) -> None:
    report = _check(tmp_path, LANGUAGE_MODEL.format(split="batch, batch", shift="pass"))
    (finding,) = report.by_check(CHECK)
    assert finding.evidence["min_same_position_share"] == 1.0


# A return-conditioned policy in the manner of a Decision Transformer: states and actions
# interleaved, each action predicted at its state's token, trajectories cut with padding in
# front (scored nowhere) and the padding mask passed by keyword. A padded query has no key
# left, attends to every token alike, the last action's included: what it outputs is read
# by no loss.
POLICY = """
import math, torch
from torch import nn
torch.manual_seed(0)
A, L, D = 4, 8, 32
states = torch.randn(512, L, 6)
actions = states[..., :A].argmax(-1)
lengths = torch.randint(3, L + 1, (512,))

class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.state, self.action = nn.Linear(6, D), nn.Embedding(A, D)
        self.pos = nn.Parameter(torch.randn(2 * L, D) * 0.1)
        self.qkv, self.head = nn.Linear(D, 3 * D), nn.Linear(D, A)

    def forward(self, states, actions, pad):
        B = states.shape[0]
        h = torch.stack([self.state(states), self.action(actions)], 2).reshape(B, 2 * L, D)
        h = h + self.pos
        q, k, v = self.qkv(h).chunk(3, -1)
        att = q @ k.transpose(1, 2) / math.sqrt(D)
        causal = torch.ones(2 * L, 2 * L, dtype=torch.bool).tril()
        keep = causal & ~pad.repeat_interleave(2, 1)[:, None, :]
        h = h + att.masked_fill(~keep, torch.finfo(att.dtype).min).softmax(-1) @ v
        return self.head(h[:, 0::2])

model = Policy()
opt = torch.optim.Adam(model.parameters(), 1e-3)
for step in range(30):
    i = torch.randint(0, 512, (16,))
    pad = torch.arange(L) < (L - lengths[i])[:, None]
    targets = actions[i].masked_fill(pad, -100)
    logits = model(states[i], actions[i], pad=pad)
    loss = nn.functional.cross_entropy(logits.reshape(-1, A), targets.reshape(-1))
    opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.silent("targets-copy-input")
def test_a_policy_predicting_each_action_before_it_is_given_passes_beside_padding(
    tmp_path: Path,
) -> None:
    report = _check(tmp_path, POLICY)
    assert report.by_check(CHECK) == []
    assert "cannot see the token it predicts" in report.result(CHECK).detail


LABELS_HANDED = """
import torch
from torch import nn
torch.manual_seed(0)
x, y = torch.randn(512, 10), torch.randint(0, 4, (512,))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
        self.label_emb = nn.Embedding(4, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x, y=None):
        h = self.body(x)
        if self.training and y is not None:
            {use}
        return self.head(h)

model = Net()
opt = torch.optim.Adam(model.parameters(), 1e-3)
for step in range(30):
    i = torch.randint(0, 512, (32,))
    xb, yb = x[i], y[i]
    loss = nn.functional.cross_entropy(model(xb, yb), yb)
    opt.zero_grad(); loss.backward(); opt.step()
"""


def _labels_handed(tmp_path: Path, use: str) -> Report:
    path = tmp_path / "handed.py"
    path.write_text(LABELS_HANDED.format(use=use))
    return check_script(str(path), steps=8, phase_steps=0, selection=Selection(select=(CHECK,)))


@pytest.mark.silent("targets-copy-input")
def test_labels_handed_to_a_forward_that_only_mixes_the_batch_are_not_read(tmp_path: Path) -> None:
    # Manifold mixup: the labels say "training", their values are never read.
    mix = "lam = 0.7; h = lam * h + (1 - lam) * h[torch.randperm(h.shape[0])]"
    report = _labels_handed(tmp_path, mix)
    assert report.by_check(CHECK) == []
    assert "do not read them" in report.result(CHECK).detail


@pytest.mark.fires("targets-copy-input")
def test_labels_a_forward_embeds_into_its_features_leak(tmp_path: Path) -> None:
    # The label is added to the features the head reads: the model can copy it.
    report = _labels_handed(tmp_path, "h = h + self.label_emb(y)")
    (finding,) = report.by_check(CHECK)
    assert finding.reasons == [3, 4, 21]


# Extractive question answering as Hugging Face models do it: the answer's start position
# handed to the model, which returns its own loss beside the logits over the positions.
SPAN_START = """
import torch
from torch import nn
torch.manual_seed(0)
n, L = 512, 12
ids = torch.randint(3, 20, (n, L))
start = torch.distributions.Geometric(0.35).sample((n,)).long().clamp(max=L - 2) + 1
ids[torch.arange(n), start - 1] = 1  # a marker token just before the answer

class SpanModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 16)
        self.mix = nn.Conv1d(16, 16, 3, padding=1)
        self.start = nn.Linear(16, 1)

    def forward(self, input_ids, start_positions=None):
        h = self.mix(self.emb(input_ids).transpose(1, 2)).transpose(1, 2)
        logits = self.start(torch.tanh(h)).squeeze(-1)
        loss = None
        if start_positions is not None:
            {leak}
            loss = nn.functional.cross_entropy(logits, start_positions.clamp(0, L))
        return loss, logits

model = SpanModel()
opt = torch.optim.Adam(model.parameters(), 1e-3)
for step in range(40):
    i = torch.randint(0, n, (32,))
    loss, _ = model(ids[i], start_positions=start[i])
    opt.zero_grad(); loss.backward(); opt.step()
"""


def _span_start(tmp_path: Path, leak: str, checks: tuple[str, ...] = (CHECK,)) -> Report:
    path = tmp_path / "span.py"
    path.write_text(SPAN_START.format(leak=leak))
    return check_script(str(path), steps=8, phase_steps=0, selection=Selection(select=checks))


@pytest.mark.silent(CHECK)
@pytest.mark.silent("class-imbalance")
def test_answer_positions_handed_to_a_model_that_returns_its_own_loss(tmp_path: Path) -> None:
    # The labels reach only the loss the model returns (a scalar), never its logits; and
    # the classes are positions in the input, most answers early by the data's layout.
    report = _span_start(tmp_path, "pass", (CHECK, "class-imbalance"))
    assert report.findings == []
    assert "do not read them" in report.result(CHECK).detail
    assert "scores positions of the input sequence" in report.result("class-imbalance").detail


@pytest.mark.fires(CHECK)
def test_answer_positions_written_into_the_logits_leak(tmp_path: Path) -> None:
    leak = "logits = logits + 5 * nn.functional.one_hot(start_positions, L)"
    (finding,) = _span_start(tmp_path, leak).by_check(CHECK)
    assert finding.reasons == [3, 4, 21]
