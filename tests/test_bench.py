"""The benchmarks run end to end at a small size and report what they promise."""

from __future__ import annotations

from medledger.bench import access, ingest, ledger


def test_the_ledger_bench_reports_throughput_against_the_floor() -> None:
    result = ledger.run(backend="embedded", tx=300)
    assert result["log_size"] == 301
    assert result["tx_per_s"] > 0 and result["sig_verify_per_s"] > 0


def test_the_ingest_bench_writes_every_record_and_measures_the_floor() -> None:
    result = ingest.run(records=300, workers=1)
    assert result["records"] == 300
    assert result["floor_records_per_s"] > 0
    assert result["ratio"] == round(result["records_per_s"] / result["floor_records_per_s"], 3)


def test_the_access_bench_reads_and_grants() -> None:
    result = access.run(reads=10, grants=50)
    assert result["grants"] == 50 and result["record_bytes"] == 1 << 20
    assert 0 < result["p50_ms"] <= result["p99_ms"]
