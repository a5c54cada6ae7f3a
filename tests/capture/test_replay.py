"""Replays: re-running a script with substituted data, for custom losses."""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from nndoctor.capture.replay import ReplayPlan, ReplayServer, run_replay, run_replays

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


@pytest.fixture
def server(replay_server: ReplayServer) -> ReplayServer:
    """The session's replay server, for the tests that do not stop it (its start is an
    interpreter's)."""
    return replay_server


def test_overfit_replay_feeds_one_tiny_batch_with_regularisation_off(
    tmp_path: Path, server: ReplayServer
) -> None:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT.replace("{guard}", ".clamp_min(1e-12)"))
    result = run_replay(ReplayPlan(str(path), [], "overfit", steps=60, batch_size=4), server)
    assert result.ok and result.substituted, result.error
    assert len(result.losses) == 60
    assert result.losses[-1] < 0.05 < result.losses[0]
    assert not (tmp_path / "ckpt.pt").exists()


def test_an_overfit_replay_given_the_fit_rule_ends_once_the_batch_is_fit(
    tmp_path: Path, server: ReplayServer
) -> None:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT.replace("{guard}", ".clamp_min(1e-12)"))
    rule = {"fraction": 0.1, "floor": 0.0, "absolute": 0.1, "scale": 1.0}
    plan = ReplayPlan(str(path), [], "overfit", steps=150, batch_size=4, fit_rule=rule)
    result = run_replay(plan, server)
    assert result.ok, result.error
    assert 5 <= len(result.losses) < 150
    assert sum(result.losses[-5:]) / 5 <= 0.1  # it ended because it fit, not before
    assert sum(result.losses[-6:-1]) / 5 > 0.1 or len(result.losses) == 5


def test_trace_replay_finds_the_operation_and_line_of_a_nan(
    tmp_path: Path, server: ReplayServer
) -> None:
    path = tmp_path / "train.py"
    # log(p) with p underflowing to zero once the logits are large: force it with a huge scale.
    path.write_text(
        SCRIPT.replace("{guard}", " * 0").replace("logits = model(xb)", "logits = model(xb)")
    )
    result = run_replay(ReplayPlan(str(path), [], "trace", trace_step=0), server)
    assert result.event is not None, result.error
    assert result.event["op"] == "log" and result.event["phase"] == "forward"
    assert result.event["file"] == str(path)
    assert "torch.log" in result.event["code"]


def test_a_replay_cut_by_its_time_limit_says_so(tmp_path: Path, server: ReplayServer) -> None:
    path = tmp_path / "train.py"
    path.write_text(
        SCRIPT.replace("{guard}", ".clamp_min(1e-12)").replace(
            "opt.zero_grad();", "import time; time.sleep(0.5); opt.zero_grad();"
        )
    )
    # 150 steps of half a second each against a 4 s limit: cut short however loaded the
    # machine is. The limit starts after the replay's imports, and a server has torch's
    # (torch._dynamo's included) done before the fork, so the first steps fit in it.
    plan = ReplayPlan(str(path), [], "overfit", steps=150, batch_size=4, timeout=4.0)
    result = run_replay(plan, server)
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


def test_a_loop_that_never_steps_ends_instead_of_spinning(
    tmp_path: Path, server: ReplayServer
) -> None:
    # The evaluation before training iterates a loader the replay makes endless: without
    # a backward pass or a step for many batches it ends, and training is replayed.
    path = tmp_path / "train.py"
    path.write_text(EVALUATES_FIRST)
    plan = ReplayPlan(str(path), [], "overfit", steps=30, batch_size=4, timeout=60)
    result = run_replay(plan, server)
    assert result.ok and not result.timed_out, result.error
    assert result.steps == 30 and len(result.losses) == 30


# A script that leaves traces a later replay would see if replays shared a process or a
# folder: the default dtype it changes, and a checkpoint it resumes from when one exists.
LEAVES_TRACES = textwrap.dedent(
    """
    import os
    import torch
    from torch import nn
    if torch.get_default_dtype() != torch.float32:
        raise RuntimeError("a previous replay's default dtype")
    if os.path.exists("resume.pt"):
        raise RuntimeError("a previous replay's checkpoint")
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x.sum(1, keepdim=True)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(20):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        torch.save(model.state_dict(), "resume.pt")
    """
)


