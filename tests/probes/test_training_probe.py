"""The training probe: what it records, awkward models it must survive, and its GPU rules."""

from __future__ import annotations

import math
from collections import namedtuple

import pytest
import torch
from subjects import blobs, mlp
from torch import nn

from nndoctor.probes.recording import Recording
from nndoctor.probes.training import TrainingProbe


def _train(
    model: nn.Module, steps: int = 3, make_loss=None, device: str = "cpu"
) -> tuple[Recording, TrainingProbe]:
    x, y = blobs()
    x, y = x.to(device), y.to(device)
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        for i in range(steps):
            xb, yb = x[i * 32 : (i + 1) * 32], y[i * 32 : (i + 1) * 32]
            opt.zero_grad()
            out = model(xb)
            loss = make_loss(out, yb) if make_loss else nn.functional.cross_entropy(out, yb)
            loss.backward()
            opt.step()
    return rec, probe


def test_records_loss_inputs_activations_gradients_and_updates() -> None:
    rec, probe = _train(mlp())
    assert len(rec.steps) == 3 and probe.steps_done == 3
    s = rec.steps[0]
    assert s.loss_seen and 0.5 < s.loss < 2.0
    assert s.inputs.shape == (32, 10) and s.inputs.channel_mean is not None
    assert list(s.activations) == ["0", "1", "2", "3", "4", ""]  # completion order, root last
    assert set(s.grad_norms) == set(rec.param_names) == set(s.update_norms)
    assert all(v > 0 for v in s.update_norms.values())
    (call,) = s.loss_calls
    assert call.fn == "cross_entropy" and call.linked_to_output == "output"
    assert sum(call.target.class_counts) == 32
    assert s.zero_grad_called and not s.grads_present_at_forward
    assert rec.in_optimizer == set(rec.param_names)


def test_update_norm_matches_the_real_update() -> None:
    model = mlp()
    before = model[0].weight.detach().clone()
    x, y = blobs()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:32]), y[:32]).backward()
        opt.step()
    expected = float((model[0].weight.detach() - before).norm())
    assert rec.steps[0].update_norms["0.weight"] == pytest.approx(expected, rel=1e-5)


def test_update_norms_stay_right_step_after_step() -> None:
    # The snapshot buffers are reused from step to step: every step's norm is its own update's.
    model = mlp()
    x, y = blobs()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    expected = []
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        for i in range(3):
            before = model[2].weight.detach().clone()
            opt.zero_grad()
            nn.functional.cross_entropy(
                model(x[32 * i : 32 * (i + 1)]), y[32 * i : 32 * (i + 1)]
            ).backward()
            opt.step()
            expected.append(float((model[2].weight.detach() - before).norm()))
    got = [s.update_norms["2.weight"] for s in rec.steps]
    assert got == pytest.approx(expected, rel=1e-5)
    assert len({round(v, 6) for v in got}) == 3


class TiedAndShared(nn.Module):
    """Tied weights, a module used twice, an in-place ReLU, a dict output, an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(10, 16)
        self.shared = nn.Linear(16, 16)
        self.act = nn.ReLU(inplace=True)
        self.lstm = nn.LSTM(16, 16, batch_first=True)
        self.head = nn.Linear(16, 3)
        self.head.weight = nn.Parameter(self.shared.weight[:3].detach().clone())
        self.lazy = nn.LazyLinear(3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.act(self.shared(self.act(self.shared(self.embed(x)))))
        seq, _ = self.lstm(h.unsqueeze(1))
        logits = self.head(seq[:, 0]) + self.lazy(h)
        return {"logits": logits, "features": h}


def test_survives_awkward_models_and_links_dict_outputs() -> None:
    model = TiedAndShared()
    model(torch.randn(2, 10))  # materialise the lazy layer
    rec, _ = _train(model, make_loss=lambda out, y: nn.functional.cross_entropy(out["logits"], y))
    assert rec.crashes == []
    assert rec.steps[0].loss_calls[0].linked_to_output == "output['logits']"
    assert "lstm" in rec.steps[0].activations


def test_a_failing_hook_is_removed_and_recorded_and_training_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nndoctor.probes import stats

    calls = {"n": 0}

    def broken(*args: object, **kwargs: object) -> torch.Tensor:
        calls["n"] += 1
        raise ValueError("boom")

    monkeypatch.setattr(stats, "tensor_stats", broken)
    rec, probe = _train(mlp(), steps=3)
    assert probe.steps_done == 3
    # Inputs (model hook set) and targets (loss hook set) both use it: each set is disabled once.
    assert sorted(c.probe for c in rec.crashes) == ["loss", "model"]
    assert calls["n"] == 2
    assert all(math.isfinite(s.loss) for s in rec.steps)


def test_eval_forwards_under_no_grad_are_not_training_steps() -> None:
    model = mlp()
    x, y = blobs()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:32]), y[:32]).backward()
        opt.step()
        with torch.no_grad():
            model(x[32:64])
    assert rec.eval_forwards == 1 and len(rec.steps) == 1


@pytest.mark.cuda
def test_probes_never_synchronise_with_the_gpu() -> None:
    """Under sync debug mode "error", any host synchronisation inside a hook raises."""
    model = mlp().cuda()
    x, y = blobs()
    x, y = x.cuda(), y.cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rec = Recording()
    probe = TrainingProbe(rec)
    with probe:
        probe.attach_model(model)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for i in range(5):
                xb, yb = x[i * 32 : (i + 1) * 32], y[i * 32 : (i + 1) * 32]
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert rec.crashes == [], rec.crashes
    assert probe.steps_done == 5
    assert all(math.isfinite(s.loss) for s in rec.steps)
    assert rec.steps[0].activations and rec.steps[0].grad_norms


@pytest.mark.cuda
def test_probe_under_autocast_bf16() -> None:
    model = mlp().cuda()
    x, y = blobs()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        for _ in range(2):
            opt.zero_grad()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = nn.functional.cross_entropy(model(x[:32].cuda()), y[:32].cuda())
            loss.backward()
            opt.step()
    assert rec.crashes == [] and all(math.isfinite(s.loss) for s in rec.steps)


def test_grad_scaler_skipped_steps_are_expected_and_the_loss_is_unscaled() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        for i in range(3):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(torch.randn(8, 4)), torch.randn(8, 2))
            scaler.scale(loss).backward()
            if i == 1:
                model.weight.grad[0, 0] = float("inf")  # what an fp16 overflow looks like
            scaler.step(opt)
            scaler.update()
    assert [s.skipped_by_scaler for s in rec.steps] == [False, True, False]
    assert rec.scaler_skipped_steps == 1 and probe.steps_done == 2
    assert all(s.loss < 10 for s in rec.steps)  # unscaled (the scale is 65536)
    assert rec.first_nonfinite() is None


Batch = namedtuple("Batch", "x y")


class ModelOutput(dict):
    """Like a Hugging Face ModelOutput where transformers does not register it with pytree."""


class BatchModel(nn.Module):
    """Takes a namedtuple batch, returns a dict subclass holding logits and loss."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 3)

    def forward(self, batch: Batch) -> ModelOutput:
        logits = self.fc(batch.x)
        return ModelOutput(logits=logits, loss=nn.functional.cross_entropy(logits, batch.y))


