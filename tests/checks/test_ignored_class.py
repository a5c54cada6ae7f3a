"""ignore_index set to a class that labels real positions (reason 18)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from subjects import run
from torch import nn

CLASSES, VOCAB, LENGTH = 4, 30, 12


class Tagger(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 16, padding_idx=0)
        self.out = nn.Linear(16, CLASSES)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(words))  # (B, T, C)


def tagged_batches(pad_tag: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Sentences of 6 to 12 words padded at the end: word 0 and tag ``pad_tag`` as padding.
    Tag 0 ('O') is the most frequent real tag; the last class labels no word."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(8):
        words = torch.zeros(16, LENGTH, dtype=torch.long)
        tags = torch.full((16, LENGTH), pad_tag, dtype=torch.long)
        for i in range(16):
            n = int(torch.randint(6, LENGTH + 1, (1,), generator=g))
            w = torch.randint(1, VOCAB, (n,), generator=g)
            words[i, :n] = w
            tags[i, :n] = torch.where(w < 20, 0, 1 + w % (CLASSES - 2))  # 0 .. CLASSES - 2
        out.append((words, tags))
    return out


def tag_loss(ignore_index: int):
    def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        words, tags = batch
        logits = model(words)
        return F.cross_entropy(logits.view(-1, CLASSES), tags.view(-1), ignore_index=ignore_index)

    return loss


@pytest.mark.fires("ignored-class")
def test_padding_tagged_with_a_real_class_that_the_loss_ignores_is_caught() -> None:
    model = Tagger()
    report = run(
        select=["ignored-class"],
        model=model,
        data=tagged_batches(pad_tag=0),  # the bug: padded with 'O', and 'O' ignored
        loss_fn=tag_loss(ignore_index=0),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    (finding,) = report.by_check("ignored-class")
    assert finding.reasons == [18] and finding.severity.value == "warning"
    assert finding.evidence["ignore_index"] == 0 and finding.evidence["inside"] > 100


@pytest.mark.silent("ignored-class")
@pytest.mark.parametrize("pad_tag, ignore", [(-100, -100), (CLASSES - 1, CLASSES - 1)])
def test_padding_the_loss_ignores_at_the_end_of_rows_is_silent(pad_tag: int, ignore: int) -> None:
    # -100 is no class; a class index used only for the end padding (a language model's pad
    # token, also a row of the output) is never inside a sequence.
    batches = tagged_batches(pad_tag=pad_tag)
    model = Tagger()
    report = run(
        select=["ignored-class"],
        model=model,
        data=batches,
        loss_fn=tag_loss(ignore_index=ignore),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    assert report.by_check("ignored-class") == []


class SequenceFirstTagger(nn.Module):
    """A tagger over ``(seq_len, batch)`` word ids, as an LSTM with batch_first=False reads them."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, 16, padding_idx=0)
        self.rnn = nn.LSTM(16, 16)
        self.out = nn.Linear(16, CLASSES)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.embed(words))[0])  # (T, B, C)


def sequence_first(
    batches: list[tuple[torch.Tensor, torch.Tensor]],
) -> list[tuple[torch.Tensor, ...]]:
    return [(w.t().contiguous(), t.t().contiguous()) for w, t in batches]


@pytest.mark.silent("ignored-class")
def test_end_padding_of_sequence_first_targets_is_not_inside_a_sequence() -> None:
    # Folded by the (seq_len, batch) input, a row is one time step across the batch: the
    # end padding of shorter sentences sits between real tags there, never in a sentence.
    model = SequenceFirstTagger()
    report = run(
        select=["ignored-class"],
        model=model,
        data=sequence_first(tagged_batches(pad_tag=CLASSES - 1)),
        loss_fn=tag_loss(ignore_index=CLASSES - 1),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    assert report.by_check("ignored-class") == []
    assert "inside" in report.result("ignored-class").detail


@pytest.mark.fires("ignored-class")
def test_a_real_class_ignored_in_sequence_first_targets_is_caught() -> None:
    model = SequenceFirstTagger()
    report = run(
        select=["ignored-class"],
        model=model,
        data=sequence_first(tagged_batches(pad_tag=0)),
        loss_fn=tag_loss(ignore_index=0),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    (finding,) = report.by_check("ignored-class")
    assert finding.evidence["inside"] > 100


SEQ2SEQ_SCRIPT = """
import torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
CLASSES, VOCAB, LENGTH, PAD = 4, 30, 12, {pad}


class Decoder(nn.Module):
    # Reads (seq_len, batch) ids, returns (batch, seq_len, classes): batch first again.
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16, padding_idx=0)
        self.rnn = nn.GRU(16, 16)
        self.out = nn.Linear(16, CLASSES)

    def forward(self, words):
        return self.out(self.rnn(self.embed(words))[0]).transpose(0, 1)


model = Decoder()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
g = torch.Generator().manual_seed(0)
for step in range(200):
    words = torch.zeros(LENGTH, 16, dtype=torch.long)
    tags = torch.full((LENGTH, 16), PAD, dtype=torch.long)
    for i in range(16):
        n = int(torch.randint(6, LENGTH + 1, (1,), generator=g))
        w = torch.randint(1, VOCAB, (n,), generator=g)
        words[:n, i] = w
        tags[:n, i] = torch.where(w < 20, 0, 1 + w % (CLASSES - 2))
    logits = model(words)
    # The (seq_len, batch) tags flattened batch-major, as the output's rows run.
    loss = F.cross_entropy(logits.reshape(-1, CLASSES), tags.t().reshape(-1), ignore_index=PAD)
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def _seq2seq(tmp_path, pad: int):
    from nndoctor.engine import Selection, check_script

    path = tmp_path / "seq2seq.py"
    path.write_text(SEQ2SEQ_SCRIPT.format(pad=pad))
    return check_script(str(path), steps=6, selection=Selection(select=("ignored-class",)))


@pytest.mark.silent("ignored-class")
def test_targets_flattened_in_the_order_of_a_transposed_output_are_folded_that_way(
    tmp_path,
) -> None:
    # Sequence-first inputs, a batch-first output reshaped to rows: the targets' rows run
    # sample by sample, so the end padding stays at the end of each folded row.
    report = _seq2seq(tmp_path, pad=CLASSES - 1)
    assert report.result("ignored-class").status.value == "passed"
    assert report.by_check("ignored-class") == []


@pytest.mark.fires("ignored-class")
def test_a_real_class_ignored_in_targets_flattened_by_the_output_is_caught(tmp_path) -> None:
    report = _seq2seq(tmp_path, pad=0)
    (finding,) = report.by_check("ignored-class")
    assert finding.evidence["inside"] > 20
