"""Files in and out, safely: all-or-nothing writes and output folders (``files``), size estimates before
allocation (``budget``), checkpoints (``checkpoint``: safe loading, the layout, saving and pruning) and
volumes (``volumes``: reading ``.npy`` / NIfTI / HDF5 volumes, writing NIfTI). Imports only torch, numpy and
the standard library's kin; everything above it (data, train, metrics, sampling, cli) reads and writes
through it."""
