"""Zero-code capture on the shapes real scripts take."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from nndoctor.capture.runner import ScriptError, run_script
from nndoctor.capture.subject import subject_from_capture

HEAD = """
import argparse
import torch
from torch import nn
import torch.nn.functional as F
torch.manual_seed(0)
X = torch.randn(512, 6)
Y = (X[:, 0] - X[:, 1] > 0).long()
"""


def _script(tmp_path: Path, body: str, name: str = "train.py") -> str:
    path = tmp_path / name
    path.write_text(HEAD + textwrap.dedent(body))
    return str(path)


def test_top_level_loop_with_manual_slicing_and_functional_loss(tmp_path: Path) -> None:
    path = _script(
        tmp_path,
        """
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for step in range(1000):
            i = (step * 16) % 512
            loss = F.cross_entropy(model(X[i:i + 16]), Y[i:i + 16])
            opt.zero_grad(); loss.backward(); opt.step()
    """,
    )
    capture = run_script(path, steps=7)
    assert capture.observed and capture.steps == 7 and capture.stop_reason == "step budget"
    assert capture.recording.loaders == []
    subject, why = subject_from_capture(capture)
    assert subject is not None and why == ""
    assert subject.task.num_classes == 2


@pytest.mark.parametrize("call", ["F.gaussian_nll_loss(mean, yb, var)", "crit(mean, yb, var=var)"])
def test_a_recognised_loss_reading_a_second_model_output_is_left_to_the_replay(
    tmp_path: Path, call: str
) -> None:
    # The variance beside the mean is a model output: a copy rebuilding the loss from the
    # captured variance would feed another batch's (a crash in every experiment).
    path = _script(
        tmp_path,
        f"""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh())
                self.mean, self.var = nn.Linear(16, 1), nn.Linear(16, 1)

            def forward(self, x):
                h = self.body(x)
                return self.mean(h), F.softplus(self.var(h)) + 1e-6

        model = Net()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        crit = nn.GaussianNLLLoss()
        y = X[:, :1] * 2.0
        for step in range(1000):
            i = (step * 16) % 512
            xb, yb = X[i:i + 16], y[i:i + 16]
            mean, var = model(xb)
            loss = {call}
            opt.zero_grad(); loss.backward(); opt.step()
    """,
    )
    capture = run_script(path, steps=5)
    assert capture.observed
    assert not any(
        isinstance(a, torch.Tensor) and a.requires_grad
        for b in capture.batches
        for a in (*b.get("loss_args", ()), *b.get("loss_kwargs", {}).values())
    )
    subject, why = subject_from_capture(capture)
    assert subject is None and "another output of the model" in why


def test_main_with_argparse_custom_dataset_adamw_and_scheduler(tmp_path: Path) -> None:
    path = _script(
        tmp_path,
        """
        from torch.utils.data import DataLoader, Dataset

        class Points(Dataset):
            def __len__(self): return len(X)
            def __getitem__(self, i): return X[i], Y[i]

        class Net(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.body = nn.Sequential(nn.Linear(6, width), nn.ReLU())
                self.head = nn.Linear(width, 2)
            def forward(self, x):
                return self.head(self.body(x))

        def main():
            parser = argparse.ArgumentParser()
            parser.add_argument("--width", type=int, default=4)
            parser.add_argument("--epochs", type=int, default=50)
            args = parser.parse_args()
            assert args.width == 12, args.width
            model = Net(args.width)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
            crit = nn.CrossEntropyLoss()
            for _ in range(args.epochs):
                for xb, yb in DataLoader(Points(), batch_size=32, shuffle=True):
                    opt.zero_grad()
                    crit(model(xb), yb).backward()
                    opt.step()
                    sched.step()

        if __name__ == "__main__":
            main()
    """,
    )
    capture = run_script(path, ["--width", "12"], steps=5)
    assert capture.exception is None, capture.traceback
    assert capture.observed and capture.steps == 5
    (loader,) = capture.recording.loaders
    assert loader.shuffle and loader.dataset == "Points" and loader.batch_size == 32
    assert capture.recording.scheduler_seen
    assert capture.recording.optimizer_class == "AdamW"
    assert type(capture.model).__name__ == "Net"


def test_custom_plain_torch_loss_is_observed_but_not_replayable_in_process(tmp_path: Path) -> None:
    path = _script(
        tmp_path,
        """
        model = nn.Linear(6, 2)
        opt = torch.optim.Adam(model.parameters())
        for step in range(1000):
            logits = model(X[:32])
            logp = logits - logits.logsumexp(1, keepdim=True)
            loss = -logp.gather(1, Y[:32, None]).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    """,
    )
    capture = run_script(path, steps=4)
    assert capture.observed
    assert all(s.loss_seen and not s.loss_calls for s in capture.recording.steps)
    subject, why = subject_from_capture(capture)
    assert subject is None and "custom loss" in why


def test_except_exception_in_the_script_cannot_swallow_the_stop(tmp_path: Path) -> None:
    path = _script(
        tmp_path,
        """
        model = nn.Linear(6, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        steps = 0
        while True:
            try:
                loss = F.cross_entropy(model(X[:16]), Y[:16])
                opt.zero_grad(); loss.backward(); opt.step()
                steps += 1
            except Exception:
                pass
    """,
    )
    capture = run_script(path, steps=3, timeout=30)
    assert capture.stop_reason == "step budget" and capture.steps == 3


def test_a_script_that_never_stops_is_stopped_by_the_timeout(tmp_path: Path) -> None:
    path = _script(
        tmp_path,
        """
        while True:
            pass
    """,
    )
    capture = run_script(path, steps=3, timeout=0.5)
    assert capture.stop_reason == "timeout" and not capture.observed


def test_a_script_that_finishes_early_is_still_diagnosed(tmp_path: Path) -> None:
    path = _script(
        tmp_path,
        """
        model = nn.Linear(6, 2)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(2):
            loss = F.cross_entropy(model(X[:16]), Y[:16])
            opt.zero_grad(); loss.backward(); opt.step()
        print("done")
    """,
    )
    capture = run_script(path, steps=20)
    assert capture.observed and capture.steps == 2 and capture.stop_reason == "script finished"
    assert "done" in capture.stdout_tail


def test_no_training_loop_and_syntax_errors_are_not_observed(tmp_path: Path) -> None:
    capture = run_script(
        _script(tmp_path, "model = nn.Linear(6, 2)\nprint(model(X).shape)\n"), steps=3
    )
    assert not capture.observed and capture.stop_reason == "script finished"
    bad = tmp_path / "bad.py"
    bad.write_text("def broken(:\n")
    capture = run_script(str(bad), steps=3)
    assert not capture.observed and isinstance(capture.exception, SyntaxError)
    with pytest.raises(ScriptError):
        run_script(str(tmp_path / "missing.py"))


def test_a_script_that_raises_keeps_its_traceback(tmp_path: Path) -> None:
    path = _script(
        tmp_path,
        """
        model = nn.Linear(6, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss = F.mse_loss(model(X[:16]), Y[:16, None].float().expand(16, 4))
    """,
    )
    capture = run_script(path, steps=3)
    assert not capture.observed and capture.exception is not None
    assert "train.py" in capture.traceback and "mse_loss" in capture.traceback


def test_a_stop_signal_landing_while_the_ending_is_recorded_keeps_the_scripts_ending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A launcher's SIGTERM (or the time limit) raises StopCapture wherever Python happens to
    # be: here, while the script's own exception is being recorded.
    from nndoctor.capture import runner

    path = _script(tmp_path, "raise ValueError('the script failed')\n")
    original = runner._user_traceback
    landed = []

    def interrupted(exc: BaseException, where: str) -> str:
        if not landed:
            landed.append(exc)
            raise runner.StopCapture("terminated by the launcher (SIGTERM)")
        return original(exc, where)

    monkeypatch.setattr(runner, "_user_traceback", interrupted)
    capture = run_script(path, steps=3)
    assert landed, "the stop was not simulated"
    assert capture.stop_reason == "script raised"
    assert isinstance(capture.exception, ValueError)
    assert "the script failed" in capture.traceback


def test_a_loss_on_a_transposed_output_is_rebuilt_for_a_cut_batch(tmp_path: Path) -> None:
    # Scores (batch, length, classes) moved to the (batch, classes, length) layout the loss
    # wants: the copy must move its own output the same way, for any number of samples.
    path = _script(
        tmp_path,
        """
        class Tagger(nn.Module):
            def __init__(self):
                super().__init__()
                self.proj = nn.Linear(6, 5 * 3)
            def forward(self, x):
                return self.proj(x).reshape(len(x), 5, 3)

        T = torch.stack([(Y + k) % 3 for k in range(5)], dim=1)
        model = Tagger()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for step in range(1000):
            i = (step * 16) % 512
            loss = F.cross_entropy(model(X[i:i + 16]).transpose(1, 2), T[i:i + 16])
            opt.zero_grad(); loss.backward(); opt.step()
    """,
    )
    capture = run_script(path, steps=4)
    subject, why = subject_from_capture(capture)
    assert subject is not None, why
    from nndoctor.subject import slice_batch

    batch = subject.take_batches(1)[0]
    model = subject.model
    x = batch["args"][0]
    expected = F_cross_entropy(model(x).transpose(1, 2), batch["targets"])
    assert abs(float(subject.loss_fn(model, batch)) - float(expected)) < 1e-6
    cut = slice_batch(batch, 4, subject)
    assert tuple(subject.loss_input(model, cut).shape) == (4, 3, 5)
    assert subject.loss_fn(model, cut).isfinite()


def F_cross_entropy(inp, target):  # noqa: N802 - the functional the script calls
    import torch.nn.functional as F

    return F.cross_entropy(inp, target)


def test_an_object_gone_does_not_lend_its_entry_to_the_next_at_its_address() -> None:
    import weakref

    from nndoctor.capture.runner import _ByObject

    class Box:
        pass

    first, second = Box(), Box()
    table: _ByObject[str] = _ByObject()
    table.set(first, "first")
    assert table.get(first) == "first" and table.get(second) is None
    # What CPython does when ``first`` is freed and ``second`` takes its address: the
    # entry under that id still names ``first``, so ``second`` gets nothing from it.
    table._entries[id(second)] = (weakref.ref(first), "first")
    assert table.get(second) is None


def test_a_loader_fed_a_step_only_if_it_yielded_for_it_or_its_batch_fits() -> None:
    from nndoctor.capture.runner import _LoaderRecorder
    from nndoctor.probes.recording import LoaderInfo, Recording

    recorder = _LoaderRecorder(Recording())
    features = LoaderInfo(
        index=0,
        sampler="SequentialSampler",
        shuffle=False,
        batch_size=256,
        dataset_len=800,
        dataset="TensorDataset",
        drop_last=False,
        num_workers=0,
        under_no_grad=True,
    )
    recorder.last = features
    # Iterated under no_grad to extract features; the step trains on a (160, 64) tensor.
    assert recorder.feeding((160, 64)) is None
    # Batches listed in advance: the step's input is one of them.
    assert recorder.feeding((256, 64)) is features and recorder.feeding((32, 64)) is features
    recorder.since_step = {id(features): features}  # it yielded with gradients on
    assert recorder.feeding((160, 64)) is features
