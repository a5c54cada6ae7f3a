"""nndoctor inside distributed jobs (torchrun, srun; DDP, FSDP), on the job's own group.

- :mod:`nndoctor.distributed.channel`: nndoctor's own gloo group, every collective with a
  timeout (NNDOCTOR_DIST_TIMEOUT).
- :mod:`nndoctor.distributed.capture`: one rank's capture; the ranks agree when to stop.
- :mod:`nndoctor.distributed.check`: one report, on rank 0, from every rank's findings
  and facts; experiments on rank 0 only.
- :mod:`nndoctor.distributed.source`: what the script's source says about the world size.

The checks that compare ranks are in :mod:`nndoctor.checks.distributed`; the probe that
records what they compare, in :mod:`nndoctor.probes.distributed`.
"""

from __future__ import annotations

import os


def launched_rank() -> int | None:
    """This process's rank as its launcher announced it before any group exists (RANK from
    torchrun and most launchers, SLURM_PROCID under srun), or None outside a job of
    several processes. Used only to keep the other ranks' progress lines quiet."""
    for rank, world in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        try:
            if int(os.environ.get(world, "1")) > 1:
                return int(os.environ[rank])
        except (KeyError, ValueError):
            continue
    return None
