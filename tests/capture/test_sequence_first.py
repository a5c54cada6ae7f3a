"""Sequence-first data, ``(seq_len, batch)``, as the word-level language models lay it out.

The batch axis is the one the model's RNN/Transformer layers declare (``batch_first=False``:
axis 1), not the first: experiments cut tiny batches into whole sequences of fewer
streams, and batch independence changes one stream, not one position of every stream
(which a causal model rightly carries forward to the later positions).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from subjects import run
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nndoctor.engine import Selection, check_script
from nndoctor.subject import Subject, slice_batch

SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
# A text of words 0..11 where each word is followed by one of two others.
words = [0]
for _ in range(6000):
    words.append((2 * words[-1] + 1 + int(torch.randint(0, 2, (1,), generator=g))) % 12)
data = torch.tensor(words)
bsz, bptt = 16, 12
data = data[: data.numel() // bsz * bsz].view(bsz, -1).t().contiguous()  # (n_rows, batch)


class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(12, 32)
        self.rnn = nn.LSTM(32, 64)  # batch_first=False: (seq_len, batch, features)
        self.out = nn.Linear(64, 12)

    def forward(self, x, hidden):
        h, hidden = self.rnn(self.emb(x), hidden)
        {mix}
        return self.out(h).view(-1, 12), hidden


model = LM()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
hidden = None
for i in range(0, data.size(0) - 1 - bptt, bptt):
    x, y = data[i : i + bptt], data[i + 1 : i + 1 + bptt].reshape(-1)
    hidden = None if hidden is None else tuple(h.detach() for h in hidden)
    opt.zero_grad()
    out, hidden = model(x, hidden)
    loss = nn.functional.cross_entropy(out, y)
    loss.backward()
    opt.step()
"""

CHECKS = ("batch-dependence", "cannot-overfit-tiny-batch")


def _check(tmp_path: Path, mix: str = "pass") -> object:
    path = tmp_path / "lm.py"
    path.write_text(textwrap.dedent(SCRIPT.replace("{mix}", mix)))
    return check_script(str(path), steps=20, phase_steps=0, selection=Selection(select=CHECKS))


@pytest.mark.silent("batch-dependence")
@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_sequence_first_language_model_is_cut_and_perturbed_along_its_batch_axis(
    tmp_path: Path,
) -> None:
    report = _check(tmp_path)
    assert "along axis 1" in report.result("batch-dependence").detail
    assert "fit a tiny batch" in report.result("cannot-overfit-tiny-batch").detail


@pytest.mark.fires("batch-dependence")
def test_a_reduction_over_the_batch_axis_of_sequence_first_data_is_found(tmp_path: Path) -> None:
    report = _check(tmp_path, mix="h = h - h.mean(dim=1, keepdim=True)")
    (finding,) = report.by_check("batch-dependence")
    assert finding.severity == "error" and finding.reasons == [25]


def test_a_tiny_sequence_first_batch_keeps_whole_streams_and_their_targets() -> None:
    seq_len, batch, vocab = 12, 16, 5
    x = torch.arange(seq_len * batch).reshape(seq_len, batch)
    hidden = (torch.randn(1, batch, 4), torch.randn(1, batch, 4))
    targets = x.reshape(-1) + 1000  # one target per (position, stream), flattened
    mask = torch.zeros(seq_len, seq_len)  # shaped by the sequence: not the batch's
    captured = {
        "args": (x, hidden, mask),
        "kwargs": {},
        "targets": targets,
        "loss_input_shape": (seq_len * batch, vocab),
    }
    subject = Subject(
        model=torch.nn.Linear(1, 1),
        batches=[captured],
        loss_fn=lambda m, b: torch.zeros(()),
        inputs=lambda b: tuple(b["args"]),
        targets=lambda b: b["targets"],
        batch_axis=1,
    )
    tiny = slice_batch(captured, 3, subject)
    cut_x, (h, c), cut_mask = tiny["args"]
    assert torch.equal(cut_x, x[:, :3]) and cut_mask.shape == (seq_len, seq_len)
    assert h.shape == c.shape == (1, 3, 4) and torch.equal(h, hidden[0][:, :3])
    # Each target still belongs to its input position: stream b's word at step t, plus 1000.
    assert torch.equal(tiny["targets"], cut_x.reshape(-1) + 1000)
    assert tiny["loss_input_shape"] == (seq_len * 3, vocab)


class Classifier(nn.Module):
    """Token ids (batch, length) in, one score row per sequence out, through a Transformer
    layer declared ``batch_first=True`` or, the bug, left at the sequence-first default."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(12, 16)
        self.body = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=batch_first)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.emb(x)).mean(1))


def _classify(batch_first: bool) -> object:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 12, (256, 10), generator=g)
    labels = tokens[:, 0] % 3
    model = Classifier(batch_first)
    return run(
        select=["batch-dependence"],
        model=model,
        data=DataLoader(TensorDataset(tokens, labels), batch_size=16),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.silent("batch-dependence")
def test_batch_first_data_read_by_a_batch_first_layer_is_independent() -> None:
    assert _classify(batch_first=True).by_check("batch-dependence") == []


@pytest.mark.fires("batch-dependence")
def test_a_layer_left_sequence_first_on_batch_first_data_is_found() -> None:
    # The DataLoader's batches say axis 0 holds the samples; the layer attends across them.
    (finding,) = _classify(batch_first=False).by_check("batch-dependence")
    assert finding.severity.value == "error" and finding.reasons == [25]


class SequenceFirstClassifier(nn.Module):
    """``(seq_len, batch, features)`` in, one score row per sequence out."""

    def __init__(self, mix: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.GRU(4, 16)  # batch_first=False
        self.head = nn.Linear(16, 3)
        self.mix = mix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.rnn(x)[0][-1]  # (batch, hidden)
        if self.mix:  # the bug: a softmax over the batch axis, as attention weights gone wrong
            h = h * torch.softmax(h.sum(1, keepdim=True), dim=0)
        return self.head(h)


def _sequence_first_subject(mix: bool = False) -> Subject:
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(8):
        x = torch.randn(9, 16, 4, generator=g)  # (seq_len, batch, features)
        batches.append((x, (x[0, :, 0] > 0).long() + (x[0, :, 1] > 0).long()))
    return Subject(
        model=SequenceFirstClassifier(mix), batches=batches, criterion=nn.CrossEntropyLoss()
    )


@pytest.mark.silent("batch-dependence")
def test_a_python_api_subject_reads_its_batch_axis_off_the_observed_batches() -> None:
    from nndoctor.engine import check_subject

    subject = _sequence_first_subject()
    assert subject.batch_axis is None
    report = check_subject(subject, selection=Selection(select=CHECKS))
    # The per-sample targets (16,) say axis 1 of the (9, 16, 4) input holds the samples.
    assert subject.batch_axis == 1
    assert "along axis 1" in report.result("batch-dependence").detail
    assert report.by_check("batch-dependence") == []
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"


@pytest.mark.fires("batch-dependence")
def test_a_sequence_first_classifier_mixing_its_batch_is_found() -> None:
    from nndoctor.engine import check_subject

    report = check_subject(
        _sequence_first_subject(mix=True), selection=Selection(select=("batch-dependence",))
    )
    (finding,) = report.by_check("batch-dependence")
    assert finding.reasons == [25] and finding.evidence["batch"] == 4
