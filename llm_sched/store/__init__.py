"""Storage: the ledger (SQLite), the hash-chained event log, run locks and run health."""