def test_a_namedtuple_input_and_a_dict_subclass_output_are_seen_through() -> None:
    model = BatchModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = Batch(torch.randn(8, 4), torch.randint(0, 3, (8,)))
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        probe.attach_optimizer(opt)
        for _ in range(2):
            opt.zero_grad()
            model(batch)["loss"].backward()
            opt.step()
    assert rec.crashes == []
    step = rec.steps[0]
    assert step.inputs is not None and step.inputs.shape == (8, 4)  # the batch's first tensor
    assert "" in step.activations and "fc" in step.activations  # the output's logits
    (captured,) = probe.captured_batches[0]["args"]
    assert isinstance(captured, Batch) and torch.equal(captured.x, batch.x)


class SequenceFirst(nn.Module):
    """Token scores laid out (length 4, batch, 3 classes), as an RNN without batch_first
    gives them."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(10, 4 * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).reshape(len(x), 4, 3).transpose(0, 1)


def _tokens(y: torch.Tensor) -> torch.Tensor:
    """Four token targets per sample, (batch, length)."""
    return torch.stack([(y + k) % 3 for k in range(4)], dim=1)


def test_a_reshape_of_a_transposed_output_is_linked_as_a_reshape() -> None:
    # The reshape copies the non-contiguous output, keeping its elements' logical order.
    rec, _ = _train(
        SequenceFirst(),
        make_loss=lambda out, y: nn.functional.cross_entropy(
            out.reshape(-1, 3), _tokens(y).T.reshape(-1)
        ),
    )
    assert rec.steps[0].loss_calls[0].linked_to_output == "view:output"


def test_an_output_moved_to_the_loss_layout_is_linked_with_its_transposes() -> None:
    import json

    from nndoctor.capture.subject import rearranged

    seen: list[torch.Tensor] = []

    def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(out.detach())
        return nn.functional.cross_entropy(out.permute(1, 2, 0), _tokens(y))  # (batch, 3, length)

    rec, _ = _train(SequenceFirst(), make_loss=loss)
    link = rec.steps[0].loss_calls[0].linked_to_output
    assert link is not None and link.startswith("rearrange:") and link.endswith("|output")
    ops = json.loads(link.removeprefix("rearrange:").rpartition("|")[0])
    assert ops == [["permute", 1, 2, 0]]
    assert torch.equal(rearranged(seen[0], ops), seen[0].permute(1, 2, 0))


def test_an_output_changed_on_its_way_to_the_loss_is_not_linked() -> None:
    rec, _ = _train(mlp(), make_loss=lambda out, y: nn.functional.cross_entropy(out * 2.0, y))
    assert rec.steps[0].loss_calls[0].linked_to_output is None
    # Nor is a transpose taken after a reshape: its axes would depend on the batch size.
    rec, _ = _train(
        SequenceFirst(),
        make_loss=lambda out, y: nn.functional.cross_entropy(
            out.reshape(4, -1, 3).transpose(0, 1).reshape(-1, 3), _tokens(y).reshape(-1)
        ),
    )
    assert rec.steps[0].loss_calls[0].linked_to_output is None


def test_an_output_cast_for_the_loss_is_linked_with_the_cast() -> None:
    # bf16 scores cast back to float32 before the loss: one cast, after any moves.
    rec, _ = _train(
        SequenceFirst(),
        make_loss=lambda out, y: nn.functional.cross_entropy(
            out.double().float().double().permute(1, 2, 0), _tokens(y)
        ),
    )
    link = rec.steps[0].loss_calls[0].linked_to_output
    assert link == 'rearrange:[["permute", 1, 2, 0], ["to", "float64"]]|output'
    assert rec.steps[0].loss_calls[0].input_layout == (32, 3, 4)
