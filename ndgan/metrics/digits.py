"""A small classifier of the scikit-learn digits: the offline feature network for ``fid`` and ``classes`` on
``configs/digits2d.yaml`` (the FID Inception knows nothing of 32x32 grey digits and cannot be downloaded here).

Network: 3x3 convolutions with equalised learning rate and leaky ReLU, 32 -> 64 -> 128 -> 128 channels, each
after the first down-sampling by 2 (FIR blur, then stride, as in the discriminator), a 128-d feature layer
(the features of the Fréchet distance, like Inception's pool layer) and 10 logits. Trained on a seeded 80% of
the 1,797 scans with random shifts of up to 2 pixels; the other 20% are held out and give the accuracy that is
stored in the file's metadata.

    python -m ndgan.metrics.digits --out pretrained/digits-classifier.safetensors [--epochs 60] [--seed 0]
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..layers import EqualConv, EqualLinear

NUM_CLASSES = 10


class DigitClassifier(nn.Module):
    """``[N, channels, *S]`` in [-1, 1] -> features ``[N, num_features]``; ``classify(features)`` -> logits."""

    def __init__(self, spatial_dims=2, shape=(32, 32), channels=1, widths=(32, 64, 128, 128), num_features=128,
                 num_classes=NUM_CLASSES):
        super().__init__()
        shape = tuple(shape)
        down = 2 ** (len(widths) - 1)
        if len(shape) != spatial_dims or any(s % down for s in shape):
            raise ValueError(f"shape: expected {spatial_dims} sizes divisible by {down}, got {list(shape)}")
        self.spatial_dims, self.shape, self.channels = spatial_dims, shape, channels
        self.convs = nn.ModuleList([EqualConv(spatial_dims, channels, widths[0], 3, activation="lrelu")])
        for a, b in zip(widths[:-1], widths[1:]):
            self.convs.append(EqualConv(spatial_dims, a, b, 3, activation="lrelu", down=2))
        self.features = EqualLinear(widths[-1] * math.prod(s // down for s in shape), num_features,
                                    activation="lrelu")
        self.logits = EqualLinear(num_features, num_classes)
        self.num_features, self.num_classes = num_features, num_classes
        self.name = "digit classifier"

    def forward(self, x):
        if x.ndim != self.spatial_dims + 2 or tuple(x.shape[1:]) != (self.channels, *self.shape):
            raise ValueError(f"{self.name}: expected [N, {self.channels}, {', '.join(map(str, self.shape))}], got "
                             f"{tuple(x.shape)}")
        for conv in self.convs:
            x = conv(x)
        return self.features(x.flatten(1))

    def classify(self, features):
        return self.logits(features)

    @classmethod
    def from_state_dict(cls, state: dict, where) -> "DigitClassifier":
        """Rebuild the architecture from the tensors' shapes, then load them."""
        try:
            convs = sorted({int(k.split(".")[1]) for k in state if k.startswith("convs.")})
            weights = [state[f"convs.{i}.weight"] for i in convs]
            spatial_dims = weights[0].ndim - 2
            widths = tuple(w.shape[0] for w in weights)
            in_features, num_features = state["features.weight"].shape[1], state["features.weight"].shape[0]
            side = round((in_features / widths[-1]) ** (1 / spatial_dims)) * 2 ** (len(widths) - 1)
            net = cls(spatial_dims, (side,) * spatial_dims, weights[0].shape[1], widths, num_features,
                      state["logits.weight"].shape[0])
            net.load_state_dict(state)
        except (KeyError, IndexError, RuntimeError, ValueError) as e:
            raise ValueError(f"{where}: not a digit classifier state dict ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:120]})") from None
        return net


def is_classifier_state(state: dict) -> bool:
    return "logits.weight" in state and "features.weight" in state and "convs.0.weight" in state


def split(n: int, holdout: float, seed: int):
    """Seeded ``(train, test)`` index tensors of ``n`` samples."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = n - int(round(n * holdout))
    return order[:cut], order[cut:]


def _shift(x, max_shift, gen):
    """Random integer shifts of up to ``max_shift`` pixels per axis, zero (background, -1) filled."""
    pads = [max_shift] * (2 * (x.ndim - 2))
    padded = nn.functional.pad(x, pads, value=-1.0)
    out = torch.empty_like(x)
    for i in range(len(x)):
        offs = torch.randint(0, 2 * max_shift + 1, (x.ndim - 2,), generator=gen).tolist()
        index = (i, slice(None), *[slice(o, o + s) for o, s in zip(offs, x.shape[2:])])
        out[i] = padded[index]
    return out


def accuracy(net, x, y, batch=256) -> float:
    with torch.no_grad():
        pred = torch.cat([net.classify(net(x[i: i + batch])).argmax(1) for i in range(0, len(x), batch)])
    return float((pred == y).float().mean())


def train_classifier(size=32, epochs=60, holdout=0.2, seed=0, batch=64, log=print):
    """Train on the seeded split of the digits; returns ``(net, held-out accuracy, split indices)``."""
    from ..data.digits import load_digits_array, resize_digits

    images, labels = load_digits_array()
    x = resize_digits(images, size)
    train_idx, test_idx = split(len(x), holdout, seed)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    net = DigitClassifier(2, (size, size))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    for epoch in range(epochs):
        net.train()
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for i in range(0, len(order), batch):
            j = order[i: i + batch]
            xb = _shift(x[j], max(size // 16, 1), gen)
            loss = nn.functional.cross_entropy(net.classify(net(xb)), labels[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if (epoch + 1) % 10 == 0:
            log(f"epoch {epoch + 1}: loss {float(loss.detach()):.4f}, held-out accuracy "
                f"{accuracy(net.eval(), x[test_idx], labels[test_idx]):.4f}")
    net.eval().requires_grad_(False)
    return net, accuracy(net, x[test_idx], labels[test_idx]), (train_idx, test_idx)


if __name__ == "__main__":  # python -m ndgan.metrics.digits: the command lives in ndgan/cli/digits.py
    import sys

    from ..cli.digits import main

    sys.exit(main())
