"""An attention padding mask given in the other convention (1 = real token)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from subjects import serious

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

SCRIPT = textwrap.dedent(
    """
    import torch
    from torch import nn

    torch.manual_seed(0)
    PAD, VOCAB = 0, 50

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(VOCAB, 16, padding_idx=PAD)
            layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=BATCH_FIRST)
            self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
            self.head = nn.Linear(16, 2)

        def forward(self, ids, attention_mask):
            h = self.encoder(self.embed(ids), src_key_padding_mask=MASK)
            keep = attention_mask.unsqueeze(-1).float()
            if not BATCH_FIRST:
                keep = keep.transpose(0, 1)
            return self.head((h * keep).sum(SEQ) / keep.sum(SEQ))

    def batch(n=32, longest=12):
        lengths = torch.randint(3, longest + 1, (n,))
        lengths[0] = longest
        ids = torch.full((n, longest), PAD)
        attention_mask = torch.zeros(n, longest, dtype=torch.long)
        for i, k in enumerate(lengths):
            ids[i, :k] = torch.randint(1, VOCAB, (int(k),))
            attention_mask[i, :k] = 1
        labels = (ids == 7).any(1).long()
        return (ids if BATCH_FIRST else ids.t()), attention_mask, labels

    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for step in range(30):
        ids, attention_mask, labels = batch()
        loss = nn.functional.cross_entropy(model(ids, attention_mask), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    """
)


def _check(tmp_path: Path, mask: str, batch_first: bool = True) -> Report:
    path = tmp_path / "masked.py"
    script = (
        SCRIPT.replace("MASK", mask)
        .replace("BATCH_FIRST", str(batch_first))
        .replace("SEQ", "1" if batch_first else "0")
    )
    path.write_text(script)
    return check_script(
        str(path), steps=6, phase_steps=0, selection=Selection(select=("padding-mask-inverted",))
    )


@pytest.mark.fires("padding-mask-inverted")
def test_a_hugging_face_attention_mask_passed_as_the_padding_mask_is_found(
    tmp_path: Path,
) -> None:
    report = _check(tmp_path, "attention_mask.bool()")
    (finding,) = serious(report, "padding-mask-inverted")
    assert 4 in finding.reasons
    assert finding.evidence["attended_ids"] == 1 and finding.evidence["ignored_ids"] > 10


@pytest.mark.silent("padding-mask-inverted")
def test_the_padding_marked_true_passes(tmp_path: Path) -> None:
    report = _check(tmp_path, "attention_mask == 0")
    assert not serious(report, "padding-mask-inverted")
    assert "0 of" in report.result("padding-mask-inverted").detail


def test_sequence_first_ids_are_read_against_the_batch_first_mask(tmp_path: Path) -> None:
    good = _check(tmp_path, "attention_mask == 0", batch_first=False)
    assert not serious(good, "padding-mask-inverted")
    assert good.result("padding-mask-inverted").status.value == "passed"
    bad = _check(tmp_path, "attention_mask.bool()", batch_first=False)
    assert serious(bad, "padding-mask-inverted")


def test_no_padding_mask_is_not_judged(tmp_path: Path) -> None:
    report = _check(tmp_path, "None")
    assert report.result("padding-mask-inverted").status.value == "skipped"
