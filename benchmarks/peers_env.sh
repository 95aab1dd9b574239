#!/usr/bin/env bash
# The peer environment that benchmarks/peers.py runs lucidrains' and the 3D port's sides in, built under $T
# (default /tmp/ndgan-peers). Nothing here enters the project; the peers' source stays where it is built.
#   $T/venv      torch 2.13 CPU, the peers' imports, and lucidrains' stylegan2-pytorch 1.9.0 from the package
#                registry, with its CUDA-only lines (an assert on CUDA, a .cuda() call) patched out of the
#                installed copy
#   $T/jb        the 3D port (jbarks1234/improved-stylegan2), copied from a checkout or bare git dir passed
#                as JB_SRC, with the same two lines patched out
#   $T/stubs     empty stand-ins for torchvision, aim and vector_quantize_pytorch, which the peers import at
#                the top of their files but the timed step never calls
# It prints the options for peers.py. Example:
#   JB_SRC=/path/to/improved-stylegan2 bash benchmarks/peers_env.sh
#   python benchmarks/peers.py --peer lucidrains --python $T/venv/bin/python --pythonpath $T/stubs
#   python benchmarks/peers.py --peer jbarks --source $T/jb/lucid_stylegan-improved \
#       --python $T/venv/bin/python --pythonpath $T/stubs
#   python benchmarks/peers.py --peer nvidia --source /path/to/stylegan2-ada-pytorch   (no peer venv needed)
set -eu
T=${T:-/tmp/ndgan-peers}
unpatch_cuda() { sed -i "s/^assert torch.cuda.is_available().*/pass/; s/^\(\s*\)self.cuda(rank)$/\1pass/" "$1"; }
if [ -n "${JB_SRC:-}" ] && [ ! -d "$T/jb" ]; then
  mkdir -p "$T/jb"
  if [ -d "$JB_SRC/refs" ] && [ ! -d "$JB_SRC/.git" ]; then
    git --git-dir="$JB_SRC" archive HEAD | tar x -C "$T/jb"
  else
    cp -r "$JB_SRC"/. "$T/jb"/
  fi
  unpatch_cuda "$T/jb/lucid_stylegan-improved/stylegan2_pytorch_v2.py"
fi
if [ ! -x "$T/venv/bin/python" ]; then
  python3 -m venv "$T/venv" >&2
  "$T/venv/bin/pip" install -q torch==2.13.0 einops numpy tqdm pillow fire retry kornia==0.7.4 click requests \
    scipy psutil >&2
  "$T/venv/bin/pip" install -q --no-deps stylegan2-pytorch==1.9.0 >&2
  unpatch_cuda "$("$T/venv/bin/python" -c "import site; print(site.getsitepackages()[0])")/stylegan2_pytorch/stylegan2_pytorch.py"
fi
mkdir -p "$T/stubs/torchvision" "$T/stubs/vector_quantize_pytorch" "$T/stubs/aim"
printf 'transforms = None\nclass utils: pass\n' > "$T/stubs/torchvision/__init__.py"
echo "VectorQuantize = None" > "$T/stubs/vector_quantize_pytorch/__init__.py"
: > "$T/stubs/aim/__init__.py"
echo "--python $T/venv/bin/python --pythonpath $T/stubs${JB_SRC:+ --source $T/jb/lucid_stylegan-improved (jbarks)}"
