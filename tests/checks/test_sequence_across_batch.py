"""sequence-across-batch: a token stream laid out along the wrong axis of the batch."""

from __future__ import annotations

import pytest
import torch
from subjects import run
from torch import nn

from nndoctor.checks.implementation.sequence_layout import held_out_gains

VOCAB = 24
BSZ = 16
BPTT = 12


def _markov_stream(n: int = 8000, seed: int = 0) -> torch.Tensor:
    """One long token stream from a random first-order Markov chain (text-like: each token
    tells about the next)."""
    g = torch.Generator().manual_seed(seed)
    transitions = torch.softmax(4.0 * torch.randn(VOCAB, VOCAB, generator=g), dim=1)
    stream = torch.empty(n, dtype=torch.long)
    stream[0] = 0
    for i in range(1, n):
        stream[i] = torch.multinomial(transitions[stream[i - 1]], 1, generator=g)
    return stream


def _batchify(stream: torch.Tensor, *, wrong: bool) -> torch.Tensor:
    """The word-language-model layout (rows, BSZ): each column a contiguous part of the
    stream, or (``wrong``) each row BSZ consecutive tokens."""
    rows = stream.numel() // BSZ
    data = stream[: rows * BSZ]
    return data.view(-1, BSZ).contiguous() if wrong else data.view(BSZ, -1).t().contiguous()


def _batches(source: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (source[i : i + BPTT], source[i + 1 : i + 1 + BPTT].reshape(-1))
        for i in range(0, source.shape[0] - 1 - BPTT, BPTT)
    ]


class SeqFirstLM(nn.Module):
    """Embedding, a sequence-first LSTM, logits flattened to (T * B, V)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = nn.LSTM(16, 32)
        self.out = nn.Linear(32, VOCAB)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.embed(x))  # (T, B, 32)
        return self.out(h).view(-1, VOCAB)  # (T * B, V)


def _check(wrong: bool, stream: torch.Tensor | None = None) -> object:
    model = SeqFirstLM()
    stream = _markov_stream() if stream is None else stream
    return run(
        select=["sequence-across-batch"],
        model=model,
        data=_batches(_batchify(stream, wrong=wrong)),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
    )


@pytest.mark.fires("sequence-across-batch")
def test_a_stream_laid_out_across_the_batch_is_found() -> None:
    report = _check(wrong=True)
    (finding,) = report.by_check("sequence-across-batch")
    assert finding.reasons == [4, 25] and finding.severity.value == "warning"
    assert finding.evidence["batch_axis"] == 1
    assert finding.evidence["batch_gain"] > 0.3 > finding.evidence["sequence_gain"]


@pytest.mark.silent("sequence-across-batch")
def test_a_stream_laid_out_along_the_sequence_is_silent() -> None:
    report = _check(wrong=False)
    assert report.by_check("sequence-across-batch") == []
    assert "along the sequence axis (first)" in report.result("sequence-across-batch").detail


@pytest.mark.parametrize("wrong", [False, True])
def test_tokens_in_no_order_tie_on_both_axes_and_are_silent(wrong: bool) -> None:
    stream = torch.randint(0, VOCAB, (8000,), generator=torch.Generator().manual_seed(1))
    report = _check(wrong=wrong, stream=stream)
    assert report.by_check("sequence-across-batch") == []
    assert report.result("sequence-across-batch").status.value == "passed"


def test_neighbours_that_are_independent_gain_nothing_held_out() -> None:
    g = torch.Generator().manual_seed(0)
    batches = [
        list(zip(*torch.randint(0, VOCAB, (2, 200), generator=g).tolist(), strict=True))
        for _ in range(8)
    ]
    dependent = [[(a, (a * 7 + 3) % VOCAB) for a, _ in b] for b in batches]
    assert max(held_out_gains(batches)) < 0.05
    assert min(held_out_gains(dependent)) > 1.0


def test_float_inputs_are_not_token_sequences() -> None:
    model = nn.Sequential(nn.Linear(8, 3))
    x = torch.randn(64, 8)
    y = torch.randint(0, 3, (64,))
    report = run(
        select=["sequence-across-batch"],
        model=model,
        data=[(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)],
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
    )
    assert report.result("sequence-across-batch").status.value == "skipped"
