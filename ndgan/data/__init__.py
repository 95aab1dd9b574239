"""Data sources. Every dataset yields float tensors ``[C, *S]`` in [-1, 1] and records what is needed to turn
samples back into physical data (value range, channel names and units, voxel spacing)."""
