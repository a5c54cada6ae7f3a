"""Two "views" of a sample that are one and the same: a loss comparing an output with
itself."""

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
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), DROPOUT nn.Linear(64, 16))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def augment(x):
        return x + 0.3 * torch.randn_like(x)

    def info_nce(z1, z2, temperature=0.2):
        z = F.normalize(torch.cat([z1, z2]), dim=1)
        sim = z @ z.t() / temperature
        sim.fill_diagonal_(float("-inf"))
        n = len(z1)
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
        return F.cross_entropy(sim, targets)

    for step in range(30):
        x = torch.randn(64, 32)
        VIEWS
        loss = info_nce(z1, z2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    """
)


def _check(tmp_path: Path, views: str, dropout: str = "") -> Report:
    path = tmp_path / "views.py"
    path.write_text(SCRIPT.replace("VIEWS", views).replace("DROPOUT", dropout))
    return check_script(
        str(path), steps=8, phase_steps=0, selection=Selection(select=("identical-views",))
    )


@pytest.mark.fires("identical-views")
def test_one_view_encoded_twice_is_found(tmp_path: Path) -> None:
    report = _check(tmp_path, "view = augment(x); z1, z2 = net(view), net(view)")
    (finding,) = serious(report, "identical-views")
    assert 3 in finding.reasons
    assert finding.evidence["same_tensor"] is True
    assert len(finding.evidence["steps"]) >= 2


def test_an_equal_copy_of_the_view_is_found_too(tmp_path: Path) -> None:
    report = _check(tmp_path, "view = augment(x); z1, z2 = net(view), net(view.clone())")
    (finding,) = serious(report, "identical-views")
    assert finding.evidence["same_tensor"] is False


def test_one_forward_per_step_is_not_judged(tmp_path: Path) -> None:
    report = _check(tmp_path, "z1 = net(augment(x)); z2 = z1.detach() + 0.3 * torch.randn_like(z1)")
    assert report.result("identical-views").status.value == "skipped"


@pytest.mark.silent("identical-views")
def test_two_augmented_views_pass(tmp_path: Path) -> None:
    report = _check(tmp_path, "z1, z2 = net(augment(x)), net(augment(x))")
    assert not serious(report, "identical-views")
    assert "0 observed step(s)" in report.result("identical-views").detail


def test_the_same_view_under_dropout_is_two_views(tmp_path: Path) -> None:
    # SimCSE: one input encoded twice, dropout making the two embeddings differ.
    report = _check(
        tmp_path, "view = augment(x); z1, z2 = net(view), net(view)", dropout="nn.Dropout(0.1),"
    )
    assert not serious(report, "identical-views")


def test_a_second_forward_outside_the_loss_is_not_counted(tmp_path: Path) -> None:
    # A metric computed from a repeated forward with gradients on: wasteful, not a bug.
    views = (
        "z1, z2 = net(augment(x)), net(augment(x)); "
        "view = augment(x); a, b = net(view), net(view); agreement = (a - b).abs().mean()"
    )
    report = _check(tmp_path, views)
    assert not serious(report, "identical-views")
    assert "0 observed step(s)" in report.result("identical-views").detail


def test_a_repeat_after_a_backward_pass_is_another_evaluation(tmp_path: Path) -> None:
    # Sharpness-aware steps: the same batch forwarded again after the first backward pass.
    script = textwrap.dedent(
        """
        import torch
        from torch import nn

        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        for step in range(30):
            x, y = torch.randn(32, 8), torch.randn(32, 1)
            opt.zero_grad()
            nn.functional.mse_loss(net(x), y).backward()
            with torch.no_grad():
                eps = [0.05 * p.grad / (p.grad.norm() + 1e-12) for p in net.parameters()]
                for p, e in zip(net.parameters(), eps):
                    p.add_(e)
            opt.zero_grad()
            nn.functional.mse_loss(net(x), y).backward()
            with torch.no_grad():
                for p, e in zip(net.parameters(), eps):
                    p.sub_(e)
            opt.step()
        """
    )
    path = tmp_path / "sam.py"
    path.write_text(script)
    report = check_script(
        str(path), steps=8, phase_steps=0, selection=Selection(select=("identical-views",))
    )
    assert not serious(report, "identical-views")
