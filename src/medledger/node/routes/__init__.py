"""The node's API routes, one module per area."""
