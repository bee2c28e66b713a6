"""Training: data preparation and packs, the dataset, losses, the loop with its
checkpoints, and export of inference weights. Inference never imports this package."""
