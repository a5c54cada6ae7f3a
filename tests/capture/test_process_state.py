"""What a checked script changes in the process is put back, however the script ends."""

from __future__ import annotations

import logging
import os
import signal
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from nndoctor.capture.runner import run_script


def _umask() -> int:
    mask = os.umask(0)  # read only by setting: set back at once
    os.umask(mask)
    return mask


# Each kind of state: what a script does to it, and how the test reads it.
KINDS: dict[str, tuple[str, Callable[[], Any]]] = {
    "cwd": ("os.makedirs('sub', exist_ok=True); os.chdir('sub')", os.getcwd),
    "environment": ("os.environ['NNDOCTOR_TEST_VAR'] = '1'", lambda: dict(os.environ)),
    "umask": ("os.umask(0o077)", lambda: _umask()),
    "sys.argv": ("sys.argv.append('--extra')", lambda: list(sys.argv)),
    "sys.path": ("sys.path.append('/nowhere')", lambda: list(sys.path)),
    "recursion limit": ("sys.setrecursionlimit(12345)", sys.getrecursionlimit),
    "excepthook": ("sys.excepthook = lambda *a: None", lambda: sys.excepthook),
    "threads": ("torch.set_num_threads(1)", torch.get_num_threads),
    "default dtype": ("torch.set_default_dtype(torch.float64)", torch.get_default_dtype),
    "grad mode": ("torch.set_grad_enabled(False)", torch.is_grad_enabled),
    "anomaly mode": ("torch.autograd.set_detect_anomaly(True)", torch.is_anomaly_enabled),
    "deterministic": (
        "torch.use_deterministic_algorithms(True)",
        torch.are_deterministic_algorithms_enabled,
    ),
    "cudnn": (
        "torch.backends.cudnn.benchmark = True; torch.backends.cudnn.deterministic = True",
        lambda: (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic),
    ),
    "matmul precision": (
        "torch.set_float32_matmul_precision('medium')",
        torch.get_float32_matmul_precision,
    ),
    "numpy errors": ("np.seterr(all='raise')", np.geterr),
    "warning filters": ("warnings.simplefilter('error')", lambda: list(warnings.filters)),
    "logging": (
        "logging.basicConfig(level=logging.DEBUG, filename='train.log', force=True)",
        lambda: (logging.root.level, list(logging.root.handlers)),
    ),
    "named logger": (
        "lg = logging.getLogger('nndoctor'); lg.setLevel(5); lg.propagate = False",
        lambda: (logging.getLogger("nndoctor").level, logging.getLogger("nndoctor").propagate),
    ),
    "signal handlers": (
        "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, lambda *a: None)",
        lambda: (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)),
    ),
    "torch.nn.functional": ("F.relu = lambda x, inplace=False: x * 0", lambda: F.relu),
    "torch": ("torch.cat = None; torch.nndoctor_extra = 1", lambda: dict(vars(torch))),
    "torch.nn": ("nn.Linear = nn.Identity", lambda: nn.Linear),
    "torch.Tensor": ("torch.Tensor.relu = lambda self: self", lambda: torch.Tensor.relu),
    "sys.modules": ("sys.modules['json'] = None", lambda: sys.modules["json"]),
}
ENDINGS = {
    "finished": ("", "script finished"),
    "raised": ("raise RuntimeError('boom')", "script raised"),
    "timed out": ("while True: pass", "timeout"),
}
HEAD = "import logging, os, signal, sys, warnings\nimport numpy as np\nimport torch\n"
HEAD += "import torch.nn.functional as F\nfrom torch import nn\n"


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("kind", list(KINDS))
def test_what_a_script_changes_is_put_back(
    kind: str, ending: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    change, read = KINDS[kind]
    tail, reason = ENDINGS[ending]
    script = tmp_path / "train.py"
    script.write_text(HEAD + change + "\n" + tail + "\n")
    monkeypatch.chdir(tmp_path)
    before = read()
    capture = run_script(str(script), timeout=0.25 if ending == "timed out" else 30)
    assert capture.stop_reason == reason, capture.traceback
    assert read() == before
    assert not (tmp_path / "train.log").exists() and not (tmp_path / "sub").exists()


MODEL_A = "WIDTH = 3\n"
MODEL_B = "WIDTH = 5\n"
USES_MODEL = textwrap.dedent(
    """
    import sys
    from model import WIDTH
    from helpers.util import NAME
    assert WIDTH == int(sys.argv[1]) and NAME == sys.argv[1], (WIDTH, NAME)
    """
)


def _project(root: Path, width: int) -> Path:
    (root / "helpers").mkdir(parents=True)
    (root / "model.py").write_text(f"WIDTH = {width}\n")
    (root / "helpers" / "__init__.py").write_text("")
    (root / "helpers" / "util.py").write_text(f"NAME = '{width}'\n")
    (root / "train.py").write_text(USES_MODEL)
    return root / "train.py"


def test_a_second_script_gets_its_own_local_modules(tmp_path: Path) -> None:
    first = _project(tmp_path / "a", 3)
    second = _project(tmp_path / "b", 5)
    for script, width in ((first, 3), (second, 5), (first, 3)):
        capture = run_script(str(script), [str(width)], timeout=10)
        assert capture.stop_reason == "script finished", capture.traceback
    assert "model" not in sys.modules and "helpers" not in sys.modules


def test_modules_from_a_folder_the_script_adds_to_the_path_are_forgotten(
    tmp_path: Path,
) -> None:
    lib = tmp_path / "src"
    lib.mkdir()
    (lib / "nndoctor_test_lib.py").write_text("VALUE = 1\n")
    script = tmp_path / "run" / "train.py"
    script.parent.mkdir()
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(lib)!r})\nimport nndoctor_test_lib\n"
        "import torch.nn.functional  # already imported: stays\n"
    )
    capture = run_script(str(script), timeout=10)
    assert capture.stop_reason == "script finished", capture.traceback
    assert "nndoctor_test_lib" not in sys.modules and str(lib) not in sys.path
    assert "torch.nn.functional" in sys.modules
