"""``NNDoctorCallback`` for the Hugging Face ``Trainer``: watch a whole ``trainer.train()``.

::

    from nndoctor.integrations.hf import NNDoctorCallback

    doctor = NNDoctorCallback(log="alerts.jsonl")
    Trainer(model=model, args=args, train_dataset=data, callbacks=[doctor]).train()
    alerts = doctor.report.alerts

The Watcher attaches at ``on_train_begin`` to ``kwargs['model']`` and ``kwargs['optimizer']``
(accelerate's optimizer wrapper is unwrapped) and detaches at ``on_train_end``. The Trainer
has no exception event: after a ``train()`` that raised, call ``doctor.close()``. Options are
``nndoctor.watch``'s (``every``, ``budget``, ``log``, ``stop_on``, ``on_alert``, ...).
"""

from __future__ import annotations

from typing import Any

from nndoctor.integrations import WatchHandle, missing
from nndoctor.watch.report import WatchReport

try:
    from transformers import TrainerCallback
except ImportError:
    raise missing("transformers", "hf") from None


class NNDoctorCallback(TrainerCallback):
    """Attach ``nndoctor.watch`` for the length of ``train``; ``report`` holds its WatchReport."""

    def __init__(self, **watch_options: Any) -> None:
        self._handle = WatchHandle(**watch_options)

    @property
    def report(self) -> WatchReport | None:
        return self._handle.report

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if model is None:
            return
        self._handle.start(model, kwargs.get("optimizer"))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._handle.stop()

    def close(self) -> WatchReport | None:
        """Detach now (after a ``train()`` that raised); returns the report."""
        return self._handle.stop()
