"""Write the NVIDIA-pickle test fixtures (tests/data/nvlabs/): tiny StyleGAN2-ADA networks made by NVIDIA's own
code, pickled by NVIDIA's own persistence module, with NVIDIA's own outputs for fixed inputs.

    python tools/make_nvlabs_fixtures.py --nvidia PATH_TO/stylegan2-ada-pytorch [--out tests/data/nvlabs]

Needs NVIDIA's source (git clone https://github.com/NVlabs/stylegan2-ada-pytorch); runs on CPU. The source
each record embeds is replaced by a one-line stub before pickling, so the fixtures hold NVIDIA's network
format, weights and outputs but none of NVIDIA's code (ndgan never reads that source anyway). Each fixture is
``<name>.pkl`` (G, D, G_ema) plus ``<name>.pt``: z, c, truncation psi, G_ema's images (noise_mode='const',
float32), D's logits of those images, and the uint8 pictures NVIDIA's generate.py writes for seeds 0-2.
"""

from __future__ import annotations

import argparse
import copy
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

STUB = "# NVIDIA's module source was removed from this test fixture; ndgan never reads it.\n"
#: name -> (G synthesis architecture, D architecture, c_dim, resolution, conv_clamp, num_fp16_res)
FIXTURES = {
    "skip-resnet-conditional": ("skip", "resnet", 3, 16, 256, 2),
    "orig-orig": ("orig", "orig", 0, 16, None, 0),
    "resnet-skip": ("resnet", "skip", 0, 32, None, 1),
}


def make(nvidia: Path, out: Path) -> None:
    sys.path.insert(0, str(nvidia))
    from torch_utils import persistence
    from training.networks import Discriminator, Generator

    out.mkdir(parents=True, exist_ok=True)
    for name, (g_arch, d_arch, c_dim, res, clamp, fp16) in FIXTURES.items():
        torch.manual_seed(len(name))
        G = Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=res, img_channels=3,
                      mapping_kwargs=dict(num_layers=2),
                      synthesis_kwargs=dict(channel_base=64, channel_max=8, architecture=g_arch, conv_clamp=clamp,
                                            num_fp16_res=fp16)).eval()
        D = Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, architecture=d_arch, channel_base=64,
                          channel_max=8, conv_clamp=clamp, num_fp16_res=fp16,
                          epilogue_kwargs=dict(mbstd_group_size=2)).eval()
        with torch.no_grad():  # what training would have moved away from their initial values
            for pname, p in [*G.named_parameters(), *D.named_parameters()]:
                if pname.endswith(("bias", "noise_strength")):
                    p.normal_(0, 0.3)
            G.mapping.w_avg.normal_()
        z = torch.randn(4, 8)
        c = torch.eye(c_dim)[[0, 1, 2, 0]] if c_dim else torch.zeros(4, 0)
        with torch.no_grad():
            images = G(z, c, truncation_psi=0.7, noise_mode="const", force_fp32=True)
            logits = D(images, c, force_fp32=True)
            # What NVIDIA's generate.py writes for seeds 0-2 (class 1 if conditional), in float32.
            pictures = []
            for seed in range(3):
                zs = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim))
                label = torch.zeros(1, c_dim)
                if c_dim:
                    label[:, 1] = 1
                img = G(zs, label, truncation_psi=1, noise_mode="const", force_fp32=True)
                pictures.append((img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0])
        networks = dict(G=G, D=D, G_ema=copy.deepcopy(G))  # (a deep copy pickles: before the stub)
        sources = {cls: cls._orig_module_src for cls in persistence._decorators}
        try:
            for cls in sources:
                cls._orig_module_src = STUB
            with open(out / f"{name}.pkl", "wb") as f:
                pickle.dump(networks, f)
        finally:
            for cls, src in sources.items():
                cls._orig_module_src = src
        torch.save({"z": z, "c": c, "truncation_psi": 0.7, "images": images, "logits": logits,
                    "seed_pictures": torch.stack(pictures), "seed_class": 1 if c_dim else None}, out / f"{name}.pt")
        print(f"wrote {out / name}.pkl and .pt ({(out / f'{name}.pkl').stat().st_size / 1024:.0f} KiB)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nvidia", required=True, type=Path, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/data/nvlabs")
    args = p.parse_args(argv)
    make(args.nvidia, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
