"""Label assigners: which anchor learns which ground-truth box, and with what soft target."""
