"""Capturing one rank of a distributed job: dormant until the script starts one.

``nndoctor check`` runs the script the way the job's launcher started it (torchrun, srun,
or anything setting the usual variables), one nndoctor per rank. :class:`DistributedCapture`
watches for the script's ``torch.distributed.init_process_group``; a group of two or more
ranks (or one that existed before the script ran) switches it on, and from then on:

- the job's own group is created with a bounded timeout (NNDOCTOR_DIST_TIMEOUT, 60 s by
  default, when the script asks for more or for none), so a collective that can no longer
  complete (a peer died, stopped, or is waiting elsewhere) raises instead of hanging; the
  rendezvous, where ranks that start at different times meet, keeps the script's timeout;
- nndoctor opens its own gloo channel (:mod:`nndoctor.distributed.channel`, twice that
  timeout, so that it outlives a peer stuck in one of the job's collectives);
- at the end of every optimizer step the ranks agree, with one small all-reduce, whether to
  stop: all stop at the same step, when any rank reached the step budget or its time limit,
  or when any rank's script ended (finished or raised) — never one rank alone;
- the model found is the module inside ``DistributedDataParallel`` (its hooks see the
  module's own forward), observed by the usual probes and by the
  :class:`~nndoctor.probes.distributed.RankProbe`;
- a SIGTERM (torchrun stops every worker when one of them dies) stops the script at once:
  this rank then reports what it saw without waiting for the others, within the launcher's
  grace period. Once the script has ended, a SIGTERM only marks the job as ending: from then
  until the report is out it never interrupts nndoctor (nor falls back to the default
  handler, which would end the process with no report).

A script that never starts a process group, or starts one of a single rank, runs exactly as
without it: the only thing installed is the wrapper of ``init_process_group``.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import inspect
import signal
from collections.abc import Iterator
from typing import Any

import torch.distributed as dist
from torch import nn

from nndoctor.distributed.channel import Channel, RankLost, collective_timeout
from nndoctor.probes.distributed import RankProbe

# The stop agreement's vector, reduced with MAX: flags carry rank + 1 so the maximum names a
# rank; the last entry is -1 from a rank whose script ended, so its maximum is -1 once all
# of them have.
_BUDGET, _TIMEOUT, _ENDED, _ALL_ENDED = range(4)


def data_parallel_wrapper(module: nn.Module) -> str | None:
    """The kind of data-parallel wrapper ``module`` is: DistributedDataParallel, FSDP (a
    module sharded by ``fully_shard`` or wrapped in FullyShardedDataParallel), or None."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(module, DistributedDataParallel):
        return "DistributedDataParallel"
    try:
        from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel
    except ImportError:  # an older torch: no fully_shard
        return None
    if isinstance(module, (FSDPModule, FullyShardedDataParallel)):
        return "FSDP"
    return None


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper; any other module as it is."""
    return module.module if data_parallel_wrapper(module) == "DistributedDataParallel" else module


class DistributedCapture:
    """The distributed side of one rank's capture (see the module docstring)."""

    def __init__(self, script: str | None = None, timeout: float | None = None) -> None:
        self.script = script
        # The job's own collectives time out after this; nndoctor's after twice this.
        self.timeout = collective_timeout() if timeout is None else timeout
        self.channel: Channel | None = None
        self.probe = RankProbe()
        self.rank = 0
        self.world = 1
        self.backend = ""
        # The script initialised the default group (or destroyed it, deferred): it is
        # destroyed at teardown.
        self.created_group = False
        self.wrapper: str | None = None
        self.timed_out = False
        self.source: Any = None
        self.terminated = False  # a SIGTERM stopped the script (the launcher ends the job)
        self._sigterm: Any = None  # the handler the SIGTERM one replaced
        # After the script, until teardown, a SIGTERM is only noted (see held_signals).
        self._holding_sigterm = False

    @property
    def active(self) -> bool:
        return self.channel is not None

    @property
    def lost(self) -> RankLost | None:
        return self.channel.lost if self.channel is not None else None

    # -- installing -----------------------------------------------------------------------
    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Wrap ``init_process_group`` (and open the channel at once when a group of several
        ranks exists already); everything is put back on exit."""
        if not dist.is_available():
            yield
            return
        original_init, original_destroy = dist.init_process_group, dist.destroy_process_group
        capture = self

        def init_process_group(*args: Any, **kwargs: Any) -> None:
            args, kwargs = capture._bounded(original_init, args, kwargs)
            original_init(*args, **kwargs)
            capture._activate(created=True)

        def destroy_process_group(group: Any = None) -> None:
            # Destroying the default group destroys every group, nndoctor's too: the ranks
            # still have to compare notes, so it is destroyed after that (at teardown).
            if capture.active and (group is None or group is dist.GroupMember.WORLD):
                capture.created_group = True
                return
            original_destroy(group)

        dist.init_process_group = init_process_group  # type: ignore[assignment]
        dist.destroy_process_group = destroy_process_group  # type: ignore[assignment]
        try:
            if dist.is_initialized():
                self._activate(created=False)
            with self.probe.installed():
                yield
        finally:
            dist.init_process_group = original_init  # type: ignore[assignment]
            dist.destroy_process_group = original_destroy  # type: ignore[assignment]
            self.probe.close()
            # Not put back to the default here, even for an instant (see held_signals): a
            # process-directed signal reaches whichever thread does not block it, gloo's
            # among them, so masking it in this thread could not hold it back.
            self.script_ended()

    def _bounded(
        self, original: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, Any]:
        """The script's arguments with the group's timeout bounded by ``self.timeout``.

        The bound is for collectives that can no longer complete, not for ranks that arrive
        late: ranks start at different times (a slow import, a busy machine, a scheduler),
        and the script's own timeout is what it allows for that. So the rendezvous is made
        here with the script's timeout, and the group then created on its store with the
        bounded one, as ``init_process_group`` would have made it."""
        limit = datetime.timedelta(seconds=self.timeout)
        try:
            bound = inspect.signature(original).bind(*args, **kwargs)
        except TypeError:  # let the script's own call raise its own error
            return args, kwargs
        call = bound.arguments
        given = call.get("timeout")
        call["timeout"] = limit if given is None or given > limit else given
        waits = given if given is not None else dist.default_pg_timeout
        backend = str(call.get("backend") or "").lower()
        own_store = "mpi" in backend or "fake" in backend  # these make no rendezvous
        if call.get("store") is None and call["timeout"] < waits and not own_store:
            store, rank, world = next(
                dist.rendezvous(
                    call.get("init_method") or "env://",
                    call.get("rank", -1),
                    call.get("world_size", -1),
                    timeout=waits,
                )
            )
            store.set_timeout(call["timeout"])
            call.update(
                init_method=None,
                store=dist.PrefixStore("default_pg", store),
                rank=rank,
                world_size=world,
            )
        return bound.args, bound.kwargs

    def _activate(self, created: bool) -> None:
        if self.channel is not None or dist.get_world_size() < 2:
            return
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.backend = str(dist.get_backend())
        self.created_group = created
        # Collective: every rank opens it here, right after the default group exists.
        self.channel = Channel(timeout=2 * self.timeout)
        try:
            self._sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread: the launcher's SIGTERM ends the rank as usual
            self._sigterm = None
        if self.script is not None:
            from nndoctor.distributed.source import scan

            self.source = scan(self.script)

    # -- during the run -------------------------------------------------------------------
    def _on_sigterm(self, signum: int, frame: Any) -> None:
        from nndoctor.capture.runner import StopCapture

        self._note_terminated(signum, frame)
        # Once: a second SIGTERM must not interrupt the stop this one starts.
        signal.signal(signal.SIGTERM, self._note_terminated)
        raise StopCapture("terminated by the launcher (SIGTERM)")

    def _note_terminated(self, signum: int, frame: Any) -> None:
        self.terminated = True
        # The others are being stopped too: no collective can complete any more.
        if self.channel is not None and self.channel.lost is None:
            self.channel.lost = RankLost("the launcher sent SIGTERM: the job is being stopped")

    def script_ended(self) -> None:
        """The script ended: from now until :meth:`teardown` a SIGTERM only marks the job as
        ending (nndoctor's own code is never interrupted), so that the report is still
        written; the launcher kills the rank after its grace period anyway."""
        if self._sigterm is not None and not self._holding_sigterm:
            signal.signal(signal.SIGTERM, self._note_terminated)
            self._holding_sigterm = True

    def held_signals(self) -> set[int]:
        """The signals whose handler this capture holds past the script, until
        :meth:`teardown` (the process state restored after the script leaves them)."""
        return {signal.SIGTERM} if self._holding_sigterm else set()

    def attach(self, model: nn.Module, wrapper: str | None) -> None:
        """The model was found (the module inside DDP, or an FSDP-sharded module)."""
        if not self.active:
            return
        self.wrapper = wrapper
        self.probe.attach(model)

    def agree_stop(self, budget_reached: bool, steps: int, optimizer: Any) -> str | None:
        """At the end of optimizer step ``steps``: why every rank stops here, or None to go on.

        One all-reduce over nndoctor's channel; a rank that cannot take part is lost and
        this rank stops."""
        self.probe.step_ended(optimizer)
        assert self.channel is not None
        me = self.rank + 1
        try:
            agreed = self.channel.all_max(
                [me if budget_reached else 0, me if self.timed_out else 0, 0, 0]
            )
        except RankLost as lost:
            return f"a rank was lost ({lost})"
        if agreed[_ENDED]:
            return f"stopped with rank {agreed[_ENDED] - 1}, whose script ended"
        if agreed[_TIMEOUT]:
            return "timeout"
        if agreed[_BUDGET]:
            return "step budget"
        return None

    def defer_timeout(self) -> bool:
        """The script's time limit passed on this rank: stop at the next agreement (so every
        rank stops at the same step) rather than now. Once only: when no step comes within
        the collective timeout, the next alarm stops this rank anyway (returns False)."""
        if not self.active or self.timed_out:
            return False
        self.timed_out = True
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        return True

    def finish(self) -> None:
        """This rank's script ended: keep answering the other ranks' agreements (each of
        them now stops) until every rank's script has ended."""
        if self.channel is None or not self.channel.open:
            return
        me = self.rank + 1
        with contextlib.suppress(RankLost):
            while True:
                agreed = self.channel.all_max([0, 0, me, -1])
                if agreed[_ALL_ENDED] == -1:
                    return

    # -- afterwards -----------------------------------------------------------------------
    def teardown(self, ending: bool = False) -> None:
        """Close nndoctor's channel and, when the script started the default group, destroy
        it too (what the script changes in the process is put back). ``ending``: the job is
        being stopped and the process exits once its report is out: SIGTERM stays ignored."""
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN if ending else self._sigterm)
            self._sigterm = None
        self._holding_sigterm = False
        if self.channel is not None:
            self.channel.close()
        # The job's DDP wrappers hold the default group; collected first, so destroying it
        # frees it now rather than at interpreter exit (where gloo may abort the process).
        gc.collect()
        if self.created_group and dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()
