"""Model code shared by the training and prediction workers (and the local runner)."""
