"""The benchmarks run end to end at a small size and report what they promise."""

from __future__ import annotations

from medledger.bench import access, cli, credentials, fhir, ingest, ledger, node


def test_the_ledger_bench_reports_throughput_against_the_floor() -> None:
    result = ledger.run(backend="embedded", tx=300, state_entries=2000)
    assert result["log_size"] == 301
    assert result["tx_per_s"] > 0 and result["sig_verify_per_s"] > 0
    assert result["state_entries"] == 2000
    assert result["state_proof_verify_per_s"] > 0 and result["state_tree_build_s"] > 0
    assert 2000 < result["state_tree_nodes"] < 3 * 2000
    assert 0 < result["state_tree_peak_rss_mb"] < 1024
    # 2,000 random paths: about 11 levels deep, rarely more than twice that.
    depth = result["state_proof_depth_mean"]
    assert 8 < depth < 16
    # Path, depth, bitmap and leaf, then at most 32 bytes a level.
    smallest, largest = 32 + 2 + 1 + 64, 32 + 2 + 4 + 64 + 32 * 32
    assert smallest + 32 * 4 < result["state_proof_bytes_p50"] < smallest + 32 * (depth + 2)
    assert result["state_proof_bytes_p50"] <= result["state_proof_bytes_max"] <= largest


def test_the_ingest_bench_writes_every_record_and_measures_the_floor() -> None:
    result = ingest.run(records=300, workers=1)
    assert result["records"] == 300
    assert result["floor_records_per_s"] > 0
    assert result["ratio"] == round(result["records_per_s"] / result["floor_records_per_s"], 3)


def test_the_access_bench_reads_and_grants() -> None:
    result = access.run(reads=10, grants=50, query=160)
    assert result["grants"] == 50 and result["record_bytes"] == 1 << 20
    # 160 records in two releases: each of the 3 custodians logs 2 receipts.
    assert (result["query_records"], result["query_receipt_txs"]) == (160, 6)
    assert 0 < result["p50_ms"] <= result["p99_ms"]


def test_the_credentials_bench_compares_ours_with_the_bare_libraries() -> None:
    result = credentials.run(rounds=2, sdjwt_verifies=100)
    assert result["predicates"] == ["hba1c_x10 < 65", "non_smoker >= 1"]
    for name in ("anoncreds_prove_ms", "anoncreds_verify_ms", "bare_anoncreds_prove_ms",
                 "bare_anoncreds_verify_ms", "sdjwt_verify_per_s", "bare_sdjwt_verify_per_s"):
        assert result[name] > 0, name
    assert result["anoncreds_prove_overhead"] == round(
        result["anoncreds_prove_ms"] / result["bare_anoncreds_prove_ms"] - 1, 3)


def test_the_node_bench_loads_one_node_and_every_request_succeeds() -> None:
    result = node.run(reads=60, approvals=20, concurrency=4)
    assert result["errors"] == 0 and result["reads"] == 60 and result["approvals"] == 20
    assert 0 < result["read_p50_ms"] <= result["read_p99_ms"]
    assert 0 < result["approval_p50_ms"] <= result["approval_p99_ms"]
    assert result["floor_health_per_s"] > 0


def test_the_fhir_bench_ingests_over_http_and_reads_a_chart_over_three_vaults() -> None:
    result = fhir.run(ingest_records=500, chart=20, reads=1)
    assert result["ingest_resources"] == 500 and result["vaults"] == 3
    assert result["resources_per_s"] > 0 and result["everything_p50_ms"] > 0
    # 20 records under one grant: one release, one receipt per custodian.
    assert result["everything_ledger_txs"] == 3
    assert result["export_resources_per_s"] > 0  # the export held the whole chart
    floor = result["floor_direct_records_per_s"]
    assert result["ratio"] == round(result["resources_per_s"] / floor, 3)


def test_the_cli_bench_times_a_fresh_process_against_a_bare_interpreter() -> None:
    result = cli.run(runs=3)
    assert 0 < result["floor_python_ms"] < result["help_ms"]
    assert result["cli_start_ms"] == max(result["help_ms"], result["read_ms"])
    assert result["meets_target"] == (result["cli_start_ms"] < result["target_ms"])
