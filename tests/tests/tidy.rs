//! Repository-wide rules no compiler checks: every Rust file opens with a `//!` comment
//! saying what it is for (rust-analyzer's tidy test).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() && name != "target" && !name.starts_with('.') {
            rust_files(&path, found);
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root");
    let mut files = Vec::new();
    for top in ["proto", "services", "tests", "bench"] {
        if root.join(top).is_dir() {
            rust_files(&root.join(top), &mut files);
        }
    }
    assert!(files.len() > 50, "only {} files found under {}", files.len(), root.display());
    let missing: Vec<_> = files
        .iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap_or_default().starts_with("//!"))
        .collect();
    assert!(missing.is_empty(), "files without a //! comment: {missing:#?}");
}
