"""The ledger's own contracts (membership, identities, checkpoints) and the contract API."""
