//! Shared workload helpers for the benchmarks.
