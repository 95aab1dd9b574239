"""One StyleGAN2 training step (Karras et al. 2020; StyleGAN2-ADA's loss), phase by phase:

1. D main: the logistic loss on augmented reals and fakes (or WGAN-GP), G's output a constant;
2. R1, lazily: gamma/2 * |grad D(real)|^2 every ``r1_interval`` steps, scaled by the interval, taken at the
   un-augmented reals through the augmentation (as in ADA);
3. G main: the non-saturating loss through a frozen D;
4. path length, lazily: (|J_w^T y| - a)^2 on a smaller batch every ``pl_interval`` steps;

then the counters, ADA's p and the EMA of G. The main passes run under autocast (``train.precision``); R1
and path length in full precision. Every optimiser step averages gradients over the ranks.

``train.batch_gpu`` splits each process's batch into micro-batches whose gradients are summed (each loss
weighted by its share of the batch) before one optimiser step, as StyleGAN2-ADA's ``--batch-gpu``: the
minibatch-stddev groups stay inside a micro-batch, and path length runs on each micro-batch's share (its
running mean updated after each, as StyleGAN2-ADA's rounds do). ``train.freeze_d`` keeps D's first blocks
(from the input) as they are: they get no gradient and no optimiser step.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from .. import losses
from ..augment import augment, default_ops
from . import distributed
from .config import auto_precision


def lazy_adam(params, lr, betas, interval):
    """Adam with StyleGAN2's correction for lazy regularisation every ``interval`` steps (0: none)."""
    ratio = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=tuple(b**ratio for b in betas), eps=1e-8)


def set_lazy_hparams(opt, lr, betas, interval):
    """Put the config's lr and betas (with the lazy-regularisation correction) into ``opt`` (after a resume
    restored the checkpoint's)."""
    ratio = interval / (interval + 1) if interval else 1.0
    for group in opt.param_groups:
        group["lr"], group["betas"] = lr * ratio, tuple(b**ratio for b in betas)


