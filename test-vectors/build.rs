//! Generates one test per vector file in `data/`, so a new file cannot go unchecked.

use std::fmt::Write;

fn main() {
    println!("cargo::rerun-if-changed=data");
    let mut names: Vec<String> = std::fs::read_dir("data")
        .expect("data/ exists")
        .map(|entry| {
            entry
                .expect("readable entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    let mut tests = String::new();
    for name in names {
        let stem = name.trim_end_matches(".json").replace(['-', '.'], "_");
        writeln!(
            tests,
            "#[test]\nfn {stem}() {{\n    check_file({name:?});\n}}\n"
        )
        .expect("write");
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("vector_file_tests.rs"), tests).expect("write generated tests");
}
