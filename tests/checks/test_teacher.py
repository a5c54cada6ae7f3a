"""labels-not-connected on a teacher-forced encoder-decoder: the sources tested against the
(decoder input, target) pairs, which the decoder input alone partly predicts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from subjects import serious

from nndoctor.checks.data.teacher import permuted_pairs, teacher_layout
from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report
from nndoctor.subject import Subject

SCRIPT = textwrap.dedent(
    """
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pad_sequence
    from torch.utils.data import DataLoader

    PAD, BOS, EOS, VOCAB = 0, 1, 2, 12
    torch.manual_seed(0)
    pairs = []
    for _ in range(2000):
        src = torch.randint(3, VOCAB, (int(torch.randint(3, 7, (1,))),))
        pairs.append((src, torch.cat([src.flip(0), torch.tensor([EOS])])))

    def collate(batch):
        srcs = [s for s, _ in batch]
        SORT
        tgts = [t for _, t in batch]
        src = pad_sequence(srcs, batch_first=True, padding_value=PAD)
        out = pad_sequence(tgts, batch_first=True, padding_value=PAD)
        dec_in = torch.cat([torch.full((out.size(0), 1), BOS), out[:, :-1]], dim=1)
        return src, dec_in, out

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed = nn.Embedding(VOCAB, 16, padding_idx=PAD)
            self.tgt_embed = nn.Embedding(VOCAB, 16, padding_idx=PAD)
            self.encoder = nn.GRU(16, 64, batch_first=True)
            self.decoder = nn.GRU(16, 64, batch_first=True)
            self.out = nn.Linear(64, VOCAB)

        def forward(self, src, dec_in):
            _, h = self.encoder(self.src_embed(src))
            y, _ = self.decoder(self.tgt_embed(dec_in), h)
            return self.out(y)  # (batch, tgt_len, vocab)

    model = Seq2Seq()
    loader = DataLoader(pairs, batch_size=64, shuffle=True, collate_fn=collate)
    criterion = nn.CrossEntropyLoss(ignore_index=PAD)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(2):
        for src, dec_in, out in loader:
            logits = model(src, dec_in)
            loss = criterion(logits.reshape(-1, VOCAB), out.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
    """
)


def _check(tmp_path: Path, sort: str = "") -> Report:
    path = tmp_path / "seq2seq.py"
    path.write_text(SCRIPT.replace("SORT", sort))
    return check_script(
        str(path), steps=20, phase_steps=0, selection=Selection(select=("labels-not-connected",))
    )


@pytest.mark.fires("labels-not-connected")
def test_sources_shuffled_apart_from_their_targets_are_found(tmp_path: Path) -> None:
    report = _check(tmp_path, "srcs = [srcs[i] for i in torch.randperm(len(srcs))]")
    (finding,) = serious(report, "labels-not-connected")
    assert 4 in finding.reasons
    assert finding.evidence["teacher_input"] == 1
    assert finding.evidence["p_value"] > 0.01


def test_a_healthy_teacher_forced_model_passes(tmp_path: Path) -> None:
    report = _check(tmp_path)
    result = report.result("labels-not-connected")
    assert result.status.value == "passed"
    assert "given other samples'" in result.detail


def _subject(src: torch.Tensor, dec_in: torch.Tensor, target: torch.Tensor) -> Subject:
    return Subject(
        model=torch.nn.Linear(1, 1),
        batches=[((src, dec_in), target)],
        criterion=torch.nn.CrossEntropyLoss(),
        replace_inputs=lambda b, new: (tuple(new), b[1]),
        replace_targets=lambda b, new: (b[0], new),
    )


def test_sequence_first_targets_flattened_sample_first_are_lined_up() -> None:
    g = torch.Generator().manual_seed(0)
    out = torch.randint(3, 12, (4, 6), generator=g)  # (batch, tgt_len)
    dec_in = torch.cat([torch.ones(4, 1, dtype=torch.long), out[:, :-1]], dim=1)
    src = torch.randint(3, 12, (5, 4), generator=g)  # (src_len, batch)
    # The decoder input sequence-first, the target flattened from (batch, tgt_len).
    subject = _subject(src, dec_in.t(), out.reshape(-1))
    batch = subject.take_batches(1)[0]
    layout = teacher_layout(subject, batch, -100, 0.9)
    assert layout is not None
    assert (layout.index, layout.sample_axis, layout.transposed) == (1, 1, True)
    perm = torch.tensor([2, 0, 3, 1])
    (new_src, new_dec), new_target = permuted_pairs(subject, batch, layout, perm)
    assert torch.equal(new_src, src)  # the sources stay
    assert torch.equal(new_dec, dec_in[perm].t())
    assert torch.equal(new_target, out[perm].reshape(-1))


def test_a_language_model_with_a_carried_state_has_no_source() -> None:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (9, 4), generator=g)  # (seq_len + 1, batch)
    hidden = torch.zeros(2, 4, 32)  # (layers, batch, hidden), carried from the last batch
    subject = _subject(hidden, tokens[:-1], tokens[1:].reshape(-1))
    assert teacher_layout(subject, subject.take_batches(1)[0], -100, 0.9) is None


def test_a_model_given_its_targets_to_compute_its_own_loss_has_no_source_test() -> None:
    # nanoGPT's model(idx, targets): the next-token targets are an input of their own.
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (4, 9), generator=g)
    idx, targets = tokens[:, :-1], tokens[:, 1:]
    subject = _subject(idx, targets, targets.reshape(-1))
    assert teacher_layout(subject, subject.take_batches(1)[0], -100, 0.9) is None