def optimizer_step(opt, loss, params, world, scaler):
    """Backward (scaled for float16), average gradients over ranks, step."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    finish_step(opt, params, world, scaler)


def finish_step(opt, params, world, scaler):
    """After the backward passes of every micro-batch: average gradients over ranks, unscale, step.

    The average comes before unscaling, so every rank sees the same inf/nan check and skips the same steps.
    """
    distributed.average_gradients(params, world)
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()


def mixed_ws(G, z, c, prob):
    """Map z; with probability ``prob`` the ws from a random crossover on come from a second latent.

    Decided on the device (no host synchronisation): the second mapping is always computed, then selected.
    """
    ws = G.mapping(z, c)
    if prob <= 0 or G.num_ws < 2:
        return ws
    other = G.mapping(torch.randn_like(z), c, update_w_avg=False)
    cutoff = torch.randint(1, G.num_ws, [], device=z.device)
    cutoff = torch.where(torch.rand([], device=z.device) < prob, cutoff, torch.full_like(cutoff, G.num_ws))
    take_other = torch.arange(G.num_ws, device=z.device) >= cutoff  # [num_ws]
    return torch.where(take_other[None, :, None], other, ws)


class TrainingStep:
    """``step(reals, c)`` runs the four phases on a ``TrainingState`` and advances its counters, ADA and EMA;
    the losses are summed for the log (``averages()``)."""

    def __init__(self, state, cfg, world: int, device):
        t, self.s, self.t, self.world, self.device = cfg.train, state, cfg.train, world, device
        precision = auto_precision(device) if t.precision == "auto" else t.precision
        low = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision)
        self.autocast = (lambda: torch.autocast(device.type, dtype=low)) if low is not None else nullcontext
        self.unscaled = torch.amp.GradScaler(device.type, enabled=False)  # R1 and path length: plain steps
        aug = cfg.augment
        ops = aug.ops if aug.ops is not None else default_ops(cfg.data.shape, cfg.data.periodic)
        self.augment_kwargs = dict(ops=ops, periodic=cfg.data.periodic, flip_axes=aug.flip_axes)
        self.ada_interval = aug.interval
        if t.freeze_d > len(state.D.blocks):
            raise ValueError(f"train.freeze_d: {t.freeze_d}, but D has {len(state.D.blocks)} blocks before its "
                             f"epilogue; use 0 to {len(state.D.blocks)}")
        self.frozen = [p for block in state.D.blocks[:t.freeze_d] for p in block.parameters()]
        frozen = {id(p) for p in self.frozen}
        self.g_params = list(state.G.parameters())
        self.d_params = [p for p in state.D.parameters() if id(p) not in frozen]
        # Compiled with static shapes (every batch has the same shape); R1 and path length stay uncompiled:
        # compiled graphs do not support double backward.
        self.synthesis = torch.compile(state.G.synthesis, dynamic=False) if t.compile else state.G.synthesis
        self.D_main = torch.compile(state.D, dynamic=False) if t.compile else state.D
        self.set_batch(t.batch)
        self.reset()

    def set_batch(self, batch: int) -> None:
        """The global batch of the coming steps (``train.growing_batch`` changes it per level)."""
        self.batch, self.per_rank = batch, batch // self.world
        self.micro = self.t.batch_gpu or self.per_rank
        self.s.ada.set_batch(batch)

    def _chunks(self, *tensors):
        """(weight, chunks...) per micro-batch: the weight is its share of the batch (None passes through)."""
        n = next(x.shape[0] for x in tensors if x is not None)
        for i in range(0, n, self.micro):
            yield (min(self.micro, n - i) / n, *[None if x is None else x[i: i + self.micro] for x in tensors])

    def reset(self) -> None:
        self.sums, self.counts = {}, {}

    def averages(self) -> dict:
        """The logged losses: averages over the steps where each term ran."""
        return {k: float(v) / self.counts[k] for k, v in self.sums.items()}

    def _accumulate(self, name, value):
        self.sums[name] = self.sums.get(name, 0) + value.detach().float()
        self.counts[name] = self.counts.get(name, 0) + 1

    def run_D(self, net, x, c):
        """D of ``x``, through the augmentation when ADA is active (everything D sees, with probability p)."""
        ada = self.s.ada
        return net(augment(x, ada.p, **self.augment_kwargs) if ada.active else x, c)

    def __call__(self, reals, c) -> None:
        s, lazy = self.s, self.t.lazy_reg
        self.d_main(reals, c, with_r1=not lazy and bool(s.r1_interval))
        if lazy and s.r1_interval and s.step % s.r1_interval == 0:
            self.r1(reals, c)
        self.g_main(c, with_pl=not lazy and bool(s.pl_interval))
        if lazy and s.pl_interval and s.step % s.pl_interval == 0:
            self.path_length(c)
        s.step, s.nimg = s.step + 1, s.nimg + self.batch
        if s.step % self.ada_interval == 0:  # ADA: move p by the sign of E[sign(D(real))] - target, over ranks
            s.ada.step(distributed.all_reduce_sum)
        self.ema()

    def d_main(self, reals, c, with_r1=False):
        s, t = self.s, self.t
        z = torch.randn(self.per_rank, s.G.z_dim, device=self.device)
        s.D.requires_grad_(True)
        for p in self.frozen:
            p.requires_grad_(False)
        s.D_opt.zero_grad(set_to_none=True)
        total = 0
        for weight, x, cc, zc in self._chunks(reals, c, z):
            with torch.no_grad(), self.autocast():
                fakes = self.synthesis(mixed_ws(s.G, zc, cc, t.style_mixing))
            with self.autocast():
                real_logits, fake_logits = self.run_D(self.D_main, x, cc), self.run_D(self.D_main, fakes, cc)
                if t.loss == "nonsaturating":
                    d_loss = losses.d_logistic(real_logits, fake_logits)
                else:
                    d_loss = losses.wgan_d(real_logits, fake_logits)
            s.ada.observe(real_logits)
            if t.loss == "wgan-gp":
                d_loss = d_loss + t.gp_weight * losses.gradient_penalty(lambda x, c: self.run_D(s.D, x, c), x, fakes,
                                                                         cc).mean()
            s.scalers["D"].scale(d_loss * weight).backward()
            total = total + d_loss.detach() * weight
        if with_r1:  # StyleGAN's regularisation: R1 in the same optimiser step (its gradients scaled alike)
            self._r1_backward(reals, c, s.scalers["D"])
        finish_step(s.D_opt, self.d_params, self.world, s.scalers["D"])
        self._accumulate("loss/D", total)

    def r1(self, reals, c):
        s = self.s
        s.D_opt.zero_grad(set_to_none=True)
        self._r1_backward(reals, c, self.unscaled)
        finish_step(s.D_opt, self.d_params, self.world, self.unscaled)

    def _r1_backward(self, reals, c, scaler):
        s, total = self.s, 0
        for weight, x, cc in self._chunks(reals, c):
            reals_r1 = x.detach().requires_grad_(True)
            r1 = losses.r1_penalty(self.run_D(s.D, reals_r1, cc), reals_r1)
            scaler.scale(r1.mean() * (self.t.r1_gamma / 2) * s.r1_interval * weight).backward()
            total = total + r1.detach().mean() * weight
        self._accumulate("loss/R1", total)

    def g_main(self, c, with_pl=False):
        s, t = self.s, self.t
        s.D.requires_grad_(False)
        z = torch.randn(self.per_rank, s.G.z_dim, device=self.device)
        s.G_opt.zero_grad(set_to_none=True)
        total = 0
        for weight, zc, cc in self._chunks(z, c):
            with self.autocast():
                fakes = self.synthesis(mixed_ws(s.G, zc, cc, t.style_mixing))
                fake_logits = self.run_D(self.D_main, fakes, cc)
                g_loss = losses.g_nonsaturating(fake_logits) if t.loss == "nonsaturating" else losses.wgan_g(fake_logits)
            s.scalers["G"].scale(g_loss * weight).backward()
            total = total + g_loss.detach() * weight
        if with_pl:  # path length without laziness: in the same optimiser step
            self._pl_backward(c, s.scalers["G"])
        finish_step(s.G_opt, self.g_params, self.world, s.scalers["G"])
        self._accumulate("loss/G", total)

    def path_length(self, c):
        s = self.s
        s.G_opt.zero_grad(set_to_none=True)
        self._pl_backward(c, self.unscaled)
        finish_step(s.G_opt, self.g_params, self.world, self.unscaled)

    def _pl_backward(self, c, scaler):
        s, t = self.s, self.t
        total, rounds = 0, self.per_rank // self.micro
        for i in range(rounds):  # each micro-batch's share of the shrunken batch
            n_pl = max(self.micro // t.pl_batch_shrink, 1)
            cc = None if c is None else c[i * self.micro: i * self.micro + n_pl]
            ws = mixed_ws(s.G, torch.randn(n_pl, s.G.z_dim, device=self.device), cc, t.style_mixing)
            images = s.G.synthesis(ws)
            lengths = losses.path_lengths(images, ws, losses.path_length_noise(images))
            penalty, pl_mean = losses.path_length_penalty(lengths, s.pl_mean, t.pl_decay)
            s.pl_mean = pl_mean.detach()
            scaler.scale(penalty.mean() * t.pl_weight * s.pl_interval / rounds).backward()
            total = total + penalty.detach().mean() / rounds
        self._accumulate("loss/PL", total)

    def ema(self):
        """G_ema follows G with a half-life of ``ema_kimg`` (ramped up over the first images)."""
        s, t = self.s, self.t
        ema_nimg = t.ema_kimg * 1000
        if t.ema_rampup is not None:
            ema_nimg = min(ema_nimg, s.nimg * t.ema_rampup)
        beta = 0.5 ** (self.batch / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for p_ema, p in zip(s.G_ema.parameters(), s.G.parameters()):
                p_ema.copy_(p.lerp(p_ema, beta))
            for b_ema, b in zip(s.G_ema.buffers(), s.G.buffers()):
                b_ema.copy_(b)

    def all_finite(self) -> bool:
        """Whether the summed losses and all parameters are finite, on every rank (one host sync)."""
        values = [v.reshape(1).float() for v in self.sums.values()]
        values += [torch.stack([p.detach().float().abs().sum() for p in group]).sum().reshape(1)
                   for group in (self.g_params, self.d_params)]
        flag = torch.cat(values).isfinite().all().float().reshape(1)
        if self.world > 1:
            distributed.all_reduce_min(flag)
        return bool(flag.item())
