//! Embeds the migrations: one list per backend of every `migrations/<backend>/NNNN_name.sql`,
//! so that a migration `makemigrations` writes is in the next build with no list to edit.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    println!("cargo::rerun-if-changed={}", root.display());
    let mut out = String::new();
    for (konst, name) in [
        ("SQLITE", "sqlite"),
        ("POSTGRES", "postgres"),
        ("MYSQL", "mysql"),
    ] {
        let dir = root.join(name);
        println!("cargo::rerun-if-changed={}", dir.display());
        let mut files: Vec<(i64, String, String)> = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("the migrations directory") {
            let path = entry.expect("a directory entry").path();
            let file = path.file_name().map(|f| f.to_string_lossy().into_owned());
            let Some(rest) = file.as_deref().and_then(|f| f.strip_suffix(".sql")) else {
                continue;
            };
            let Some((version, description)) = rest.split_once('_') else {
                continue;
            };
            let Ok(version) = version.parse::<i64>() else {
                continue;
            };
            files.push((
                version,
                description.replace('_', " "),
                path.display().to_string(),
            ));
        }
        files.sort();
        out.push_str(&format!(
            "/// `migrations/{name}`: (version, description, SQL), oldest first.\n\
             const {konst}: &[(i64, &str, &str)] = &[\n"
        ));
        for (version, description, path) in files {
            out.push_str(&format!(
                "    ({version}, {description:?}, include_str!({path:?})),\n"
            ));
        }
        out.push_str("];\n");
    }
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("migrations.rs"), out)
        .expect("write the migrations list");
}
