"""reads-next-token: a next-token model whose predictions read the token they predict."""

from __future__ import annotations

import pytest
import torch
from subjects import batches, run
from torch import nn
from torch.nn import functional as F

VOCAB = 12


def _markov_text(n: int = 256, length: int = 17, seed: int = 0) -> torch.Tensor:
    """Token sequences from a random first-order Markov chain: (n, length) ids."""
    g = torch.Generator().manual_seed(seed)
    transitions = torch.softmax(3.0 * torch.randn(VOCAB, VOCAB, generator=g), dim=1)
    seq = torch.empty(n, length, dtype=torch.long)
    seq[:, 0] = torch.randint(0, VOCAB, (n,), generator=g)
    for i in range(1, length):
        seq[:, i] = torch.multinomial(transitions[seq[:, i - 1]], 1, generator=g).squeeze(1)
    return seq


class CausalConvLM(nn.Module):
    """Embedding, a dilated convolution padded on one side, logits (B, V, T)."""

    def __init__(self, leak: bool = False, kernel: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 16)
        self.conv = nn.Conv1d(16, 32, kernel)
        self.out = nn.Conv1d(32, VOCAB, 1)
        self.pad = (0, kernel - 1) if leak else (kernel - 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x).transpose(1, 2)  # (B, 16, T)
        h = torch.relu(self.conv(F.pad(h, self.pad)))  # (B, 32, T)
        return self.out(h)  # (B, V, T)


def _check(model: nn.Module, data: list) -> object:
    return run(
        select=["reads-next-token"],
        model=model,
        data=data,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


def _next_token_batches() -> list:
    seq = _markov_text()
    return batches(seq[:, :-1], seq[:, 1:])


@pytest.mark.fires("reads-next-token")
def test_a_causal_convolution_padded_on_the_right_reads_the_answer() -> None:
    report = _check(CausalConvLM(leak=True), _next_token_batches())
    (finding,) = report.by_check("reads-next-token")
    assert finding.reasons == [22, 25] and finding.severity.value == "error"
    assert finding.evidence["relative_change"] > 1e-3


@pytest.mark.silent("reads-next-token")
def test_a_causal_convolution_padded_on_the_left_is_silent() -> None:
    report = _check(CausalConvLM(), _next_token_batches())
    assert report.by_check("reads-next-token") == []
    assert report.result("reads-next-token").status.value == "passed"


class SeqFirstLSTM(nn.Module):
    """A word-language-model LSTM on (T, B) ids, logits flattened to (T * B, V)."""

    def __init__(self, bidirectional: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 16)
        self.rnn = nn.LSTM(16, 16, bidirectional=bidirectional)
        self.out = nn.Linear(32 if bidirectional else 16, VOCAB)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.embed(x))  # (T, B, H)
        return self.out(h).view(-1, VOCAB)  # (T * B, V)


def _sequence_first_batches() -> list:
    seq = _markov_text().t().contiguous()  # (T, B)
    return [(seq[:-1, i : i + 32], seq[1:, i : i + 32].reshape(-1)) for i in range(0, 256, 32)]


@pytest.mark.silent("reads-next-token")
def test_a_sequence_first_lstm_language_model_is_causal() -> None:
    report = _check(SeqFirstLSTM(), _sequence_first_batches())
    assert report.by_check("reads-next-token") == []
    assert "largest relative change" in report.result("reads-next-token").detail


@pytest.mark.fires("reads-next-token")
def test_a_bidirectional_lstm_in_a_language_model_reads_the_answer() -> None:
    report = _check(SeqFirstLSTM(bidirectional=True), _sequence_first_batches())
    (finding,) = report.by_check("reads-next-token")
    assert finding.evidence["length"] == 16


def test_targets_that_are_not_the_next_token_are_not_measured() -> None:
    # A bidirectional tagger reads the whole sentence on purpose.
    seq = _markov_text()
    tags = (seq[:, :-1] % 3).roll(1, dims=1)
    report = _check(CausalConvLM(leak=True), batches(seq[:, :-1], tags))
    assert report.result("reads-next-token").status.value == "skipped"
