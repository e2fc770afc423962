//! The unsafe audit: `unsafe` only in the modules that need it, each block
//! after a `// SAFETY:` comment; every other crate and target denies it (the
//! workspace lint `unsafe_code = "deny"`, which this test also checks).
//! `vendor/` is third-party code (h2, patched: `vendor/h2/PATCHED.md`),
//! audited as the registry's crates are, not by this test.

use std::path::{Path, PathBuf};

/// The only files allowed to hold `unsafe` code: the file-system seam, and the
/// benchmark's LMDB peer (heed makes opening an environment `unsafe`; built
/// only with `--features peers`).
const ALLOWED: [&str; 3] = ["fs/src/map.rs", "fs/src/real.rs", "benches/src/peers.rs"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy();
        if p.is_dir() {
            let skip = ["target", "corpus", "artifacts", "vendor"];
            if !skip.contains(&name.as_ref()) && !name.starts_with('.') {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

#[test]
fn unsafe_code_lives_only_in_the_fs_seam_with_safety_comments() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    rust_files(root, &mut files);
    assert!(files.len() > 50, "found the sources ({})", files.len());
    let mut blocks = 0;
    for f in &files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if rel == "tests/tests/unsafe_audit.rs" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let code = l.split("//").next().unwrap();
            let is_unsafe = code.contains("unsafe {") || code.contains("unsafe fn") || code.contains("unsafe impl");
            let allows = code.contains("allow(unsafe_code)");
            if !(is_unsafe || allows) {
                continue;
            }
            assert!(ALLOWED.contains(&rel.as_str()), "{rel}:{}: unsafe outside {ALLOWED:?}", i + 1);
            if is_unsafe {
                blocks += 1;
                let before = lines[..i].iter().rev().take_while(|l| l.trim_start().starts_with("//"));
                assert!(
                    before.into_iter().any(|l| l.contains("SAFETY:")),
                    "{rel}:{}: unsafe block without a // SAFETY: comment",
                    i + 1
                );
            }
        }
    }
    assert_eq!(
        blocks, 6,
        "the memory map, its MADV_DONTNEED, the fcntl lock, sync_file_range, a thread's lowered priority (setpriority) \
         and the LMDB open of the benchmark's peer"
    );
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("unsafe_code = \"deny\""), "workspace lint");
    for member in [
        "fs",
        "proto",
        "storage",
        "schema",
        "mvcc",
        "wal",
        "snapshot",
        "raft-node",
        "cli",
        "benches",
        "tests",
        "testkit",
    ] {
        let m = std::fs::read_to_string(root.join(member).join("Cargo.toml")).unwrap();
        assert!(m.contains("[lints]\nworkspace = true"), "{member} uses the workspace lints");
    }
}
