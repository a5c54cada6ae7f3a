"""Scripts that train several networks, each against its own loss (a GAN): the checks that
assume one model and one objective stand down, and say why."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nndoctor.engine import Selection, check_script

GAN = """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    data = torch.randn(2048, 2) * 0.1 + torch.tensor([1.0, -1.0])
    generator = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    discriminator = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    criterion = nn.BCEWithLogitsLoss()
    opt_g = torch.optim.Adam(generator.parameters(), lr=5e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=5e-4, betas=(0.5, 0.999))
    for epoch in range(3):
        for (real,) in DataLoader(TensorDataset(data), batch_size=64, shuffle=True):
            ones, zeros = torch.ones(64, 1), torch.zeros(64, 1)
            fake = generator(torch.randn(64, 4))
            opt_d.zero_grad()
            d_loss = criterion(discriminator(real), ones) + criterion(discriminator(fake.detach()), zeros)
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = criterion(discriminator(fake), ones)
            g_loss.backward()
            opt_g.step()
"""

# Two optimizers over two halves of one model, stepped after one backward of one loss:
# not alternating objectives, and the experiments stay on.
ENCODER_DECODER = """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    x = torch.randn(1024, 8); y = (x[:, 0] > 0).long()
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
            self.decoder = nn.Linear(32, 2)
        def forward(self, x):
            return self.decoder(self.encoder(x))
    model = Model()
    enc_opt = torch.optim.Adam(model.encoder.parameters(), lr=1e-3)
    dec_opt = torch.optim.Adam(model.decoder.parameters(), lr=1e-3)
    for epoch in range(3):
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True):
            enc_opt.zero_grad(); dec_opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            enc_opt.step(); dec_opt.step()
"""

SELECT = ("cannot-overfit-tiny-batch", "single-label-batches", "loss-term-dominates")


def _check(tmp_path: Path, source: str, select: tuple[str, ...] = SELECT):  # noqa: ANN202 - a Report
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(source))
    return check_script(
        str(script), selection=Selection(select=select, experiment_seconds=float("inf"))
    )


@pytest.mark.silent("single-label-batches")
def test_a_gan_is_not_judged_as_one_model_fitting_one_loss(tmp_path: Path) -> None:
    report = _check(tmp_path, GAN)
    assert [f for f in report.findings if f.severity.value != "info"] == []
    overfit = report.result("cannot-overfit-tiny-batch")
    assert overfit.status.value == "skipped" and "alternates between optimizers" in overfit.detail
    # The discriminator's real (1) and fake (0) targets in one step make a two-class batch.
    assert report.result("single-label-batches").status.value == "passed"
    # Its two terms give the generator no gradient at all: not terms of the generator's loss.
    terms = report.result("loss-term-dominates")
    assert terms.status.value == "skipped" and "gradient on the model's parameters" in terms.detail


def test_two_optimizers_after_one_backward_are_one_objective(tmp_path: Path) -> None:
    report = _check(tmp_path, ENCODER_DECODER, ("cannot-overfit-tiny-batch",))
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"