def test_replays_forked_by_a_server_match_fresh_ones_and_share_nothing(
    tmp_path: Path, server: ReplayServer
) -> None:
    path = tmp_path / "train.py"
    path.write_text(LEAVES_TRACES)
    plan = ReplayPlan(str(path), [], "rate", steps=10, overrides={"lr_scale": 1.0})
    fresh = run_replay(plan)
    served = [run_replay(plan, server) for _ in range(3)]
    assert server.usable
    assert fresh.ok, fresh.error
    for result in served:
        assert result.ok, result.error
        assert result.losses == fresh.losses and result.rates == fresh.rates
    assert not (tmp_path / "resume.pt").exists()


# Spends half a second of processor time in the script and as much in a loader worker.
BUSY = textwrap.dedent(
    """
    import time
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    def spin(seconds):
        start = time.process_time()
        while time.process_time() - start < seconds:
            pass

    class Busy(Dataset):
        def __len__(self):
            return 4
        def __getitem__(self, i):
            if i == 0:
                spin(0.5)
            return torch.ones(2), torch.zeros(1)

    if __name__ == "__main__":
        spin(0.5)
        model = nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in DataLoader(Busy(), batch_size=4, num_workers=1):
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
    """
)


def test_a_replay_reports_the_processor_time_of_its_script_and_its_loader_workers(
    tmp_path: Path, server: ReplayServer
) -> None:
    # What the experiment budget counts: a second of processor time, half of it in a
    # loader worker, whichever way the replay was started.
    path = tmp_path / "train.py"
    path.write_text(BUSY)
    plan = ReplayPlan(str(path), [], "rate", steps=1)
    for result in (run_replay(plan), run_replay(plan, server)):
        assert result.ok, result.error
        assert result.cpu_seconds >= 1.0


READS_ITS_ENVIRONMENT = textwrap.dedent(
    """
    import os, tempfile
    import torch
    from torch import nn
    # The loss carries the value of an environment variable, and the temp folder is checked.
    if not tempfile.gettempdir().startswith(os.environ["TMPDIR"]):
        raise RuntimeError("a temp folder other than the environment's")
    shift = float(os.environ["NNDOCTOR_TEST_SHIFT"])
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    for step in range(3):
        loss = model(torch.zeros(4, 2)).sum() * 0 + shift
        opt.zero_grad(); loss.backward(); opt.step()
    """
)


