"""Progressive growing in the training loop (``train.growing``): the phase of every step from the samples
seen so far (``ndgan.nets.growing.schedule``), set on G, G_ema and D before the step, the reals made for that
phase, and the batch of its level (``train.growing_batch``). The phase is a function of ``nimg`` alone, and
the networks' buffers hold it, so a checkpoint written mid-fade resumes exactly."""

from __future__ import annotations

from .. import ops
from ..nets.growing import fade_reals, schedule
from .config import growing_levels


class Growing:
    """The growing plan of ``cfg`` for the networks of ``state`` (a ``TrainingState``)."""

    def __init__(self, cfg, state):
        t = cfg.train
        self.t, self.levels = t, growing_levels(cfg)
        self.nets = [state.G.synthesis.growth, state.G_ema.synthesis.growth, state.D.growth]
        self.filter = ops.setup_filter(state.G.init_kwargs["resample_filter"], device=state.device)
        self.padding_mode = "circular" if cfg.data.periodic else "zeros"
        self.level, self.alpha = self.levels - 1, 1.0

    def phase(self, nimg: int) -> tuple[int, float]:
        return schedule(nimg, self.levels, self.t.fade_kimg, self.t.stable_kimg)

    def batch(self, nimg: int) -> int:
        """The global batch of the level at ``nimg``."""
        level = self.phase(nimg)[0]
        return self.t.batch if self.t.growing_batch is None else self.t.growing_batch[level]

    def update(self, nimg: int) -> None:
        """Set every network to the phase at ``nimg``."""
        self.level, self.alpha = self.phase(nimg)
        for growth in self.nets:
            growth.set(self.level, self.alpha)

    def reals(self, x):
        """The reals of the current phase, at the full shape."""
        return fade_reals(x, self.level, self.alpha, self.levels, self.filter, self.padding_mode)

    def stats(self) -> dict:
        return {"growing/level": self.level, "growing/alpha": self.alpha}
