//! What the database itself says its tables are, read from its catalog and written one fact a
//! line (sorted), so that two ways of making the same tables can be compared: migrations
//! applied, and the tables made from the models.
//!
//! Constraint names are left out (tables made by hand carry the server's); types, nullability,
//! defaults, keys, unique sets, indexes, references and MySQL's collations are in.

use signals_core::sqlx::{self, Row as _};
use signals_core::{Db, PoolRef};

/// The catalog of the tables whose names start with `prefix`.
pub async fn catalog(db: &Db, prefix: &str) -> Vec<String> {
    let mut out = match db.pool() {
        PoolRef::Sqlite(p) => sqlite(p, prefix).await,
        PoolRef::Postgres(p) => postgres(p, prefix).await,
        PoolRef::MySql(p) => mysql(p, prefix).await,
        _ => panic!("unknown backend"),
    };
    out.sort();
    out
}

async fn sqlite(p: &sqlx::SqlitePool, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name LIKE ? || '%' ORDER BY name",
    )
    .bind(prefix)
    .fetch_all(p)
    .await
    .expect("the catalog query");
    for (t, sql) in tables {
        if sql.contains("AUTOINCREMENT") {
            out.push(format!("autoincrement {t}"));
        }
        let cols =
            sqlx::query("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?)")
                .bind(&t)
                .fetch_all(p)
                .await
                .expect("the catalog query");
        for c in cols {
            out.push(format!(
                "column {t}.{} {} notnull={} default={:?} pk={}",
                c.get::<String, _>(0),
                c.get::<String, _>(1).to_uppercase(),
                c.get::<i64, _>(2),
                c.get::<Option<String>, _>(3),
                c.get::<i64, _>(4),
            ));
        }
        let indexes = sqlx::query("SELECT name, \"unique\", origin FROM pragma_index_list(?)")
            .bind(&t)
            .fetch_all(p)
            .await
            .expect("the catalog query");
        for i in indexes {
            let name: String = i.get(0);
            let origin: String = i.get(2);
            if origin == "pk" {
                continue;
            }
            let cols: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(p)
                    .await
                    .expect("the catalog query");
            let kind = if i.get::<i64, _>(1) == 1 {
                "unique"
            } else {
                "index"
            };
            out.push(format!("{kind} {t} ({})", cols.join(", ")));
        }
        let fks = sqlx::query("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?)")
            .bind(&t)
            .fetch_all(p)
            .await
            .expect("the catalog query");
        for f in fks {
            out.push(format!(
                "reference {t}.{} -> {}.{}",
                f.get::<String, _>(0),
                f.get::<String, _>(1),
                f.get::<String, _>(2)
            ));
        }
    }
    out
}

/// A PostgreSQL default without its casts (`''::character varying` is `''`).
fn pg_default(d: Option<String>) -> String {
    let Some(d) = d else { return "none".into() };
    if d.starts_with("nextval(") {
        return "auto".into();
    }
    match d.find("::") {
        Some(i) if !d[..i].contains("'::") => d[..i].to_owned(),
        _ => d,
    }
}

