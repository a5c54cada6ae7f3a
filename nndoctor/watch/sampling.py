"""Which steps are sampled: every k steps, k fixed (``every=K``) or adapted to a cost budget.

The per-layer statistics of a sampled step cost a few kernels per layer; the sentinel costs a
handful per step. With ``every=None`` the sampler measures both (host time spent in watch's
own hooks; on a GPU that is the launch cost, which is what small models are bound by) and
the step itself, and picks the smallest k whose estimated overhead,
``(always_on + sampled / k) / plain_step``, stays within the budget. The first
``warmup`` steps are always sampled (the start of a run is where initialisation problems
show). The estimates are means over the last steps (``WINDOW``) and the last sampled
steps (``SAMPLED_WINDOW``) without the largest value: one step that a busy machine
interrupted inside a hook is left out, where it would otherwise stop sampling for a
thousand steps; a mean, not a median, because a loaded machine slows the short hooks and
the long step alike only on average (a median of hook times misses the interruptions that
a median of step times includes, and would let watch exceed its budget). k is
reviewed at each sampled step and, between samples, every ``REVIEW`` steps, so a period
chosen on a poor early estimate does not outlive it. A change of k moves the next sample to
k steps after the last one (or to the next step, when that is already past), never closer:
a noisy cost estimate that flips k back and forth must not turn into a sample at every
flip. The first sampled step allocates watch's buffers, so its cost does not enter the
estimate. Only which steps are sampled depends on machine speed, never what a verdict
means: the sentinel runs at every step whatever k is, and a check on sampled steps states
its rule in sampled steps.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

# Host seconds are noisy: k shrinks only when the new value is smaller by more than this
# factor (measured on a loaded machine, 1.25 let k wander between 4 and 13 every few samples).
_HYSTERESIS = 2.0
# The estimates are means over this many of the last steps, and of the last sampled steps.
WINDOW = 16
SAMPLED_WINDOW = 8
# Between two samples, k is reviewed every this many steps.
REVIEW = 16


def _estimate(values: deque[float]) -> float:
    """The mean of ``values`` without the largest one (with at least four values)."""
    n = len(values)
    if n == 0:
        return math.nan
    if n < 4:
        return sum(values) / n
    return (sum(values) - max(values)) / (n - 1)


@dataclass
class Sampler:
    """Decides whether a step is sampled and accounts for watch's own cost."""

    every: int | None = None
    budget: float = 0.02
    warmup: int = 3
    max_period: int = 1000
    period: int = 1
    periods: list[tuple[int, int]] = field(default_factory=list)  # (from step, k)
    _next: int = 0  # the next sampled step once the warm-up is over
    _last: int = 0  # the last sampled step
    _costed: int = 0  # sampled steps seen (the first one's cost is not representative)
    _steps: int = 0  # steps accounted
    # seconds per step spent in always-on hooks, the step without watch's own time, and the
    # extra seconds of a sampled step: the last values, the estimates' windows
    _always: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    _plain: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))
    _sampled: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLED_WINDOW))
    # Sampling time spent on steps that were not sampled (a sample read a step late, as on a
    # GPU): it belongs to the sample before, and joins the next sampled step's cost.
    _carry: float = 0.0
    counted: int = 0  # steps whose times are in the totals
    total_own: float = 0.0
    total_always: float = 0.0
    total_wall: float = 0.0

    def __post_init__(self) -> None:
        if self.every is not None:
            if self.every < 1:
                raise ValueError(f"every must be a positive number of steps, got {self.every}")
            self.period = self.every
        self.periods.append((0, self.period))

    def sampled(self, step: int) -> bool:
        """Whether ``step`` (0-based) is a sampled step."""
        if self.every is not None:
            return step % self.every == 0
        if step < self.warmup:
            return True
        return step >= self._next

    def note_step(
        self, step: int, wall: float, always: float, sampled_cost: float, sampled: bool
    ) -> None:
        """Account one finished step: its wall time and watch's own time in it; adapt k.

        The first step is not counted: its wall time runs from the moment watch attached,
        so it holds whatever the script did before its loop and first-call costs."""
        self._steps += 1
        if self._steps > 1 and math.isfinite(wall) and wall > 0:
            own = always + sampled_cost
            self.counted += 1
            self.total_own += own
            self.total_always += always
            self.total_wall += wall
            self._always.append(always)
            self._plain.append(max(wall - own, 1e-9))
        adapting = self.every is None and step + 1 >= self.warmup
        if sampled:
            self._costed += 1
            if self._costed > 1:
                self._sampled.append(sampled_cost + self._carry)
            self._carry = 0.0
            self._last = step
            if adapting:
                self._adapt(step + 1)
            self._next = step + self.period
        else:
            self._carry += sampled_cost
            if adapting and (step - self._last) % REVIEW == 0:
                self._adapt(step + 1)
                self._next = max(self._last + self.period, step + 1)

    def _adapt(self, next_step: int) -> None:
        sampled = _estimate(self._sampled)
        room = self.budget * _estimate(self._plain) - _estimate(self._always)
        if not math.isfinite(room) or not math.isfinite(sampled):
            return
        want = self.max_period if room <= 0 else math.ceil(sampled / room)
        want = max(1, min(self.max_period, want))
        # Over budget is the failure to avoid: k grows as soon as the estimate asks for it,
        # and shrinks only when the estimate has fallen well below (noise would make it
        # flap otherwise).
        if want > self.period or want * _HYSTERESIS < self.period:
            self.period = want
            self.periods.append((next_step, want))

    @property
    def always_on_share(self) -> float:
        """The always-on part of watch's time (the sentinel, every step) over the time the
        steps would have taken without watch: what no sampling period can lower."""
        plain = self.total_wall - self.total_own
        return self.total_always / plain if plain > 0 else math.nan

    @property
    def overhead(self) -> float:
        """Watch's own time over the time the steps would have taken without it."""
        plain = self.total_wall - self.total_own
        return self.total_own / plain if plain > 0 else math.nan
