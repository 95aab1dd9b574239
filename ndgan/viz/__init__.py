"""Pictures of samples: grids of images and of volume slices."""
