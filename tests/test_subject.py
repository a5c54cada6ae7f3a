"""Subject and OptimizerSpec: what experiments on copies are built from."""

from __future__ import annotations

from collections import namedtuple

import pytest
import torch
from torch import nn

from nndoctor.probes.schedule import SchedulePlan, planned_peak, planned_rates
from nndoctor.subject import (
    OptimizerSpec,
    batch_size_of,
    leading_sizes,
    move_to,
    switch_off_dropout,
)


def test_a_scheduled_rate_is_taken_from_the_schedule_not_the_moment() -> None:
    # In warm-up the rate of the moment is a small fraction of the rate the run is built around.
    model = nn.Linear(4, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 100))
    for _ in range(20):
        opt.step()
        sched.step()
    spec = OptimizerSpec.from_optimizer(opt, model)
    assert spec.hyperparameters()[0]["lr"] == 3e-4
    assert "at the last observed step" in spec.describe()
    copy = spec.build(nn.Linear(4, 2))
    assert copy.param_groups[0]["lr"] == 3e-4 and "lr_at_capture" not in copy.param_groups[0]


def test_one_cycle_uses_its_peak_and_a_plain_optimizer_its_rate() -> None:
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=100)
    assert OptimizerSpec.from_optimizer(opt, model).hyperparameters()[0]["lr"] == 0.5
    plain = torch.optim.SGD(model.parameters(), lr=0.1)
    spec = OptimizerSpec.from_optimizer(plain, model)
    assert spec.hyperparameters()[0]["lr"] == 0.1 and "schedule" not in spec.describe()


def _noam_after(steps: int) -> tuple[nn.Module, torch.optim.Optimizer, list[float], SchedulePlan]:
    """Adam at the Noam schedule's base rate 1.0 (d_model 64, 200 warm-up steps) after
    ``steps`` steps, with the rates seen and the plan read ahead."""
    model = nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)

    def noam(step: int) -> float:
        step = max(step, 1)
        return 64**-0.5 * min(step**-0.5, step * 200**-1.5)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, noam)
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    plan = SchedulePlan("LambdaLR", True, steps, steps, planned_rates(sched, opt, 5000))
    return model, opt, seen, plan


def test_a_lambda_schedule_is_taken_at_its_planned_peak_not_its_base_rate() -> None:
    # The Noam schedule multiplies a base rate of 1.0 by about 1e-3 at its peak: copies
    # trained at 1.0 would blow up where the script never does.
    model, opt, seen, plan = _noam_after(20)
    peak = planned_peak(plan, seen)
    assert peak is not None and abs(peak - 64**-0.5 * 200**-0.5) < 1e-6
    spec = OptimizerSpec.from_optimizer(opt, model, peak)
    assert abs(spec.hyperparameters()[0]["lr"] - peak) < 1e-9
    assert spec.build(nn.Linear(4, 2)).param_groups[0]["lr"] == spec.hyperparameters()[0]["lr"]
    # Without the plan, the base rate stands (as for a Python API call).
    assert OptimizerSpec.from_optimizer(opt, model).hyperparameters()[0]["lr"] == 1.0


def test_a_plan_still_rising_at_its_end_gives_no_peak() -> None:
    _, _, seen, plan = _noam_after(20)
    rising = SchedulePlan("LambdaLR", True, 20, 20, plan.lrs[:100])
    assert planned_peak(rising, seen) is None
    assert planned_peak(None, seen) is None


Batch = namedtuple("Batch", "x y")


class ModelOutput(dict):
    """Like a Hugging Face ModelOutput where transformers does not register it with pytree."""


def test_move_to_reaches_into_a_dict_subclass_and_keeps_a_namedtuple() -> None:
    out = move_to(ModelOutput(logits=torch.ones(2, 3), loss=torch.tensor(0.5)), "meta")
    assert type(out) is dict and out["logits"].is_meta and out["loss"].is_meta
    batch = move_to(Batch(torch.zeros(4, 2), torch.arange(4)), "meta")
    assert isinstance(batch, Batch) and batch.x.is_meta and batch.y.is_meta


