"""python -m ndgan.metrics RUN_OR_CKPT --metrics fid,kid [--data PATH] [--num N] [--inception PATH] ...
   python -m ndgan.metrics --samples FILE.h5 --data REAL.h5 --metrics energy,msssim,hist

Evaluates the EMA generator of a checkpoint (or of a run folder's newest valid one) against its training data
(the data section of the checkpoint's config; --data points it elsewhere). Settings default to the run's
'metrics' config section. Prints one line per value, next to its real-vs-real baseline where there is one, and
writes the results as JSON (--json FILE; by default a line appended to RUN/metrics.jsonl when given a run
folder). With --samples, a file of samples made elsewhere (generate --format h5, or any HDF5 dataset in the
real data's units) is the generated side instead of a checkpoint. --held-out gives held-out reals of the
training source (the real side of every metric, and memorization's baseline); memorization draws its closest
pairs to --figure (default: RUN/memorization-<nimg>.png). Errors: one line, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from .. import cli
from ..io.files import append_line, atomic_write
from ..metrics.settings import METRICS, check_names, json_safe


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="python -m ndgan.metrics", description=__doc__.split("\n\n")[1].strip(),
                                epilog="Metrics: " + "; ".join(f"{k}: {v}" for k, v in METRICS.items()),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="RUN_OR_CKPT", nargs="?", help="checkpoint file or run folder")
    p.add_argument("--samples", metavar="FILE.h5", help="evaluate these samples (an HDF5 dataset 'data' [N, C, *S], "
                                                        "e.g. from generate --format h5) against --data instead")
    p.add_argument("--metrics", required=True, help="comma-separated names, e.g. fid,kid,pr or energy,msssim,hist")
    p.add_argument("--data", help="real data path (default: the checkpoint config's data.path)")
    p.add_argument("--held-out", metavar="PATH", help="held-out reals of the training source, not in the training "
                                                      "data: the real side of every metric and memorization's "
                                                      "baseline (default: the run's metrics.real_path / "
                                                      "real_options)")
    p.add_argument("--figure", metavar="FILE.png", help="memorization's closest pairs (default: "
                                                        "RUN/memorization-<nimg>.png for a run folder; refuses to "
                                                        "overwrite)")
    p.add_argument("--num", type=int, help="generated samples (default: metrics.num_gen of the run's config)")
    p.add_argument("--num-real", type=int, help="real samples (default: as many as generated, at most the data)")
    p.add_argument("--batch", type=int, help="batch size (even)")
    p.add_argument("--inception", help="FID Inception weights file (or set NDGAN_INCEPTION)")
    p.add_argument("--lpips", help="LPIPS weights for ppl: VGG16.pth,LIN.pth")
    p.add_argument("--features", help="feature network weights for fid/kid/pr/ppl/classes: MedicalNet-style "
                                      "ResNet, Inception or digit classifier (.pth/.safetensors; weights only, "
                                      "never code)")
    p.add_argument("--features-program", help="a feature network program instead (torch.export .pt2 or "
                                              "TorchScript): loading it RUNS THE FILE'S CODE, so only a file you trust")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="write the results to this JSON file (refuses to overwrite)")
    cli.add_debug_flag(p)
    args = p.parse_args(argv)
    return cli.run(lambda: _run(args), args.debug)


def _run(args) -> int:
    try:
        names = check_names(args.metrics)
    except ValueError as e:
        raise ValueError(f"--metrics: {e}") from None
    if not names:
        raise ValueError("--metrics: expected at least one metric name")
    if args.json and Path(args.json).exists():
        raise FileExistsError(f"{args.json}: exists; choose another --json file")
    if args.json and not Path(args.json).parent.is_dir():
        raise FileNotFoundError(f"{args.json}: the folder {Path(args.json).parent} does not exist")
    if args.figure is not None:
        figure = Path(args.figure)
        if "memorization" not in names:
            raise ValueError("--figure: only memorization draws a figure; add it to --metrics")
        if figure.suffix.lower() != ".png":
            raise ValueError(f"--figure: {figure} is not a .png file name")
        if figure.exists():
            raise FileExistsError(f"{figure}: exists; choose another --figure file")
        if not figure.parent.is_dir():
            raise FileNotFoundError(f"{figure}: the folder {figure.parent} does not exist")
    from ..data import BUILT_IN, PATHLESS, open_dataset
    from ..sampling import load_generator

    if args.samples:
        if "memorization" in names or args.held_out:
            raise ValueError("--samples: memorization and --held-out need a run's training data; evaluate the run "
                             "(RUN_OR_CKPT) instead")
        return _run_samples(args, names)
    if not args.source:
        raise ValueError("RUN_OR_CKPT: give a checkpoint or run folder, or --samples FILE.h5 with --data")
    from ..train.config import from_dict
    from ..data.configured import metrics_dataset, path_exists, source_options
    from ..metrics.evaluate import Evaluator

    G = load_generator(args.source, args.device)
    cfg = from_dict(G.config)
    data = cfg.data
    if args.data is not None:
        if data.source in PATHLESS:
            raise ValueError(f"--data: this run trained on {data.source} data, which has no path to replace")
        if not path_exists(args.data):
            raise FileNotFoundError(f"--data: {args.data} does not exist")
        # Another energy file is read as it is (never generated); other sources keep their options.
        data = dataclasses.replace(data, path=args.data, **({"source": "hdf5", "options": {}}
                                                            if data.source == "energy" else {}))
    elif data.source not in BUILT_IN and not path_exists(data.path):
        raise FileNotFoundError(f"{data.path}: the real data is not there; pass --data PATH"
                                + (f" ({data.missing_hint})" if data.missing_hint else ""))
    if args.held_out is not None:
        if data.source in PATHLESS:
            raise ValueError(f"--held-out: this run trained on {data.source} data, which has no files; its held-out "
                             f"samples are the run's metrics.real_options")
        if not path_exists(args.held_out):
            raise FileNotFoundError(f"--held-out: {args.held_out} does not exist")
        if data.path is not None and Path(args.held_out).resolve() == Path(data.path).resolve():
            raise ValueError(f"--held-out: {args.held_out} is the training data; give reals the model never saw")
    train_data = open_dataset(data.source, **source_options(data))
    metadata = getattr(train_data, "metadata", None)  # the training data's units, also for held-out reals
    if args.held_out is not None:
        dataset = _held_out(cfg, data, args.held_out, train_data)
    elif args.data is None:
        dataset = metrics_dataset(cfg, train_data)  # the run's metrics.real_path / real_options, as in training
    else:
        dataset = train_data
    if "memorization" in names and dataset is train_data:
        none = "--data sets no held-out reals" if args.data else \
            "the run sets no held-out reals (metrics.real_path / metrics.real_options)"
        raise ValueError(f"--metrics memorization: its baseline is held-out reals and {none}; pass --held-out PATH, "
                         f"reals of the training source that the model never saw")
    figure = Path(args.figure) if args.figure else None
    if "memorization" in names and figure is None and Path(args.source).is_dir():
        figure = _free_name(Path(args.source), f"memorization-{round(G.kimg * 1000):09d}")
    overrides = {"num_gen": args.num, "num_real": args.num_real, "batch": args.batch, "inception": args.inception,
                 "features": args.features, "features_program": args.features_program, "seed": args.seed,
                 "lpips": tuple(x for x in args.lpips.split(",") if x) if args.lpips else None}
    if args.features and args.features_program:
        raise ValueError("--features and --features-program: give one feature network, not both")
    if args.features or args.features_program:  # the flag replaces the run's own choice of either kind
        overrides.update(features=args.features, features_program=args.features_program)
    settings = dataclasses.replace(cfg.metrics, **{k: v for k, v in overrides.items()
                                                   if v is not None or k.startswith("features")})
    evaluator = Evaluator(names, dataset, settings, args.device, metadata=metadata, train_dataset=train_data)
    expected, got = (G.channels, *G.shape), (evaluator.channels, *evaluator.shape)
    if tuple(expected) != got:
        raise ValueError(f"--data: samples of {got}, the generator makes {tuple(expected)}")
    start = time.perf_counter()
    results, info = evaluator.evaluate(G)
    seconds = time.perf_counter() - start
    print(format_results(results, info))
    record = json_safe({"source": str(args.source), "data": data.path, "kimg": G.kimg, "metrics": list(names),
                        "results": results, "info": info, "seconds": round(seconds, 2),
                        "settings": dataclasses.asdict(settings)})
    if "memorization" in names:
        if figure is not None:
            from ..metrics.memorization import save_figure

            save_figure(figure, *evaluator.closest_pairs[:2], replace=False)
            record["figure"] = str(figure)
        print(f"closest pairs drawn to {figure}" if figure is not None else
              "closest pairs not drawn (pass --figure FILE.png)")
    if args.json:
        write_json(Path(args.json), record)
    elif Path(args.source).is_dir():
        append_line(Path(args.source) / "metrics.jsonl", json.dumps(record))
    saved = (f"written to {args.json}" if args.json else "appended to metrics.jsonl" if Path(args.source).is_dir()
             else "not saved (pass --json FILE)")
    print(f"{seconds:.1f} s; results {saved}")
    return 0


def _run_samples(args, names) -> int:
    """``--samples FILE --data REAL``: the metrics of a file of samples against real data in the same units."""
    from ..data.hdf5 import HDF5Dataset
    from ..metrics.evaluate import Evaluator
    from ..metrics.settings import MetricSettings

    if args.source:
        raise ValueError("--samples: give either RUN_OR_CKPT or --samples FILE.h5, not both")
    if not args.data:
        raise ValueError("--samples: needs --data REAL.h5, the real data to compare the samples with")
    for flag, path in (("--samples", args.samples), ("--data", args.data)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{flag}: {path} does not exist")
    samples, real = HDF5Dataset(args.samples), HDF5Dataset(args.data)
    for key in ("value_range", "units", "channel_names"):
        a, b = (list(v) if isinstance(v, (list, tuple)) else v for v in (samples.metadata.get(key),
                                                                         real.metadata.get(key)))
        if a is not None and b is not None and a != b:
            raise ValueError(f"--samples {args.samples}: {key} {a!r}, the real data's {b!r}; the two sides must be "
                             f"in the same units")
    if (samples.channels, *samples.shape) != (real.channels, *real.shape):
        raise ValueError(f"--samples {args.samples}: samples of {[samples.channels, *samples.shape]}, the real "
                         f"data's {[real.channels, *real.shape]}")
    overrides = {"num_gen": len(samples), "num_real": args.num_real, "batch": args.batch, "seed": args.seed,
                 "inception": args.inception, "features": args.features, "features_program": args.features_program}
    settings = dataclasses.replace(MetricSettings(), **{k: v for k, v in overrides.items() if v is not None})
    evaluator = Evaluator(names, real, settings, args.device, metadata=real.metadata)
    start = time.perf_counter()
    results, info = evaluator.evaluate_samples(samples)
    seconds = time.perf_counter() - start
    print(format_results(results, info))
    if args.json:
        write_json(Path(args.json), json_safe({"samples": args.samples, "data": args.data, "metrics": list(names),
                                               "results": results, "info": info, "seconds": round(seconds, 2),
                                               "settings": dataclasses.asdict(settings)}))
    print(f"{seconds:.1f} s; results " + (f"written to {args.json}" if args.json else "not saved (pass --json FILE)"))
    return 0


def _held_out(cfg, data, path, train_data):
    """The held-out reals at ``path``, read as the training ``data`` is (an energy file as it is, never
    generated) and checked against ``train_data`` as ``metrics.real_path`` is in training."""
    from ..data.configured import metrics_dataset
    from ..ops.check import ConfigError

    data = dataclasses.replace(data, **({"source": "hdf5", "options": {}} if data.source == "energy" else {}))
    metrics = dataclasses.replace(cfg.metrics, real_path=str(path), real_options={})
    try:
        return metrics_dataset(dataclasses.replace(cfg, data=data, metrics=metrics), train_data)
    except ConfigError as e:  # its messages name metrics.real_path, here the flag
        message = str(e)
        for key in ("metrics.real_path / metrics.real_options: ", "metrics.real_path: "):
            message = message.removeprefix(key)
        raise ValueError(f"--held-out: {message}") from None


def _free_name(folder: Path, stem: str) -> Path:
    """``folder/stem.png``, or with the first free ``-1``, ``-2``, ... when an earlier figure has the name."""
    path, n = folder / f"{stem}.png", 0
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.png"
    return path


def format_results(results: dict, info: dict) -> str:
    """One line per value; a value with a ``_baseline`` twin shows it as the real-vs-real reference."""
    lines = []
    for key, value in results.items():
        if key.endswith("_baseline"):
            continue
        base = results.get(f"{key}_baseline")
        lines.append(f"{key:32s} {value:12.6g}" + (f"   real-vs-real {base:.6g}" if base is not None else ""))
    for name, note in info.items():
        lines.append(f"[{name}] " + ", ".join(f"{k}: {v}" for k, v in note.items()))
    return "\n".join(lines)


def write_json(path: Path, record: dict) -> None:
    """Write ``record`` to a new file ``path``: never half-written, and linked into place only if nothing has
    appeared there meanwhile (FileExistsError rather than replacing a result written meanwhile)."""
    text = json.dumps(record, indent=2) + "\n"
    atomic_write(path, lambda p: Path(p).write_text(text), replace=False)
