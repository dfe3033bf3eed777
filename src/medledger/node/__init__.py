"""What institutions run: the node service and its local home."""
