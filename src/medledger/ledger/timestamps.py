"""The ledger's clock units. Timestamps are integer nanoseconds since the Unix epoch, as
the orderer stamps blocks; tree heads, approvals and releases carry milliseconds, and
settings seconds."""

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000
