"""``NNDoctorCallback`` for PyTorch Lightning: watch a whole ``Trainer.fit``.

::

    from nndoctor.integrations.lightning import NNDoctorCallback

    doctor = NNDoctorCallback(log="alerts.jsonl")
    trainer = L.Trainer(callbacks=[doctor])
    trainer.fit(model, loader)
    alerts = doctor.report.alerts

The Watcher attaches at ``on_fit_start`` to the LightningModule and its first optimizer, and
detaches at ``on_fit_end`` (or ``on_exception``). Options are ``nndoctor.watch``'s (``every``,
``budget``, ``log``, ``stop_on``, ``on_alert``, ``thresholds``, ``quiet``).
"""

from __future__ import annotations

from typing import Any

from nndoctor.integrations import WatchHandle, missing
from nndoctor.watch.report import WatchReport

try:
    from lightning.pytorch import Callback
except ImportError:  # the older package name
    try:
        from pytorch_lightning import Callback  # type: ignore[no-redef]
    except ImportError:
        raise missing("PyTorch Lightning", "lightning") from None


class NNDoctorCallback(Callback):
    """Attach ``nndoctor.watch`` for the length of ``fit``; ``report`` holds its WatchReport."""

    def __init__(self, **watch_options: Any) -> None:
        super().__init__()
        self._handle = WatchHandle(**watch_options)

    @property
    def report(self) -> WatchReport | None:
        return self._handle.report

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        optimizers = getattr(trainer, "optimizers", None) or [None]
        # None: the Watcher takes whichever optimizer steps the module's parameters.
        self._handle.start(pl_module, optimizers[0])

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._handle.stop()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._handle.stop()
