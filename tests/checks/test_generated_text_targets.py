"""Class targets that are generated text: a translation's output words are not classes to
balance. A model reading token ids and trained on output sequences of their own length
learns the output language's word frequencies, which inverse-frequency weights would
distort; one label per document, or a tag per input token, is still a label set."""

from __future__ import annotations

import pytest
import torch
from subjects import run
from torch import nn

PAD, VOCAB, SRC_LEN, TGT_LEN = 0, 30, 8, 6


class Translator(nn.Module):
    """Source token ids (batch, SRC_LEN) in, (batch * TGT_LEN, VOCAB) scores out, or one
    score row per document with ``per_document``."""

    def __init__(self, per_document: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.per_document = per_document
        self.embed = nn.Embedding(VOCAB, 16, padding_idx=PAD)
        self.out = nn.Linear(16, VOCAB if per_document else TGT_LEN * VOCAB)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        scores = self.out(self.embed(src).mean(1))
        return scores if self.per_document else scores.view(-1, VOCAB)


def _zipf(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Word ids 1..VOCAB-1 with Zipf-like frequencies: the commonest ~100x the rarest."""
    weights = 1.0 / torch.arange(1, VOCAB, dtype=torch.float) ** 1.4
    draws = torch.multinomial(
        weights,
        int(torch.tensor(shape).prod()),
        replacement=True,
        generator=torch.Generator().manual_seed(seed),
    )
    return (draws + 1).view(shape)


def _check(per_document: bool) -> object:
    n = 512
    src = _zipf((n, SRC_LEN), seed=0)
    if per_document:
        target = _zipf((n,), seed=1)
    else:
        target = _zipf((n, TGT_LEN), seed=1)
        target[:, -2:][torch.rand(n, 2, generator=torch.Generator().manual_seed(2)) < 0.5] = PAD
    model = Translator(per_document)
    data = [(src[i : i + 32], target[i : i + 32].reshape(-1)) for i in range(0, n, 32)]
    return run(
        select=["class-imbalance"],
        model=model,
        data=data,
        loss_fn=nn.CrossEntropyLoss(ignore_index=PAD),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.silent("class-imbalance")
def test_the_words_of_output_sequences_are_the_languages_own_frequencies() -> None:
    report = _check(per_document=False)
    assert report.by_check("class-imbalance") == []
    assert "generated text" in report.result("class-imbalance").detail


@pytest.mark.fires("class-imbalance")
def test_one_skewed_label_per_document_still_warns() -> None:
    (finding,) = _check(per_document=True).by_check("class-imbalance")
    assert finding.reasons == [8] and finding.evidence["ratio"] >= 10
