"""Replays: re-running a script with substituted data, for custom losses."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nndoctor.capture.replay import ReplayPlan, run_replay

SCRIPT = textwrap.dedent(
    """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    x = torch.randn(256, 6)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    for epoch in range(100):
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True):
            logits = model(xb)
            p = logits.softmax(1).gather(1, yb[:, None]).squeeze(1)
            loss = -torch.log(p{guard}).mean()   # a custom loss in plain torch
            opt.zero_grad(); loss.backward(); opt.step()
            torch.save(model.state_dict(), "ckpt.pt")
    """
)


def test_overfit_replay_feeds_one_tiny_batch_with_regularisation_off(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT.replace("{guard}", ".clamp_min(1e-12)"))
    result = run_replay(ReplayPlan(str(path), [], "overfit", steps=60, batch_size=4))
    assert result.ok and result.substituted, result.error
    assert len(result.losses) == 60
    assert result.losses[-1] < 0.05 < result.losses[0]
    assert not (tmp_path / "ckpt.pt").exists()


def test_trace_replay_finds_the_operation_and_line_of_a_nan(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    # log(p) with p underflowing to zero once the logits are large: force it with a huge scale.
    path.write_text(
        SCRIPT.replace("{guard}", " * 0").replace("logits = model(xb)", "logits = model(xb)")
    )
    result = run_replay(ReplayPlan(str(path), [], "trace", trace_step=0))
    assert result.event is not None, result.error
    assert result.event["op"] == "log" and result.event["phase"] == "forward"
    assert result.event["file"] == str(path)
    assert "torch.log" in result.event["code"]


def test_a_replay_cut_by_its_time_limit_says_so(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(
        SCRIPT.replace("{guard}", ".clamp_min(1e-12)").replace(
            "opt.zero_grad();", "import time; time.sleep(1.0); opt.zero_grad();"
        )
    )
    # 150 steps of a second each against a 30 s limit: cut short however loaded the machine
    # is, with room for the child's start (import torch) before its first step.
    result = run_replay(ReplayPlan(str(path), [], "overfit", steps=150, batch_size=4, timeout=30.0))
    assert result.timed_out and not result.ok
    assert 0 < len(result.losses) < 150


EVALUATES_FIRST = textwrap.dedent(
    """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    x = torch.randn(256, 6)
    y = (x[:, 0] > 0).long()
    train = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(x[:64], y[:64]), batch_size=32)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def evaluate():
        model.eval()
        total = 0.0
        for xb, yb in val:  # gradients still on when the loop starts
            with torch.no_grad():
                p = model(xb).softmax(1).gather(1, yb[:, None])
                total += -torch.log(p).mean().item()
        model.train()
        return total

    print("before training", evaluate())
    for epoch in range(20):
        for xb, yb in train:
            p = model(xb).softmax(1).gather(1, yb[:, None])
            loss = -torch.log(p).mean()
            opt.zero_grad(); loss.backward(); opt.step()
        print(epoch, evaluate())
    """
)


def test_a_loop_that_never_steps_ends_instead_of_spinning(tmp_path: Path) -> None:
    # The evaluation before training iterates a loader the replay makes endless: without
    # a backward pass or a step for many batches it ends, and training is replayed.
    path = tmp_path / "train.py"
    path.write_text(EVALUATES_FIRST)
    result = run_replay(ReplayPlan(str(path), [], "overfit", steps=30, batch_size=4, timeout=60))
    assert result.ok and not result.timed_out, result.error
    assert result.steps == 30 and len(result.losses) == 30
