"""Where the batch axis of the model input is: read off the layers that declare a layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nndoctor.probes.recording import Recording
from nndoctor.probes.training import TrainingProbe


class Tagger(nn.Module):
    """Token ids in, one score per token out, through a recurrent or attention layer."""

    def __init__(self, layer: str, batch_first: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        if layer == "lstm":
            self.body: nn.Module = nn.LSTM(8, 8, batch_first=batch_first)
        else:
            self.body = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=batch_first)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(self.emb(x))
        return self.head(h[0] if isinstance(h, tuple) else h)


def _axis(model: nn.Module, x: torch.Tensor) -> int:
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        out = model(x)
        nn.functional.cross_entropy(
            out.reshape(-1, 3), torch.zeros(out.shape[:-1].numel(), dtype=torch.long)
        ).backward()
    return rec.input_batch_axis()


@pytest.mark.parametrize("layer", ["lstm", "transformer"])
def test_sequence_first_layers_put_the_batch_on_the_second_axis(layer: str) -> None:
    seq_len, batch = 7, 5
    assert _axis(Tagger(layer, batch_first=False), torch.randint(0, 10, (seq_len, batch))) == 1
    assert _axis(Tagger(layer, batch_first=True), torch.randint(0, 10, (batch, seq_len))) == 0


def test_without_a_declared_layout_or_with_a_tie_the_batch_axis_is_the_first() -> None:
    mlp = nn.Sequential(nn.Embedding(10, 8), nn.Linear(8, 3))
    assert _axis(mlp, torch.randint(0, 10, (7, 5))) == 0
    # As long as the batch: either axis could hold it, and the convention stands.
    assert _axis(Tagger("lstm", batch_first=False), torch.randint(0, 10, (5, 5))) == 0


def test_the_data_says_first_a_layer_declared_with_the_wrong_layout_does_not() -> None:
    # Batch-first token ids (batch 5, length 7) with one label each, read by a layer left
    # at batch_first=False: the layer takes the 7 positions for its batch, the data has 5.
    model = Tagger("transformer", batch_first=False)
    x, y = torch.randint(0, 10, (5, 7)), torch.randint(0, 3, (5,))
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        nn.functional.cross_entropy(model(x)[:, -1], y).backward()
    assert set(rec.sequence_layouts.values()) == {(False, (5, 7, 8))}
    assert rec.input_batch_axis() == 0
