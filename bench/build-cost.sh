#!/usr/bin/env bash
# Build cost of the derive: a crate of 50 `#[derive(Model)]` structs against the same crate
# with 50 `#[derive(sqlx::FromRow)]` structs. Dependencies are built first and not counted;
# each figure is the median of 3 rebuilds of the model crate alone (dev profile).
#
#   bash bench/build-cost.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/build-cost"
mkdir -p "$work"

fields='pub id: Option<i64>, pub name: String, pub n: i64, pub born: Option<chrono::NaiveDate>, pub flag: bool'

make_crate() { # name, dependency lines, derive attribute lines
  local dir="$work/$1"
  mkdir -p "$dir/src"
  cat > "$dir/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
chrono = { version = "0.4", default-features = false, features = ["std"] }
$2
TOML
  : > "$dir/src/lib.rs"
  for i in $(seq 1 50); do
    printf '%s\npub struct M%d { %s }\n\n' "$3" "$i" "$fields" >> "$dir/src/lib.rs"
  done
}

make_crate models_signals \
  "signals-core = { path = \"$root/signals-core\" }" \
  '#[derive(Debug, Clone, signals_core::Model)]'
make_crate models_sqlx \
  'sqlx = { version = "=0.9.0", default-features = false, features = ["derive", "runtime-tokio", "sqlite-bundled", "postgres", "mysql", "chrono"] }' \
  '#[derive(Debug, Clone, sqlx::FromRow)]'

median_build() { # crate dir
  (cd "$1" && CARGO_TARGET_DIR="$work/target" cargo build -q)   # dependencies
  local times=()
  for _ in 1 2 3; do
    touch "$1/src/lib.rs"
    local start end
    start=$(date +%s.%N)
    (cd "$1" && CARGO_TARGET_DIR="$work/target" cargo build -q)
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n 2p
}

ours=$(median_build "$work/models_signals")
theirs=$(median_build "$work/models_sqlx")
printf '| crate | rebuild (s) |\n|---|---:|\n'
printf '| 50 x #[derive(signals_core::Model)] | %.2f |\n' "$ours"
printf '| 50 x #[derive(sqlx::FromRow)] | %.2f |\n' "$theirs"
printf 'ratio: %.2f\n' "$(echo "$ours / $theirs" | bc -l)"
