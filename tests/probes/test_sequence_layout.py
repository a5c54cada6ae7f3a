"""Where the batch axis of the model input is: read off the layers that declare a layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nndoctor.probes.recording import LoaderInfo, Recording, StepRecord, TensorSummary
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


def _fed(loader_shapes: list[tuple[int, ...]], input_shape: tuple[int, ...]) -> Recording:
    """A recording of one step fed by a DataLoader of batches of 32 whose tensors had
    ``loader_shapes``, the model input being ``input_shape``, read by a layer declaring
    batch-first sequences (which takes the input's first axis for the batch)."""
    rec = Recording()
    rec.loaders.append(
        LoaderInfo(0, "RandomSampler", True, 32, 1000, "StudentLogs", False, 0, batches_yielded=1)
    )
    rec.sequence_layouts["lstm"] = (True, (*input_shape, 8))
    rec.steps.append(
        StepRecord(
            step=0,
            inputs=TensorSummary(shape=input_shape, dtype="torch.int64"),
            loader=0,
            loader_shapes=loader_shapes,
        )
    )
    return rec


def test_a_sample_cut_off_a_sequence_first_batch_leaves_the_batch_where_the_loader_put_it() -> None:
    # pad_sequence without batch_first gives (time, students); the script's x[:, :-1], meant
    # to drop the last position, drops the last student: no axis of the input has the
    # loader's 32, but the loader's tensor had it on axis 1 and the time axis is unchanged.
    assert _fed([(60, 32), (60, 32)], (60, 31)).input_batch_axis() == 1
    # Batch-first and cut along time as meant: the loader's batch size is on axis 0 as is.
    assert _fed([(32, 60)], (32, 59)).input_batch_axis() == 0
    # The loader tensor differs from the input in more than the batch axis: no carry-over,
    # and the declared layout decides (axis 0).
    assert _fed([(61, 32)], (60, 31)).input_batch_axis() == 0