def test_a_served_replay_sees_the_environment_of_its_request_not_of_the_servers_start(
    tmp_path: Path, server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "train.py"
    path.write_text(READS_ITS_ENVIRONMENT)
    plan = ReplayPlan(str(path), [], "rate", steps=3, overrides={"lr_scale": 1.0})
    server.start()  # before the variable exists
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    for shift in ("2.5", "7.0"):
        monkeypatch.setenv("NNDOCTOR_TEST_SHIFT", shift)
        result = run_replay(plan, server)
        assert result.ok, result.error
        assert result.losses == [float(shift)] * 3


UNSEEDED = textwrap.dedent(
    """
    import numpy as np
    import torch
    from torch import nn
    x = torch.tensor(np.random.randn(64, 3), dtype=torch.float32)  # never seeded
    y = x.sum(1, keepdim=True)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(5):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    """
)


def test_a_seeded_replay_of_an_unseeded_script_draws_the_same_data_in_any_process(
    tmp_path: Path, server: ReplayServer
) -> None:
    path = tmp_path / "train.py"
    path.write_text(UNSEEDED)

    def replay(seed: int, via: ReplayServer | None) -> list[float]:
        plan = ReplayPlan(str(path), [], "rate", steps=5, overrides={"lr_scale": 1.0}, seed=seed)
        result = run_replay(plan, via)
        assert result.ok, result.error
        return result.losses

    served = replay(0, server)
    # A new interpreter draws numpy's state afresh, a forked one inherits the server's:
    # the seed makes them the same.
    assert replay(0, None) == served
    assert replay(1, server) != served


def test_the_lab_replays_with_the_seed_of_the_observed_run() -> None:
    from torch import nn

    from nndoctor.checks.lab import Lab

    lab = Lab(None, model=nn.Linear(2, 1), script=("train.py", []), replay_seed=3)
    assert lab._plan("rate", {"steps": 4}).seed == 3


def _request(tmp_path: Path, name: str, plan: ReplayPlan, hard_limit: float) -> dict[str, Any]:
    folder = tmp_path / name
    (folder / "cwd").mkdir(parents=True)
    (folder / "plan.json").write_text(json.dumps(asdict(plan)))
    return {
        "plan": str(folder / "plan.json"),
        "out": str(folder / "out.json"),
        "cwd": str(folder / "cwd"),
        "log": str(folder / "log"),
        "hard_limit": hard_limit,
    }


def test_a_server_kills_a_replay_deaf_to_its_clock_at_the_hard_limit(
    tmp_path: Path, server: ReplayServer
) -> None:
    # A script that ignores the replay's alarm and sleeps: only the hard limit ends it. The
    # replay running beside it finishes, and the server goes on answering.
    deaf = tmp_path / "deaf.py"
    deaf.write_text(
        "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(600)\n"
    )
    path = tmp_path / "train.py"
    path.write_text(LEAVES_TRACES)
    stuck = _request(tmp_path, "deaf", ReplayPlan(str(deaf), [], "rate", timeout=1.0), 3.0)
    fine = _request(tmp_path, "fine", ReplayPlan(str(path), [], "rate", steps=5), 60.0)
    if not server.usable:
        pytest.skip("no fork on this platform: every replay is a new interpreter")
    (stuck_outcome, _), (fine_outcome, fine_cpu) = server.run_batch([stuck, fine], parallel=2)
    assert (stuck_outcome, fine_outcome) == ("stopped", "done") and fine_cpu > 0
    assert not Path(stuck["out"]).exists() and Path(fine["out"]).exists()
    after = run_replay(ReplayPlan(str(path), [], "rate", steps=5), server)
    assert after.ok and len(after.losses) == 5 and server.usable


def test_replays_run_side_by_side_record_what_they_record_one_at_a_time(
    tmp_path: Path, server: ReplayServer
) -> None:
    path = tmp_path / "train.py"
    path.write_text(LEAVES_TRACES)
    plans = [
        ReplayPlan(str(path), [], "rate", steps=10, overrides={"lr_scale": s}) for s in (0, 1, 5)
    ]
    alone = [run_replay(p, server) for p in plans]
    together = run_replays(plans, server, parallel=3)
    for a, b in zip(alone, together, strict=True):
        assert a.ok and b.ok, (a.error, b.error)
        assert b.losses == pytest.approx(a.losses, rel=1e-9) and b.rates == a.rates
    # Each run its own: the frozen run stays put, the faster one falls further.
    frozen, own, faster = (r.losses for r in together)
    assert frozen[-1] == frozen[0] > own[-1] > faster[-1]


def test_a_replay_still_runs_when_its_server_has_died(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(LEAVES_TRACES)
    plan = ReplayPlan(str(path), [], "rate", steps=5)
    with ReplayServer() as server:
        if not server.usable:
            pytest.skip("no fork on this platform: every replay is a new interpreter")
        first = run_replay(plan, server)
        assert server._proc is not None
        server._proc.kill()
        server._proc.wait()
        second = run_replay(plan, server)
        assert not server.usable and server._proc is None
    assert first.ok and second.ok and second.losses == first.losses


def test_a_small_cpu_model_is_replayed_on_one_thread_as_experiments_train_it() -> None:
    # Threads spinning at OpenMP barriers slow a small model and burn processor time that
    # the experiment budget counts; a large model keeps torch's threads.
    from torch import nn

    from nndoctor.checks.lab import SINGLE_THREAD_MAX_PARAMS, Lab

    small = Lab(None, model=nn.Linear(2, 1), script=("train.py", []))
    assert small._plan("overfit", {}).threads == 1
    large = Lab(None, model=nn.Linear(SINGLE_THREAD_MAX_PARAMS, 2), script=("train.py", []))
    assert large._plan("overfit", {}).threads is None


def test_a_replay_runs_on_the_threads_its_plan_gives(tmp_path: Path, server: ReplayServer) -> None:
    path = tmp_path / "train.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            model = nn.Linear(2, 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.0)
            for step in range(3):
                # The loss is the number of threads torch runs on.
                loss = model(torch.zeros(4, 2)).sum() * 0 + torch.get_num_threads()
                opt.zero_grad(); loss.backward(); opt.step()
            """
        )
    )
    plan = ReplayPlan(str(path), [], "rate", steps=3, overrides={"lr_scale": 1.0}, threads=1)
    for result in (run_replay(plan), run_replay(plan, server)):
        assert result.ok, result.error
        assert result.losses == [1.0, 1.0, 1.0]


def test_a_forked_replay_that_fails_leaves_its_traceback_in_its_log(tmp_path: Path) -> None:
    """A replay child ends with os._exit, which prints nothing: an error before its result
    is written must still reach the log, where the caller reads why the replay failed."""
    import os

    from nndoctor.capture._replay_child import _fork_replay

    log = tmp_path / "stderr.txt"
    request = {
        "plan": str(tmp_path / "no-such-plan.json"),
        "out": str(tmp_path / "result.json"),
        "cwd": str(tmp_path),
        "log": str(log),
        "hard_limit": 30,
    }
    _, status = os.waitpid(_fork_replay(request, None), 0)
    assert os.waitstatus_to_exitcode(status) == 1
    assert "FileNotFoundError" in log.read_text() and "no-such-plan.json" in log.read_text()


def test_replays_ask_for_a_cuda_check_that_leaves_forking_possible() -> None:
    # A server whose imports call torch.cuda.is_available() would otherwise leave every
    # replay it forks unable to use CUDA.
    from nndoctor.capture.replay import _replay_env

    assert _replay_env()["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"


def test_a_one_element_loss_of_any_shape_is_read_as_the_loss(
    tmp_path: Path, server: ReplayServer
) -> None:
    # torch back-propagates a (1, 1) tensor as it does a scalar (a bag-level likelihood
    # written as -(y * log p)): the observed run and the replay both read it as the loss.
    from nndoctor.capture.runner import run_script

    path = tmp_path / "train.py"
    script = SCRIPT.replace("{guard}", ".clamp_min(1e-12)").replace(
        ").mean()   #", ").mean().reshape(1, 1)   #"
    )
    assert "reshape(1, 1)" in script
    path.write_text(script)
    capture = run_script(str(path), steps=4, phase_steps=0)
    assert len(capture.recording.steps) >= 3
    assert all(s.loss_seen for s in capture.recording.steps)
    result = run_replay(ReplayPlan(str(path), [], "overfit", steps=10, batch_size=4), server)
    assert result.ok, result.error
    assert len(result.losses) == 10


# Batches cut by hand, no DataLoader: {order} sets each batch's rows, {noise} is added to it.
HAND_CUT = textwrap.dedent(
    """
    import numpy as np
    import torch
    from torch import nn
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.randn(512, 6); y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(20):
        perm = {perm}
        for start in range(0, len(x), 32):
            idx = {idx}
            xb = x[idx] + {noise}
            logits = model(xb)
            loss = -(logits.log_softmax(1)).gather(1, y[idx][:, None]).mean()
            opt.zero_grad(); loss.backward(); opt.step()
    """
)

_SLICED = "perm[start:start + 32]"


@pytest.mark.parametrize(
    ("perm", "idx", "noise", "rows"),
    [
        # A fresh permutation each epoch, sliced in order: the rows cut are handed out again,
        # cut to the tiny batch.
        ("torch.randperm(len(x))", _SLICED, "0.0", 4),
        ("torch.from_numpy(rng.permutation(len(x)))", _SLICED, "0.0", 4),
        ("None", "torch.from_numpy(rng.integers(0, len(x), 32))", "float(rng.normal()) * 0.01", 4),
        # Noise drawn for the script's own batch size: the rows are not cut, and the random
        # streams, rewound, draw the same noise at every step.
        ("None", "torch.randint(0, len(x), (32,))", "0.01 * torch.randn(32, 6)", 32),
    ],
)
def test_an_overfit_replay_without_a_loader_repeats_the_second_steps_batch(
    tmp_path: Path, server: ReplayServer, perm: str, idx: str, noise: str, rows: int
) -> None:
    path = tmp_path / "train.py"
    path.write_text(HAND_CUT.format(perm=perm, idx=idx, noise=noise))
    plan = ReplayPlan(str(path), [], "overfit", steps=40, batch_size=4)
    if rows == 32:
        cut = run_replay(plan, server)
        assert cut.batch_cut and "must match the size" in str(cut.error)
        plan.overrides = {"uncut": True}
    result = run_replay(plan, server)
    assert result.ok and not result.substituted, result.error
    # The first two steps read other batches: their losses are left out.
    assert result.repeated_draws and not result.inputs_vary and result.batch_rows == rows
    assert result.batch_cut == (rows == 4)
    assert len(result.losses) == 40 and result.steps == 42
    assert result.losses[-1] < result.losses[0] / 5


def test_batches_a_replay_cannot_repeat_are_said_to_vary(
    tmp_path: Path, server: ReplayServer
) -> None:
    # Noise drawn after a new permutation at each epoch's start: the streams rewound to the
    # second step give the epoch's first batch other noise, and the replay says the input
    # varied rather than call it one batch.
    path = tmp_path / "train.py"
    path.write_text(
        HAND_CUT.format(
            perm="torch.randperm(len(x))", idx=_SLICED, noise="0.01 * torch.randn(32, 6)"
        )
    )
    plan = ReplayPlan(str(path), [], "overfit", steps=20, overrides={"uncut": True})
    result = run_replay(plan, server)
    assert result.ok and result.repeated_draws and result.inputs_vary
