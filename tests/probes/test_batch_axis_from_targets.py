"""The batch axis read off a per-sample target comes before the model's declared layout:
a layer declaring ``batch_first=False`` fed batch-first data is a bug, and cutting along the
layer's axis would hide it (``transformer-no-batch-first`` in the bench)."""

from __future__ import annotations

import torch
from torch import nn

from nndoctor.probes.recording import Recording
from nndoctor.probes.training import TrainingProbe


class Classifier(nn.Module):
    """Token ids in, one class per sequence out: a Transformer layer declaring its layout,
    then a mean over ``time_axis``, the axis the script takes as time."""

    def __init__(self, batch_first: bool, time_axis: int) -> None:
        super().__init__()
        self.time_axis = time_axis
        self.emb = nn.Embedding(10, 8)
        self.body = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=batch_first)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.emb(x)).mean(self.time_axis))


def _axis(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> int:
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        nn.functional.cross_entropy(model(x), target).backward()
    return rec.input_batch_axis()


def test_one_label_per_sample_puts_the_batch_where_the_labels_are() -> None:
    batch, seq_len = 6, 9
    labels = torch.randint(0, 3, (batch,))
    # Batch-first data into a layer declaring sequence-first (the script pools axis 1 as
    # time): the labels still say axis 0, where the layer would say 1.
    buggy = Classifier(batch_first=False, time_axis=1)
    assert _axis(buggy, torch.randint(0, 10, (batch, seq_len)), labels) == 0
    # Sequence-first data, declared so: the labels agree with the layer, axis 1.
    healthy = Classifier(batch_first=False, time_axis=0)
    assert _axis(healthy, torch.randint(0, 10, (seq_len, batch)), labels) == 1


def test_per_position_or_ambiguous_targets_leave_it_to_the_declared_layout() -> None:
    seq_len, batch = 9, 6
    # Batch and sequence of one length: neither the labels nor the layer can tell (axis 0).
    x = torch.randint(0, 10, (batch, batch))
    model = Classifier(batch_first=False, time_axis=0)
    assert _axis(model, x, torch.randint(0, 3, (batch,))) == 0
    rec = Recording()
    model = nn.LSTM(4, 5)  # sequence-first; per-position targets of the input's own shape
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        out, _ = model(torch.randn(seq_len, batch, 4))
        nn.functional.mse_loss(out, torch.zeros(seq_len, batch, 5)).backward()
    assert rec.input_batch_axis() == 1