async fn postgres(p: &sqlx::PgPool, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let cols = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, \
         character_maximum_length, numeric_precision, numeric_scale, is_nullable::text, \
         column_default::text, is_identity::text \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name::text LIKE $1 || '%'",
    )
    .bind(prefix)
    .fetch_all(p)
    .await
    .expect("the catalog query");
    for c in cols {
        let data_type: String = c.get(2);
        let numeric = data_type == "numeric";
        let identity = c.get::<String, _>(8) == "YES";
        out.push(format!(
            "column {}.{} {}({:?}, {:?}) nullable={} default={}",
            c.get::<String, _>(0),
            c.get::<String, _>(1),
            data_type,
            c.get::<Option<i32>, _>(3),
            numeric.then(|| (c.get::<Option<i32>, _>(4), c.get::<Option<i32>, _>(5))),
            c.get::<String, _>(6),
            if identity {
                "auto".into()
            } else {
                pg_default(c.get(7))
            },
        ));
    }
    let constraints = sqlx::query(
        "SELECT c.conrelid::regclass::text, c.contype::text, \
         (SELECT string_agg(a.attname::text, ', ' ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n) \
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum), \
         c.confrelid::regclass::text, \
         (SELECT string_agg(a.attname::text, ', ') FROM unnest(c.confkey) k(attnum) \
          JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) \
         FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
         WHERE t.relnamespace = current_schema()::regnamespace AND t.relname::text LIKE $1 || '%' \
         AND c.contype IN ('u', 'f', 'p')",
    )
    .bind(prefix)
    .fetch_all(p)
    .await
    .expect("the catalog query");
    for c in constraints {
        let table: String = c.get(0);
        let cols: String = c.get(2);
        match c.get::<String, _>(1).as_str() {
            "u" => out.push(format!("unique {table} ({cols})")),
            "p" => out.push(format!("primary {table} ({cols})")),
            _ => out.push(format!(
                "reference {table}.{cols} -> {}.{}",
                c.get::<String, _>(3),
                c.get::<String, _>(4)
            )),
        }
    }
    let indexes = sqlx::query(
        "SELECT t.relname::text, \
         (SELECT string_agg(a.attname::text, ', ' ORDER BY k.n) FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n) \
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) \
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
         WHERE t.relnamespace = current_schema()::regnamespace AND t.relname::text LIKE $1 || '%' \
         AND NOT i.indisunique AND NOT i.indisprimary",
    )
    .bind(prefix)
    .fetch_all(p)
    .await
    .expect("the catalog query");
    for i in indexes {
        out.push(format!(
            "index {} ({})",
            i.get::<String, _>(0),
            i.get::<String, _>(1)
        ));
    }
    out
}

async fn mysql(p: &sqlx::MySqlPool, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let like = format!("{prefix}%");
    let cols = sqlx::query(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
         CAST(IS_NULLABLE AS CHAR), CAST(COLUMN_DEFAULT AS CHAR), CAST(EXTRA AS CHAR), \
         CAST(COLLATION_NAME AS CHAR), CAST(COLUMN_KEY AS CHAR) \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE ?",
    )
    .bind(&like)
    .fetch_all(p)
    .await
    .expect("the catalog query");
    for c in cols {
        let default: Option<String> = c.get(4);
        let default = default.filter(|d| d != "NULL");
        out.push(format!(
            "column {}.{} {} nullable={} default={:?} extra={} collation={:?} primary={}",
            c.get::<String, _>(0),
            c.get::<String, _>(1),
            c.get::<String, _>(2),
            c.get::<String, _>(3),
            default,
            c.get::<String, _>(5),
            c.get::<Option<String>, _>(6),
            c.get::<String, _>(7) == "PRI",
        ));
    }
    let indexes = sqlx::query(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR), MAX(NON_UNIQUE), \
         CAST(GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ', ') AS CHAR) \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE ? \
         AND INDEX_NAME <> 'PRIMARY' GROUP BY TABLE_NAME, INDEX_NAME",
    )
    .bind(&like)
    .fetch_all(p)
    .await
    .expect("the catalog query");
    for i in indexes {
        let kind = if i.get::<i64, _>(2) == 0 {
            "unique"
        } else {
            "index"
        };
        out.push(format!(
            "{kind} {} ({})",
            i.get::<String, _>(0),
            i.get::<String, _>(3)
        ));
    }
    let fks = sqlx::query(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), \
         CAST(REFERENCED_TABLE_NAME AS CHAR), CAST(REFERENCED_COLUMN_NAME AS CHAR) \
         FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_NAME LIKE ? AND REFERENCED_TABLE_NAME IS NOT NULL",
    )
    .bind(&like)
    .fetch_all(p)
    .await
    .expect("the catalog query");
    for f in fks {
        out.push(format!(
            "reference {}.{} -> {}.{}",
            f.get::<String, _>(0),
            f.get::<String, _>(1),
            f.get::<String, _>(2),
            f.get::<String, _>(3)
        ));
    }
    let tables = sqlx::query(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(TABLE_COLLATION AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE ?",
    )
    .bind(&like)
    .fetch_all(p)
    .await
    .expect("the catalog query");
    for t in tables {
        out.push(format!(
            "collation {} {}",
            t.get::<String, _>(0),
            t.get::<String, _>(1)
        ));
    }
    out
}