def test_batch_sizes_of_a_namedtuple_batch_and_a_dict_subclass() -> None:
    batch = Batch(torch.zeros(4, 2), torch.arange(4))
    assert batch_size_of(batch, None) == 4
    assert leading_sizes(batch) == {4}
    mixed = ModelOutput(ids=torch.zeros(10), offsets=torch.arange(3), loss_input_shape=(3, 5))
    assert leading_sizes(mixed) == {10, 3}
    assert batch_size_of(ModelOutput(x=torch.zeros(6, 2)), None) == 6


def test_captured_batches_are_joined_and_dealt_anew_with_each_input_beside_its_target() -> None:
    from nndoctor.subject import join_batches, redeal

    batches = [
        {
            "args": (torch.arange(4 * k, 4 * k + 4).float().unsqueeze(1),),
            "kwargs": {},
            "targets": torch.arange(4 * k, 4 * k + 4),
            "loss_input_shape": (4, 1),
            "loss_fn": "mse_loss",
        }
        for k in range(3)
    ]
    joined = join_batches(batches, None)
    assert joined["targets"].tolist() == list(range(12))
    assert joined["loss_input_shape"] == (12, 1) and joined["loss_fn"] == "mse_loss"
    dealt = redeal(batches, None)
    assert [batch_size_of(b, None) for b in dealt] == [4, 4, 4]
    for b in dealt:
        assert b["args"][0].squeeze(1).long().tolist() == b["targets"].tolist()
        assert b["loss_input_shape"] == (4, 1)
    assert sorted(v for b in dealt for v in b["targets"].tolist()) == list(range(12))
    assert [b["targets"].tolist() for b in dealt] != [b["targets"].tolist() for b in batches]
    # Sequences padded to each batch's own length cannot be set end to end.
    ragged = [(torch.zeros(2, 5), torch.zeros(2)), (torch.zeros(2, 7), torch.zeros(2))]
    assert join_batches(ragged, None) is None and redeal(ragged, None) is None


def test_a_graph_batch_keeps_its_nodes_whole_and_samples_take_their_subgraph() -> None:
    from nndoctor.subject import slice_batch, take_samples

    nodes = 10
    x, y = torch.randn(nodes, 3), torch.randint(0, 2, (nodes,))
    adj = (torch.rand(nodes, nodes) < 0.3).float() + torch.eye(nodes)
    for a in (adj, adj.to_sparse()):
        batch = ((x, a), y)
        assert slice_batch(batch, 4, None) is batch  # a tiny batch is the whole graph
        (xs, sub), ys = take_samples(batch, [1, 4, 7], None)
        assert xs.shape == (3, 3) and ys.tolist() == y[[1, 4, 7]].tolist()
        assert torch.equal(sub.to_dense(), adj[[1, 4, 7]][:, [1, 4, 7]])
    # A square input that is the model's first (features as wide as the batch) is cut as rows.
    square = torch.randn(nodes, nodes)
    assert slice_batch((square, y), 4, None)[0].shape == (4, nodes)


def _rates(rates: list[float], scheduler: bool = False) -> object:
    from nndoctor.probes.recording import Recording, StepRecord

    rec = Recording(scheduler_seen=scheduler)
    for i, lr in enumerate(rates):
        rec.steps.append(StepRecord(step=i + 1, hyperparameters=[{"lr": lr}]))
    return rec


def test_a_warm_up_by_hand_trains_copies_at_the_rate_it_rises_to() -> None:
    from nndoctor.probes.schedule import hand_warmup_target

    rising = [0.1 * (i + 1) / 200 for i in range(20)]  # param_group["lr"] = ... per batch
    assert hand_warmup_target(_rates(rising), 0.1) == 0.1
    assert hand_warmup_target(_rates(rising, scheduler=True), 0.1) is None
    assert hand_warmup_target(_rates(rising[::-1]), 0.1) is None  # a decay by hand
    assert hand_warmup_target(_rates([0.01] * 20), 0.1) is None  # set once, kept
    assert hand_warmup_target(_rates(rising), 0.001) is None  # already past the built rate
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    opt = torch.optim.SGD(
        [{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.2}],
        lr=0.1,
    )
    opt.param_groups[0]["lr"], opt.param_groups[1]["lr"] = 0.005, 0.01
    spec = OptimizerSpec.from_optimizer(opt, model, warmup_target=0.1)
    rates = [g["lr"] for g in spec.hyperparameters()]
    assert rates == [0.1, 0.2] and spec.hyperparameters()[0]["lr_at_capture"] == 0.005


