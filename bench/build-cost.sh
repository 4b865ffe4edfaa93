#!/usr/bin/env bash
# Build cost of the derive. Crates of 50 models (ten blogs of five: Author, Profile, Post, Tag
# and PostTag), each rebuilt alone after its dependencies are built; each figure is the median
# of five rebuilds of that crate (dev profile, as `cargo build` and `cargo test` compile).
#
#   bash bench/build-cost.sh            # the table of variants, expanded lines per model
#   ROUNDS=9 bash bench/build-cost.sh   # more rebuilds per figure
#   ONLY="plain all" bash bench/build-cost.sh   # some variants (and the baseline)
#
# Two figures per crate: a rebuild after `touch` with incremental compilation (as an edit
# elsewhere in a crate of models costs), and a full build of the crate alone with
# CARGO_INCREMENTAL=0 (as a fresh clone and CI pay it).
# `from_row` is the baseline: the same structs with `#[derive(sqlx::FromRow)]`. `all` uses every
# attribute the derive takes; each other variant adds one feature of the derive to `plain`.
# Authors derive serde's `Serialize`/`Deserialize` in every crate (durable receivers need it),
# so every crate pays for the same serde code.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/build-cost"
rounds="${ROUNDS:-5}"
mkdir -p "$work"

# A crate of ten groups of five models; $2 is the set of features, words among
#   derive schema receivers changed on_commit relations durable
make_crate() { # name, features
  local name=$1 features=" $2 " dir="$work/$1"
  has() { [[ "$features" == *" $1 "* ]]; }
  mkdir -p "$dir/src"
  local deps
  if has derive; then
    deps="signals-core = { path = \"$root/signals-core\" }"
  else
    deps='sqlx = { version = "0.9.0", default-features = false, features = ["derive", "runtime-tokio", "sqlite-bundled", "postgres", "mysql", "chrono", "uuid", "json", "rust_decimal"] }'
  fi
  cat > "$dir/Cargo.toml" <<TOML
[package]
name = "$name"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
chrono = { version = "0.4", default-features = false, features = ["std", "clock", "serde"] }
rust_decimal = { version = "1", default-features = false, features = ["std", "serde"] }
serde = { version = "1", features = ["derive"] }
$deps
TOML
  # Attribute text when a feature is on, else nothing.
  at() { if has "$1"; then printf '%s' "$2"; fi; }
  local derive='sqlx::FromRow'
  has derive && derive='signals_core::Model'
  {
    echo '#![allow(dead_code, clippy::all)]'
    for g in $(seq 1 10); do
      echo "pub mod g$g {"
      if has derive; then
        echo '    use signals_core::{Committed, M2mChange, M2mChanged, PostDelete, PostSave, PostSaveBatch, PreDelete, PreSave, Result};'
        echo '    use signals_core::durable::Delivery;'
      fi
      cat <<RUST
    #[derive(Debug, Clone, PartialEq, $derive, serde::Serialize, serde::Deserialize)]
    $(at schema "#[model(table = \"g${g}_author\")]")
    $(at receivers '#[pre_save(clean)] #[post_save(created, robust)] #[post_save(created_all, batch)] #[pre_delete(leaving)] #[post_delete(gone)]')
    $(at changed '#[post_save(renamed, changed(name, balance))] #[model(old_values)]')
    $(at on_commit '#[on_commit(notify)]')
    $(at durable '#[on_commit(deliver, durable)]')
    pub struct Author {
        pub id: Option<i64>,
        $(at schema '#[model(unique, max_length = 150)]')
        pub name: String,
        pub n: i64,
        pub born: Option<chrono::NaiveDate>,
        $(at schema '#[model(max_digits = 10, decimal_places = 2)]')
        pub balance: rust_decimal::Decimal,
    }

    #[derive(Debug, Clone, PartialEq, $derive)]
    $(at schema "#[model(table = \"g${g}_profile\")]")
    $(at receivers '#[post_delete(profile_gone)]')
    $(at changed '#[on_commit(bio_changed, changed(bio))]')
    pub struct Profile {
        pub id: Option<i64>,
        $(at relations '#[model(one_to_one = Author, on_delete = cascade)]')
        pub author_id: i64,
        $(at schema '#[model(column = "bio_text", max_length = 255)]')
        pub bio: String,
        pub flag: bool,
        pub born: Option<chrono::NaiveDate>,
    }

    #[derive(Debug, Clone, PartialEq, $derive)]
    $(at schema "#[model(table = \"g${g}_post\")]")
    $(at relations '#[model(many_to_many(tags: Tag, through = PostTag, related_name = posts))]')
    pub struct Post {
        pub id: Option<i64>,
        $(at relations '#[model(foreign_key = Author, on_delete = set_null)]')
        pub author_id: Option<i64>,
        pub title: String,
        pub n: i64,
        pub flag: bool,
    }

    #[derive(Debug, Clone, PartialEq, $derive)]
    $(at schema "#[model(table = \"g${g}_tag\")]")
    pub struct Tag {
        pub id: Option<i64>,
        $(at schema '#[model(unique)]')
        pub name: String,
        pub n: i64,
        pub flag: bool,
        pub born: Option<chrono::NaiveDate>,
    }

    #[derive(Debug, Clone, PartialEq, $derive)]
    $(at schema "#[model(table = \"g${g}_post_tag\", unique_together(post_id, tag_id))]")
    $(at relations '#[m2m_changed(tags_changed)]')
    pub struct PostTag {
        pub id: Option<i64>,
        $(at relations '#[model(foreign_key = Post, on_delete = cascade)]')
        pub post_id: i64,
        $(at relations '#[model(foreign_key = Tag, on_delete = restrict)]')
        pub tag_id: i64,
        pub n: i64,
        pub flag: bool,
    }
RUST
      if has derive; then
        cat <<'RUST'
    async fn clean(_: &mut Author, _: &mut PreSave<'_>) -> Result<()> { Ok(()) }
    async fn created(_: &Author, _: &mut PostSave<'_>) -> Result<()> { Ok(()) }
    async fn created_all(_: &[Author], _: &mut PostSaveBatch<'_>) -> Result<()> { Ok(()) }
    async fn renamed(_: &Author, _: &mut PostSave<'_>) -> Result<()> { Ok(()) }
    async fn leaving(_: &Author, _: &mut PreDelete<'_>) -> Result<()> { Ok(()) }
    async fn gone(_: &Author, _: &mut PostDelete<'_>) -> Result<()> { Ok(()) }
    async fn profile_gone(_: &Profile, _: &mut PostDelete<'_>) -> Result<()> { Ok(()) }
    async fn notify(_: Author, _: Committed) -> Result<()> { Ok(()) }
    async fn bio_changed(_: Profile, _: Committed) -> Result<()> { Ok(()) }
    async fn deliver(_: Author, _: &mut Delivery<'_>) -> Result<()> { Ok(()) }
    async fn tags_changed(_: &M2mChange<'_, Post, Tag>, _: &mut M2mChanged<'_>) -> Result<()> { Ok(()) }
RUST
      fi
      echo "}"
    done
  } > "$dir/src/lib.rs"
}

median_build() { # crate name, target dir, CARGO_INCREMENTAL
  local dir="$work/$1"
  local times=()
  for _ in $(seq 1 "$rounds"); do
    touch "$dir/src/lib.rs"
    local start end
    start=$(date +%s.%N)
    (cd "$dir" && CARGO_INCREMENTAL=$3 CARGO_TARGET_DIR="$work/$2" cargo build -q)
    end=$(date +%s.%N)
    times+=("$(echo "$end - $start" | bc)")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p"
}

# Lines of the crate once macros are expanded, per model (rustc's own pretty-printer).
expanded_per_model() { # crate name
  local dir="$work/$1"
  local lines
  lines=$(cd "$dir" && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$work/target-expand" \
    cargo rustc -q --lib -- -Zunpretty=expanded 2>/dev/null | wc -l)
  echo $((lines / 50))
}

variants=(
  "from_row|"
  "plain|derive"
  "schema|derive schema"
  "receivers|derive receivers"
  "changed|derive changed"
  "on_commit|derive on_commit"
  "relations|derive relations"
  "durable|derive durable"
  "all|derive schema receivers changed on_commit relations durable"
)
# ONLY="plain all" measures those variants (and the baseline).
if [ -n "${ONLY:-}" ]; then
  kept=("${variants[0]}")
  for v in "${variants[@]:1}"; do [[ " $ONLY " == *" ${v%%|*} "* ]] && kept+=("$v"); done
  variants=("${kept[@]}")
fi
for v in "${variants[@]}"; do
  make_crate "models_${v%%|*}" "${v#*|}"
  # Dependencies first (not counted); a crate that does not compile stops the script here.
  (cd "$work/models_${v%%|*}" && CARGO_TARGET_DIR="$work/target" cargo build -q)
  (cd "$work/models_${v%%|*}" && CARGO_INCREMENTAL=0 CARGO_TARGET_DIR="$work/target-full" cargo build -q)
done

base="" base_full=""
printf '| crate (50 models) | touch rebuild (s) | ÷ from_row | full build (s) | ÷ from_row | expanded lines per model |\n|---|---:|---:|---:|---:|---:|\n'
for v in "${variants[@]}"; do
  name=${v%%|*}
  t=$(median_build "models_$name" target 1)
  f=$(median_build "models_$name" target-full 0)
  [ -z "$base" ] && base=$t && base_full=$f
  printf '| %s | %.2f | %.2f | %.2f | %.2f | %s |\n' "$name" "$t" "$(echo "$t / $base" | bc -l)" \
    "$f" "$(echo "$f / $base_full" | bc -l)" "$(expanded_per_model "models_$name")"
done
