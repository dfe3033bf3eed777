"""medledger: personal health records over a permissioned consortium ledger."""

__version__ = "0.1.0"
