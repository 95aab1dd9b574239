"""Evaluate a generator against its training data: the metrics by name, streamed in batches.

An ``Evaluator`` is built once per dataset and settings (it validates names and loads feature networks up front,
so a missing weights file is an error before any work); its real side (features, histograms, per-grid
properties, pooled samples) is computed on first use and kept, so training can evaluate many snapshots for the
price of one pass over the data. Distribution distances come with a real-vs-real baseline: the real samples
split in halves (even and odd draws) and compared with each other, so a value can be read as good or bad;
memorisation's baseline is the real samples' (held-out reals') distances to the training data.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from ..ops import nd as ndops
from ..data.units import physical_scales
from . import distances, memorization, physics
from .features import SliceFeatures, inception_features, load_features
from .inception import ENV_VAR as INCEPTION_ENV_VAR
from .msssim import pairwise_ms_ssim, settings as msssim_settings
from .ppl import path_length
from .settings import MetricSettings, check_names, check_settings

_FEATURE_METRICS = ("fid", "kid", "pr")
_HIST_BINS = 2000
_MIN_SAMPLES = 4  # per side: every baseline compares two halves of at least 2, pr needs more than k = 3
_LABEL_POOL = 2000  # labels drawn (seeded) from the dataset for a conditional generator
_SAME = 1e-6  # memorization: nearest distances up to this (RMS, data units) are the same sample


def _pool(x, size):
    """Average-pool ``[N, C, *S]`` by the smallest integer factor per axis that brings it to <= size."""
    factors = [-(-s // size) for s in x.shape[2:]]
    if all(f == 1 for f in factors):
        return x
    # Box filter by stride = factor along every axis: a strided conv with a normalised ones kernel per channel.
    c = x.shape[1]
    kernel = torch.ones(c, 1, *factors, dtype=x.dtype, device=x.device) / float(torch.tensor(factors).prod())
    return ndops.conv(x, kernel, stride=factors, groups=c)


def _sample(item):
    return item[0] if isinstance(item, (list, tuple)) else item


class Evaluator:
    """Metrics ``names`` for samples like those of ``dataset`` ([C, *S] items in [-1, 1], optionally with labels).

    ``metadata``: the dataset's (value_range and units turn values into physical units; the energy metrics need
    units 'K'). ``features``: an ``nn.Module`` ``[N, C, *S] -> [N, F]`` to use instead of ``settings.features``.
    ``train_dataset``: the training data, for memorization, whose baseline is ``dataset``: held-out reals, never
    the training data itself. ``evaluate(G)`` returns ``(results, info)``: flat name -> float, and per metric
    what it used; after an evaluation with memorization ``closest_pairs`` holds ``(generated [K, C, *S], their
    nearest training samples [K, C, *S], distances [K])``, closest first. Generated samples are clamped to
    [-1, 1] (the range of the real data) and, for 8-bit image data, rounded to its 256 levels before they reach
    a feature network, as generated images saved to PNG would be.
    """

    def __init__(self, names, dataset, settings: MetricSettings = MetricSettings(), device="cpu", metadata=None,
                 features=None, train_dataset=None):
        self.names, self.dataset, self.device = check_names(names), dataset, torch.device(device)
        self.train_dataset = train_dataset
        self.s = s = check_settings(settings)
        self.features_override = features
        first = dataset[0]
        sample = first[0] if isinstance(first, (list, tuple)) else first
        self.channels, self.shape, self.nd = sample.shape[0], tuple(sample.shape[1:]), sample.ndim - 1
        self.has_labels = isinstance(first, (list, tuple))
        self.metadata = dict(metadata if metadata is not None else getattr(dataset, "metadata", {}) or {})
        self.num_real = min(s.num_real or s.num_gen, len(dataset))
        if self.num_real < _MIN_SAMPLES:
            raise ValueError(f"metrics: {self.num_real} real sample(s) (the dataset has {len(dataset)}); at least "
                             f"{_MIN_SAMPLES} are needed")
        if any(n in self.names for n in ("fid", "kid", "fid_slices")):
            distances.require_torchmetrics()  # an ImportError now, not at the first snapshot
        self.feature_net = self.slice_net = self.lpips = None
        if any(n in self.names for n in _FEATURE_METRICS) or ("ppl" in self.names and not s.lpips) \
                or "classes" in self.names:
            self.feature_net = self._primary_features()
        elif "memorization" in self.names and self._features_given():
            self.feature_net = self._primary_features()  # its second space, where a feature network is given
        expects = getattr(self.feature_net, "shape", None)
        if expects is not None and tuple(expects) != self.shape:
            raise ValueError(f"metrics.features: {self.feature_net.name} takes samples of {list(expects)}, the data "
                             f"has {list(self.shape)}")
        if "classes" in self.names and not hasattr(self.feature_net, "classify"):
            raise ValueError(f"classes: needs a classifier as metrics.features (--features), e.g. "
                             f"pretrained/digits-classifier.safetensors; {self.feature_net.name} has no class head")
        if "fid_slices" in self.names:
            if self.nd != 3:
                raise ValueError(f"fid_slices: needs volumes (3 spatial axes), the data has {self.nd}")
            self.slice_net = SliceFeatures(inception_features(s.inception, self.channels, self.device), s.slices)
            # Streamed statistics per axis: all reals vs the fakes, and even vs odd reals (the baseline).
            self.slice_fid = [distances.frechet_tracker(self.slice_net.num_features) for _ in range(3)]
            self.slice_base = [distances.frechet_tracker(self.slice_net.num_features) for _ in range(3)]
        if "ppl" in self.names and s.lpips:
            if self.nd != 2:
                raise ValueError(f"metrics.lpips: LPIPS is for 2D images, the data has {self.nd} spatial axes")
            from .lpips import load_lpips

            self.lpips = load_lpips(list(s.lpips), self.device)
        if "energy" in self.names and (self.metadata.get("units") != "K" or "value_range" not in self.metadata):
            raise ValueError("energy: needs energy grids in kelvin (dataset metadata units 'K' with a value_range, "
                             "as python -m ndgan.data.energy writes them)")
        if "memorization" in self.names:
            self._check_training_data()
        self.eight_bit = self.metadata.get("units") == "8-bit intensity"
        self.labels = self._labels() if self.has_labels else None
        self.real = self.train = self.closest_pairs = None

    def _primary_features(self):
        s = self.s
        if self.features_override is not None:
            return load_features(self.features_override, self.channels, self.nd, self.device)
        if s.features_program is not None:
            return load_features(s.features_program, self.channels, self.nd, self.device, program=True)
        if s.features is not None:
            return load_features(s.features, self.channels, self.nd, self.device)
        if self.nd == 2:
            return inception_features(s.inception, self.channels, self.device)
        raise ValueError(f"fid/kid/pr/ppl on data with {self.nd} spatial axes need a feature network: set "
                         f"metrics.features (--features) to a MedicalNet-style ResNet state dict or "
                         f"metrics.features_program (--features-program) to a torch.export or TorchScript program, "
                         f"or use fid_slices / mmd / msssim / hist")

    def _features_given(self) -> bool:
        """Whether a feature network is configured for this data (memorization does without one)."""
        s = self.s
        return (self.features_override is not None or s.features_program is not None or s.features is not None
                or (self.nd == 2 and bool(s.inception or os.environ.get(INCEPTION_ENV_VAR))))

    def _check_training_data(self):
        train, where = self.train_dataset, "memorization"
        if train is None:
            raise ValueError(f"{where}: needs the training data to compare with (Evaluator(..., train_dataset=...))")
        if train is self.dataset:
            raise ValueError(f"{where}: the real samples are the training data; its baseline needs held-out reals "
                             f"distinct from them: set metrics.real_path or metrics.real_options (--held-out PATH)")
        first = _sample(train[0])
        if (first.shape[0], *first.shape[1:]) != (self.channels, *self.shape):
            raise ValueError(f"{where}: training samples of {list(first.shape)}, the real samples are "
                             f"{[self.channels, *self.shape]}")

    def _labels(self):
        """Conditions for generated samples: labels of up to 2000 dataset items drawn at random (seeded)."""
        gen = torch.Generator().manual_seed(self.s.seed + 4)
        picks = torch.randperm(len(self.dataset), generator=gen)[:_LABEL_POOL].tolist()
        return torch.stack([torch.as_tensor(self.dataset[i][1]) for i in picks]).float()

    def _pixels(self, x):
        """What a feature network sees: 8-bit data rounded to its 256 levels."""
        return ((x + 1) * 127.5).round() / 127.5 - 1 if self.eight_bit else x

    # One pass over a stream of samples, filling every metric's accumulator.
    def _accumulate(self, batches, real: bool):
        acc = {"features": [], "props": [], "pooled": [], "msssim": [], "probs": [], "nearest": [],
               "nearest_features": [], "closest": None,
               "hist": torch.zeros(2, self.channels, _HIST_BINS, dtype=torch.float64)}  # even / odd draws
        kept = seen = 0
        for x in batches:
            x = x.to(self.device).float().clamp(-1, 1)
            features = None
            if self.feature_net is not None or self.slice_net is not None:
                pixels = self._pixels(x)
            if self.feature_net is not None and any(n in self.names for n in (*_FEATURE_METRICS, "classes",
                                                                                "memorization")):
                features = self.feature_net(pixels).float()
                acc["features"].append(features.cpu())
                if "classes" in self.names:
                    acc["probs"].append(self.feature_net.classify(features).softmax(1).double().cpu())
            if self.slice_net is not None:
                self._update_slices(self.slice_net(pixels).double().cpu(), real, seen)
            if "hist" in self.names:
                for half in (0, 1):
                    part = x[(half - seen) % 2::2].transpose(0, 1).reshape(self.channels, -1)
                    for c in range(self.channels):
                        acc["hist"][half, c] += torch.histc(part[c], _HIST_BINS, -1, 1).double().cpu()
            if "energy" in self.names:
                kelvin = physics.to_kelvin(x, self.metadata["value_range"])
                props = physics.grid_properties(kelvin, self.s.temperature)
                acc["props"].append({k: v.cpu() for k, v in props.items()})
            if "mmd" in self.names and kept < self.s.mmd_samples:
                part = _pool(x, self.s.mmd_size)[: self.s.mmd_samples - kept]
                acc["pooled"].append(part.cpu())
                kept += len(part)
            if "msssim" in self.names and len(x) >= 2:
                acc["msssim"].append(pairwise_ms_ssim(x).cpu())
            if "memorization" in self.names:
                self._update_nearest(acc, x, features, real)
            seen += len(x)
        return acc

    def _update_nearest(self, acc, x, features, real):
        """Each sample's distance to its nearest training sample (pooled, and in feature space); for generated
        samples also the closest few so far, for the figure."""
        d, index = memorization.nearest(_pool(x, self.s.memorization_size).flatten(1), self.train["pooled"])
        acc["nearest"].append(d.cpu())
        if features is not None:
            acc["nearest_features"].append(memorization.nearest(features, self.train["features"])[0].cpu())
        if not real:
            top = d.argsort()[: self.s.memorization_pairs]  # only these can join the closest so far
            acc["closest"] = memorization.keep_closest(acc["closest"], x[top].cpu(), d[top].cpu(), index[top].cpu(),
                                                       self.s.memorization_pairs)

    def _training_side(self):
        """Pooled samples (and features) of the training data, or of a seeded ``memorization_train`` of them."""
        n, s = len(self.train_dataset), self.s
        order = list(range(n))
        if s.memorization_train is not None and s.memorization_train < n:
            gen = torch.Generator().manual_seed(s.seed + 5)
            order = torch.randperm(n, generator=gen)[: s.memorization_train].tolist()
        pooled, features = [], []
        for i in range(0, len(order), s.batch):
            x = torch.stack([_sample(self.train_dataset[j]) for j in order[i: i + s.batch]])
            x = x.to(self.device).float().clamp(-1, 1)
            pooled.append(_pool(x, s.memorization_size))
            if self.feature_net is not None:
                features.append(self.feature_net(self._pixels(x)).float())
        return {"order": order, "pooled": torch.cat(pooled).flatten(1), "pooled_shape": list(pooled[0].shape[2:]),
                "features": torch.cat(features) if features else None}

    def _update_slices(self, features, real, seen):
        """Per axis: reals feed the main tracker's real side and, by parity, the baseline's two sides."""
        for axis in range(3):
            f = features[:, axis]  # [n, K, F]
            if real:
                self.slice_fid[axis].update(f.flatten(0, 1), real=True)
                for half in (0, 1):
                    part = f[(half - seen) % 2::2].flatten(0, 1)
                    if len(part):
                        self.slice_base[axis].update(part, real=half == 0)
            else:
                self.slice_fid[axis].update(f.flatten(0, 1), real=False)

    def _real_batches(self):
        gen = torch.Generator().manual_seed(self.s.seed)
        order = torch.randperm(len(self.dataset), generator=gen)[: self.num_real].tolist()
        for i in range(0, len(order), self.s.batch):
            items = [self.dataset[j] for j in order[i: i + self.s.batch]]
            yield torch.stack([it[0] if isinstance(it, (list, tuple)) else it for it in items])

    @torch.no_grad()
    def prepare_real(self):
        """Compute (once) the real side of every metric; for memorization first the training side. Raises a
        ValueError if the held-out reals are so often copies of training samples that its threshold is 0."""
        if self.real is None:
            if "memorization" in self.names and self.train is None:
                self.train = self._training_side()
            real = self._accumulate(self._real_batches(), real=True)
            if "memorization" in self.names:
                held_out = torch.cat(real["nearest"])
                copies = int((held_out <= _SAME).sum())
                if float(torch.quantile(held_out.double(), memorization.PERCENTILE / 100)) <= _SAME:
                    raise ValueError(f"memorization: {copies} of the {len(held_out)} held-out reals are training "
                                     f"samples (distance 0), so no copy would stand out; held-out reals must be "
                                     f"distinct from the training data (metrics.real_path / metrics.real_options, "
                                     f"--held-out PATH)")
            self.real = real
        return self.real

    def _fake_batches(self, G):
        gen = torch.Generator().manual_seed(self.s.seed + 1)
        for i in range(0, self.s.num_gen, self.s.batch):
            b = min(self.s.batch, self.s.num_gen - i)
            z = torch.randn(b, G.z_dim, generator=gen).to(self.device)
            c = None
            if self.labels is not None:
                c = self.labels[torch.randint(len(self.labels), (b,), generator=gen)].to(self.device)
            yield G(z, c, truncation_psi=self.s.truncation_psi, noise_mode="random").float()

    @torch.no_grad()
    def evaluate(self, G):
        """Generate ``num_gen`` samples with ``G`` (in eval mode, seeded; the caller's RNG is left untouched)
        and compute every metric. Returns ``(results, info)``."""
        real = self.prepare_real()
        self.closest_pairs = None
        was_training = G.training
        G.eval()  # no w_avg updates
        try:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(self.s.seed + 2)  # the generator's noise inputs
                if self.slice_net is not None:
                    for tracker in self.slice_fid:
                        tracker.reset()  # drops the previous fakes, keeps the reals
                fake = self._accumulate(self._fake_batches(G), real=False)
                results, info = {}, {}
                for name in self.names:
                    out, note = getattr(self, f"_{name}")(G, real, fake)
                    results.update(out)
                    info[name] = note
        finally:
            G.train(was_training)
        return results, info

    @torch.no_grad()
    def evaluate_samples(self, samples, batch: int | None = None):
        """Every metric of a set of samples made elsewhere (``samples[i]``: ``[C, *S]`` in [-1, 1], e.g. an
        ``HDF5Dataset`` of a ``generate --format h5`` file): all of them are the generated side. Returns
        ``(results, info)``; ``ppl`` needs the generator itself and is refused."""
        if "ppl" in self.names:
            raise ValueError("--metrics ppl: perceptual path length walks the generator's latent space; it needs "
                             "a checkpoint, not a file of samples")
        n, batch = len(samples), batch or self.s.batch
        if n < 2:
            raise ValueError(f"--samples: {n} sample; the metrics need at least 2")
        real = self.prepare_real()
        self.closest_pairs = None
        self.s = dataclasses.replace(self.s, num_gen=n)  # what _counts and the notes report
        if self.slice_net is not None:
            for tracker in self.slice_fid:
                tracker.reset()

        def batches():
            for i in range(0, n, batch):
                yield torch.stack([_sample(samples[j]) for j in range(i, min(i + batch, n))])

        fake = self._accumulate(batches(), real=False)
        results, info = {}, {}
        for name in self.names:
            out, note = getattr(self, f"_{name}")(None, real, fake)
            results.update(out)
            info[name] = note
        return results, info

    # Each metric: (flat results, what it used).
    def _counts(self):
        return {"num_gen": self.s.num_gen, "num_real": self.num_real}

    def _fid(self, G, real, fake):
        r, f = torch.cat(real["features"]), torch.cat(fake["features"])
        return ({"fid": distances.frechet_distance(r, f),
                 "fid_baseline": distances.frechet_distance(r[0::2], r[1::2])},
                {"features": self.feature_net.name, **self._counts()})

    def _kid(self, G, real, fake):
        r, f = torch.cat(real["features"]), torch.cat(fake["features"])
        mean, std = distances.kid(r, f, self.s.kid_subsets, self.s.kid_subset_size, self.s.seed)
        base, _ = distances.kid(r[0::2], r[1::2], self.s.kid_subsets, self.s.kid_subset_size, self.s.seed)
        return ({"kid": mean, "kid_std": std, "kid_baseline": base},
                {"features": self.feature_net.name, "subset_size": min(self.s.kid_subset_size, len(r), len(f)),
                 "baseline_subset_size": min(self.s.kid_subset_size, len(r) // 2), **self._counts()})

    def _pr(self, G, real, fake):
        r, f = torch.cat(real["features"]), torch.cat(fake["features"])
        precision, recall = distances.precision_recall(r, f)
        return ({"precision": precision, "recall": recall},
                {"features": self.feature_net.name, "k": 3, **self._counts()})

    def _classes(self, G, real, fake):
        """Class histograms of the classifier's predictions: total variation distance to the reals' and the
        classes covered (predicted for at least half their real share), next to the real halves' values; mean
        confidence (top softmax probability) of generated and real samples."""
        r, f = torch.cat(real["probs"]), torch.cat(fake["probs"])

        def histogram(p):
            return torch.bincount(p.argmax(1), minlength=p.shape[1]).double() / len(p)

        def covered(h, ref):  # classes the reals have, drawn at least half as often
            return int(((ref > 0) & (h >= 0.5 * ref)).sum())

        hr, hf, h0, h1 = histogram(r), histogram(f), histogram(r[0::2]), histogram(r[1::2])
        tv = lambda a, b: float((a - b).abs().sum() / 2)  # noqa: E731
        out = {"classes_tv": tv(hf, hr), "classes_tv_baseline": tv(h1, h0),
               "classes_covered": covered(hf, hr), "classes_covered_baseline": covered(h1, h0),
               "classes_confidence": float(f.amax(1).mean()), "classes_confidence_real": float(r.amax(1).mean())}
        return out, {"classifier": self.feature_net.name, "classes": r.shape[1], **self._counts()}

    def _ppl(self, G, real, fake):
        if self.lpips is not None:
            lpips = self.lpips

            def grey(v):  # channels as grey RGB images
                return v.reshape(-1, 1, *v.shape[2:]).expand(-1, 3, -1, -1)

            def distance(a, b):
                if a.shape[1] == 3:
                    return lpips(a, b)
                return lpips(grey(a), grey(b)).reshape(len(a), -1).sum(1)  # summed over channels
            used = "LPIPS (VGG-16)"
        else:
            net = self.feature_net

            def distance(a, b):
                return (net(a).double() - net(b).double()).square().sum(1)
            used = f"squared L2 distance of {net.name} features (no LPIPS weights given)"
        value = path_length(G, distance, self.s.ppl_samples, batch=self.s.batch // 2, seed=self.s.seed + 3,
                            labels=self.labels)
        return {"ppl": value}, {"distance": used, "space": "w", "sampling": "end", "epsilon": 1e-4,
                                "num_pairs": self.s.ppl_samples}

    def _fid_slices(self, G, real, fake):
        out = {}
        for axis in range(3):  # every slice a sample; statistics streamed, never stored
            out[f"fid_slices_axis{axis}"] = float(self.slice_fid[axis].compute())
            out[f"fid_slices_axis{axis}_baseline"] = float(self.slice_base[axis].compute())
        out["fid_slices"] = sum(out[f"fid_slices_axis{a}"] for a in range(3)) / 3
        out["fid_slices_baseline"] = sum(out[f"fid_slices_axis{a}_baseline"] for a in range(3)) / 3
        return out, {"features": self.slice_net.name, "slices_per_axis": self.s.slices, **self._counts()}

    def _mmd(self, G, real, fake):
        r, f = torch.cat(real["pooled"]), torch.cat(fake["pooled"])
        h = distances.median_distance(r)  # one kernel for the value and its baseline, fixed by the reals
        return ({"mmd": distances.mmd(r, f, bandwidth=h),
                 "mmd_baseline": distances.mmd(r[0::2], r[1::2], bandwidth=h)},
                {"samples": [len(r), len(f)], "pooled_shape": list(r.shape[2:]), "bandwidth": h})

    def _msssim(self, G, real, fake):
        r, f = torch.cat(real["msssim"]), torch.cat(fake["msssim"])
        window, scales, _ = msssim_settings(self.shape)
        return ({"msssim": float(f.mean()), "msssim_real": float(r.mean())},
                {"pairs": [len(f), len(r)], "window": window, "scales": scales})

    def _hist(self, G, real, fake):
        r, f = real["hist"], fake["hist"]  # [2 (even, odd draws), C, bins]
        width = 2.0 / _HIST_BINS
        out = {}
        for c in range(self.channels):
            out[f"hist_w1_c{c}"] = distances.histogram_w1(r[:, c].sum(0), f[:, c].sum(0), width)
            out[f"hist_w1_c{c}_baseline"] = distances.histogram_w1(r[0, c], r[1, c], width)
        out["hist_w1"] = sum(out[f"hist_w1_c{c}"] for c in range(self.channels)) / self.channels
        out["hist_w1_baseline"] = sum(out[f"hist_w1_c{c}_baseline"] for c in range(self.channels)) / self.channels
        scales = self._physical_scales()
        if scales:
            for c, scale in enumerate(scales):
                out[f"hist_w1_c{c}_physical"] = out[f"hist_w1_c{c}"] * scale
        units = f"data [-1, 1]; *_physical in {self.metadata['units']}" if scales else "data [-1, 1]"
        return out, {"bins": _HIST_BINS, "units": units, **self._counts()}

    def _physical_scales(self):
        """Per channel, physical units per data unit, when one global linear map made the data (not for data
        normalised per subject, such as NIfTI percentiles)."""
        return physical_scales(self.metadata, self.channels)

    def _energy(self, G, real, fake):
        def gather(parts):
            return {k: torch.cat([p[k] for p in parts]) for k in physics.PROPERTIES}

        out = physics.compare(gather(fake["props"]), gather(real["props"]))
        return ({f"energy_{k}": v for k, v in out.items()},
                {"temperature_K": self.s.temperature, "per": "grid and channel", **self._counts()})

    def _memorization(self, G, real, fake):
        """Per space, the median nearest-training-sample distance of generated samples and of held-out reals
        (``_baseline``), the held-out 1st percentile and the share of generated samples below it; the larger
        share is ``memorization_fraction``, and ``memorization_flag`` says whether it exceeds 0.05."""
        spaces = {"voxel": (real["nearest"], fake["nearest"])}
        if self.feature_net is not None:
            spaces["features"] = (real["nearest_features"], fake["nearest_features"])
        out = {}
        for space, (held_out, generated) in spaces.items():
            values = memorization.summary(torch.cat(generated), torch.cat(held_out))
            out[f"memorization_nn_{space}"] = values["median"]
            out[f"memorization_nn_{space}_baseline"] = values["median_baseline"]
            out[f"memorization_threshold_{space}"] = values["threshold"]
            out[f"memorization_fraction_{space}"] = values["fraction"]
        out["memorization_fraction"] = max(out[f"memorization_fraction_{space}"] for space in spaces)
        out["memorization_flag"] = out["memorization_fraction"] > memorization.FLAG_FRACTION
        samples, d, index = fake["closest"]
        nearest = torch.stack([_sample(self.train_dataset[self.train["order"][int(i)]]) for i in index])
        self.closest_pairs = (samples, nearest.float().clamp(-1, 1), d)
        features = (self.feature_net.name if self.feature_net is not None else
                    "none (no feature network for this data: metrics.features, or for 2D images the Inception); "
                    "pooled samples only")
        return out, {"spaces": list(spaces), "features": features, "distance": "RMS difference",
                     "pooled_shape": self.train["pooled_shape"],
                     "train_samples": len(self.train["order"]), "percentile": memorization.PERCENTILE,
                     "flag_above": memorization.FLAG_FRACTION, "pairs": len(d), **self._counts()}