class _SparseCTR(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 4, sparse=True)
        self.head = nn.Linear(8, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(ids).flatten(1)).squeeze(1)


def _moved_by(spec: OptimizerSpec) -> set[str]:
    """The parameters one step of a copy built from ``spec`` changes."""
    model = _SparseCTR()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = spec.build(model)
    ids = torch.randint(0, 50, (16, 2), generator=torch.Generator().manual_seed(0))
    opt.zero_grad(set_to_none=True)
    nn.functional.binary_cross_entropy_with_logits(model(ids), torch.ones(16)).backward()
    opt.step()
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}


def test_optimizers_over_parts_of_one_model_step_every_part_of_a_copy() -> None:
    model = _SparseCTR()
    sparse = torch.optim.SparseAdam(list(model.emb.parameters()), lr=1e-2)
    dense = torch.optim.Adam(model.head.parameters(), lr=1e-3)
    alone = OptimizerSpec.from_optimizer(sparse, model)
    assert _moved_by(alone) == {"emb.weight"}  # the dense head stays at its start
    joint = OptimizerSpec.from_optimizers([sparse, dense], model)
    assert _moved_by(joint) == {"emb.weight", "head.weight", "head.bias"}
    assert [h["lr"] for h in joint.hyperparameters()] == [1e-2, 1e-3]
    assert "SparseAdam" in joint.describe() and "+ Adam(lr=0.001)" in joint.describe()
    scaled = joint.with_lr_scaled(10.0)
    assert [h["lr"] for h in scaled.hyperparameters()] == pytest.approx([0.1, 0.01])


def test_a_fallback_adam_over_sparse_embeddings_alone_is_sparse_adam() -> None:
    table = nn.Embedding(10, 3, sparse=True)
    opt = OptimizerSpec.of(torch.optim.Adam, lr=1e-2).build(table)
    assert isinstance(opt, torch.optim.SparseAdam) and opt.param_groups[0]["lr"] == 1e-2


def test_a_fallback_adam_gives_sparse_embeddings_sparse_adam() -> None:
    # Adam refuses sparse gradients; the known-good fallback must still train the model.
    assert _moved_by(OptimizerSpec.of(torch.optim.Adam, lr=1e-3)) == {
        "emb.weight",
        "head.weight",
        "head.bias",
    }


class _DropPath(nn.Module):
    """Stochastic depth as timm writes it: a float rate, applied in ``forward``."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = torch.rand(x.shape[0], 1, 1) >= self.drop_prob
        return x * keep / (1 - self.drop_prob)


def test_switching_dropout_off_reaches_the_rates_modules_apply_themselves() -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.3, batch_first=True)
    model = nn.Sequential(layer, _DropPath(0.2))
    model.train()
    x = torch.randn(4, 5, 16)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))  # attention dropout and drop path draw
    switch_off_dropout(model)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    assert layer.self_attn.dropout == 0.0 and model[1].drop_prob == 0.0
    assert layer.norm1.eps > 0  # floats that are no rate of dropping stay as they were


def test_a_repeated_batch_is_dealt_into_small_batches_that_share_no_row() -> None:
    from nndoctor.subject import dealt_rows

    dealt = dealt_rows(600, 16, 64)
    rows = [r for index in dealt for r in index]
    assert len(rows) == len(set(rows)) == 600 and len(dealt) == 16
    # Larger than all the small batches need: every fourth row, still spread over it all.
    dealt = dealt_rows(4096, 4, 256)
    assert all(len(index) == 256 for index in dealt)
    assert dealt[0][:3] == [0, 16, 32] and dealt[3][-1] == 4092
    assert len({r for index in dealt for r in index}) == 1024
