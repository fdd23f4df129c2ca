//! Criterion benchmarks of berth's hot paths: see `benches/layers.rs`,
//! run with `cargo bench -p berth-benches`.
