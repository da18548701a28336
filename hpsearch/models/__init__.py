"""LightningModules built from a Regularization."""
