"""Images and files: reading and writing volumes with their geometry (verified, atomic), output-path checks,
voxel grids, resampling onto other grids, label-map helpers."""
