"""Export the shipped generators and measure the files themselves (the numbers of pretrained/README lines):

    python benchmarks/quality/pretrained.py [--digits CKPT] [--energy16 CKPT]

Each given checkpoint (or run folder) is exported to pretrained/<name>.safetensors; then every shipped file is
evaluated with its preset's metrics and settings (digits: 1,797 generated against the 1,797 scans; energy16:
2000 generated against the 2000 held-out cells) and the results go to benchmarks/quality/results/pretrained.json.
"""

import argparse
import dataclasses
import json
import time

import common
from ndgan.data import open_dataset
from ndgan.sampling import load_generator
from ndgan.metrics.evaluate import Evaluator
from ndgan.train.config import from_dict
from ndgan.data.configured import metrics_dataset, source_options

SHIPPED = {"digits2d": ["fid", "classes"], "energy16": ["energy", "msssim", "hist"]}


def evaluate(name: str) -> dict:
    path = common.ROOT / "pretrained" / f"{name}.safetensors"
    G = load_generator(path)
    cfg = from_dict(G.config)
    data = dataclasses.replace(cfg.data, path=str(common.ROOT / cfg.data.path) if cfg.data.path else None)
    metrics = dataclasses.replace(cfg.metrics, **{k: str(common.ROOT / v) for k, v in
                                                  (("features", cfg.metrics.features),
                                                   ("real_path", cfg.metrics.real_path)) if v})
    cfg = dataclasses.replace(cfg, data=data, metrics=metrics)
    dataset = open_dataset(data.source, **source_options(data))
    real = metrics_dataset(cfg, dataset)
    start = time.time()
    results, info = Evaluator(SHIPPED[name], real, cfg.metrics, metadata=dataset.metadata).evaluate(G)
    return {"file": f"pretrained/{name}.safetensors", "kimg": G.kimg, "results": results, "info": info,
            "seconds": round(time.time() - start, 1)}


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--digits", help="checkpoint or run folder to export as pretrained/digits2d.safetensors")
    p.add_argument("--energy16", help="checkpoint or run folder to export as pretrained/energy16.safetensors")
    args = p.parse_args()
    for name, source in (("digits2d", args.digits), ("energy16", args.energy16)):
        if source:
            common.export(source, common.ROOT / "pretrained" / f"{name}.safetensors")
    out = {"machine": common.machine(), "date": time.strftime("%Y-%m-%d"),
           "command": "python benchmarks/quality/pretrained.py",
           "files": {n: evaluate(n) for n in SHIPPED if (common.ROOT / "pretrained" / f"{n}.safetensors").exists()}}
    (common.RESULTS / "pretrained.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({n: {"kimg": f["kimg"], **{k: round(v, 4) for k, v in f["results"].items()}}
                      for n, f in out["files"].items()}, indent=1))
