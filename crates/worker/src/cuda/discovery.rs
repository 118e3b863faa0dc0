//! Finding and opening the CUDA libraries the backend loads itself
//! (cuBLASLt and NCCL).
//!
//! Order of the search, first hit wins:
//! 1. an explicit file: `MFUBENCH_CUBLASLT_LIB` / `MFUBENCH_NCCL_LIB`;
//! 2. the folders of `MFUBENCH_CUDA_LIB_DIR` (colon-separated, e.g. pip's
//!    `site-packages/nvidia/cublas/lib:site-packages/nvidia/nccl/lib`), in
//!    order, each scanned for the versioned names, newest usable major first;
//! 3. the folders of `LD_LIBRARY_PATH`, scanned the same way;
//! 4. the system loader with bare names (ld.so.cache, `/etc/ld.so.conf.d`),
//!    newest usable major first, then the unversioned development name.
//!
//! "Usable": cuBLAS 13 needs a CUDA 13 driver, so a driver that reports
//! 12.x never gets `libcublasLt.so.13` while a `.so.12` exists; when only a
//! too-new library exists the error says so. NCCL keeps soname `.so.2`
//! across CUDA versions.
//!
//! Everything here except [`open_first`] is pure (paths and strings) so that
//! the choice is tested against fake library folders.

use std::path::{Path, PathBuf};

/// Colon-separated folders searched before the system loader.
pub const LIB_DIR_VAR: &str = "MFUBENCH_CUDA_LIB_DIR";

/// A library the backend opens itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibSpec {
    /// Human name for messages.
    pub name: &'static str,
    /// Development file name, e.g. `libcublasLt.so`; versioned names append
    /// `.<major>`.
    pub stem: &'static str,
    /// Sonames majors this build can use, newest first.
    pub majors: &'static [u32],
    /// Variable naming one explicit file.
    pub file_var: &'static str,
    /// Whether a major needs a driver of at least that CUDA major
    /// (true for cuBLAS, whose major is the CUDA major).
    pub major_is_cuda_major: bool,
    /// Where the library usually comes from, for the error message.
    pub install_hint: &'static str,
}

/// cuBLASLt (CUDA 12 and CUDA 13 installs).
pub const CUBLASLT: LibSpec = LibSpec {
    name: "cuBLASLt",
    stem: "libcublasLt.so",
    majors: &[13, 12],
    file_var: "MFUBENCH_CUBLASLT_LIB",
    major_is_cuda_major: true,
    install_hint: "the CUDA toolkit's lib64, or pip's nvidia-cublas-cu12 / nvidia-cublas (CUDA 13) under site-packages/nvidia/*/lib",
};

/// NCCL (runtime-only installs ship `libnccl.so.2` without `libnccl.so`).
pub const NCCL: LibSpec = LibSpec {
    name: "NCCL",
    stem: "libnccl.so",
    majors: &[2],
    file_var: "MFUBENCH_NCCL_LIB",
    major_is_cuda_major: false,
    install_hint: "the libnccl2 package, or pip's nvidia-nccl-cu12 / nvidia-nccl-cu13 under site-packages/nvidia/nccl/lib",
};

/// The environment the search reads, captured so tests can fake it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibEnv {
    /// `MFUBENCH_*_LIB` for the library being searched.
    pub explicit_file: Option<PathBuf>,
    /// `MFUBENCH_CUDA_LIB_DIR`, split.
    pub lib_dirs: Vec<PathBuf>,
    /// `LD_LIBRARY_PATH`, split.
    pub ld_library_path: Vec<PathBuf>,
}

impl LibEnv {
    /// Reads the process environment for `spec`.
    pub fn from_process(spec: &LibSpec) -> LibEnv {
        let split = |v: Option<std::ffi::OsString>| -> Vec<PathBuf> {
            v.map(|s| {
                std::env::split_paths(&s)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default()
        };
        LibEnv {
            explicit_file: std::env::var_os(spec.file_var)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            lib_dirs: split(std::env::var_os(LIB_DIR_VAR)),
            ld_library_path: split(std::env::var_os("LD_LIBRARY_PATH")),
        }
    }
}

/// One thing to hand to the dynamic loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// A file found on disk.
    Path(PathBuf),
    /// A bare soname for the system loader's own search.
    Name(String),
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Candidate::Path(p) => write!(f, "{}", p.display()),
            Candidate::Name(n) => f.write_str(n),
        }
    }
}

/// Why a library could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Nothing loadable was found.
    #[error("cannot load {name}: tried {tried}. {hint}")]
    NotFound {
        /// Library name.
        name: &'static str,
        /// What was tried, with each loader error.
        tried: String,
        /// What to set.
        hint: String,
    },
    /// Only versions the driver cannot run were found.
    #[error("{name}: found only {found}, which needs a CUDA {major} driver, but the driver supports CUDA {driver_major}; install the CUDA {driver_major} build ({install}) and point {var} at its folder")]
    TooNew {
        /// Library name.
        name: &'static str,
        /// The files found.
        found: String,
        /// Their major.
        major: u32,
        /// The driver's CUDA major.
        driver_major: u32,
        /// Where to get another build.
        install: &'static str,
        /// The variable to set.
        var: &'static str,
    },
    /// The library opened but lacks a function.
    #[error("{name} ({path}) has no symbol {symbol}: {reason}")]
    Symbol {
        /// Library name.
        name: &'static str,
        /// The file or soname opened.
        path: String,
        /// Missing symbol.
        symbol: &'static str,
        /// Loader message.
        reason: String,
    },
}

/// The versioned file name of `spec` for `major`.
pub fn versioned_name(spec: &LibSpec, major: u32) -> String {
    format!("{}.{major}", spec.stem)
}

/// Majors of `spec` the driver can run, newest first (`driver_major` None:
/// unknown, all of them).
pub fn usable_majors(spec: &LibSpec, driver_major: Option<u32>) -> Vec<u32> {
    spec.majors
        .iter()
        .copied()
        .filter(|m| !spec.major_is_cuda_major || driver_major.is_none_or(|d| *m <= d))
        .collect()
}

/// Files of `spec` present in `dir`, preferred first: usable versioned
/// names newest first, then the unversioned name.
pub fn files_in_dir(dir: &Path, spec: &LibSpec, driver_major: Option<u32>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = usable_majors(spec, driver_major)
        .into_iter()
        .map(|m| dir.join(versioned_name(spec, m)))
        .filter(|p| p.is_file())
        .collect();
    let plain = dir.join(spec.stem);
    if plain.is_file() {
        out.push(plain);
    }
    out
}

/// Every candidate, in the order they are tried, or [`DiscoveryError::TooNew`]
/// when the folders hold only versions the driver cannot run and the system
/// loader is the only option left.
pub fn candidates(
    spec: &LibSpec,
    env: &LibEnv,
    driver_major: Option<u32>,
) -> Result<Vec<Candidate>, DiscoveryError> {
    let mut out = Vec::new();
    if let Some(f) = &env.explicit_file {
        out.push(Candidate::Path(f.clone()));
    }
    let mut too_new = Vec::new();
    for dir in env.lib_dirs.iter().chain(&env.ld_library_path) {
        for f in files_in_dir(dir, spec, driver_major) {
            let c = Candidate::Path(f);
            if !out.contains(&c) {
                out.push(c);
            }
        }
        for m in spec.majors {
            let p = dir.join(versioned_name(spec, *m));
            if !usable_majors(spec, driver_major).contains(m) && p.is_file() {
                too_new.push((p, *m));
            }
        }
    }
    if out.is_empty() && !too_new.is_empty() && driver_major.is_some() {
        let found = too_new
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(DiscoveryError::TooNew {
            name: spec.name,
            found,
            major: too_new[0].1,
            driver_major: driver_major.unwrap_or_default(),
            install: spec.install_hint,
            var: LIB_DIR_VAR,
        });
    }
    for m in usable_majors(spec, driver_major) {
        out.push(Candidate::Name(versioned_name(spec, m)));
    }
    out.push(Candidate::Name(spec.stem.to_string()));
    Ok(out)
}

/// The message telling the user what to set.
pub fn hint(spec: &LibSpec) -> String {
    format!(
        "Install {} ({}) or, if it is installed, set {}=<folder holding {}> (colon-separated, several allowed), {}=<file>, or LD_LIBRARY_PATH",
        spec.name,
        spec.install_hint,
        LIB_DIR_VAR,
        versioned_name(spec, spec.majors[0]),
        spec.file_var
    )
}

/// An opened library and what was opened.
pub struct Opened {
    /// The library.
    pub lib: libloading::Library,
    /// The path or soname that loaded.
    pub what: String,
}

/// Opens the first candidate that loads.
pub fn open_first(spec: &LibSpec, cands: &[Candidate]) -> Result<Opened, DiscoveryError> {
    let mut tried = Vec::new();
    for c in cands {
        let what = c.to_string();
        // SAFETY: opening a shared library runs its initialisers. The
        // candidates are NVIDIA's cuBLASLt / NCCL builds chosen by name; their
        // initialisers only set up internal state and are safe to run from
        // any thread.
        let r = unsafe {
            match c {
                Candidate::Path(p) => libloading::Library::new(p),
                Candidate::Name(n) => libloading::Library::new(n),
            }
        };
        match r {
            Ok(lib) => return Ok(Opened { lib, what }),
            Err(e) => tried.push(format!("{what} ({})", short_reason(&e.to_string()))),
        }
    }
    Err(DiscoveryError::NotFound {
        name: spec.name,
        tried: tried.join("; "),
        hint: hint(spec),
    })
}

/// The useful tail of a dlopen message.
fn short_reason(msg: &str) -> String {
    msg.rsplit(": ").next().unwrap_or(msg).trim().to_string()
}

/// Finds and opens `spec` from the process environment.
pub fn open(spec: &LibSpec, driver_major: Option<u32>) -> Result<Opened, DiscoveryError> {
    let env = LibEnv::from_process(spec);
    let cands = candidates(spec, &env, driver_major)?;
    open_first(spec, &cands)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), b"not a library").unwrap();
    }

    fn env(dirs: &[&Path]) -> LibEnv {
        LibEnv {
            explicit_file: None,
            lib_dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
            ld_library_path: vec![],
        }
    }

    #[test]
    fn picks_so13_with_a_cuda13_driver_and_so12_with_a_cuda12_driver() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "libcublasLt.so.12");
        touch(d.path(), "libcublasLt.so.13");
        let c13 = candidates(&CUBLASLT, &env(&[d.path()]), Some(13)).unwrap();
        assert_eq!(
            c13[0],
            Candidate::Path(d.path().join("libcublasLt.so.13")),
            "{c13:?}"
        );
        assert_eq!(c13[1], Candidate::Path(d.path().join("libcublasLt.so.12")));
        let c12 = candidates(&CUBLASLT, &env(&[d.path()]), Some(12)).unwrap();
        assert_eq!(c12[0], Candidate::Path(d.path().join("libcublasLt.so.12")));
        assert!(!c12.iter().any(|c| c.to_string().ends_with(".so.13")));
    }

    #[test]
    fn only_so13_with_a_cuda12_driver_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "libcublasLt.so.13");
        let e = candidates(&CUBLASLT, &env(&[d.path()]), Some(12)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DiscoveryError::TooNew { .. }));
        assert!(msg.contains("libcublasLt.so.13"), "{msg}");
        assert!(msg.contains("CUDA 13 driver"), "{msg}");
        assert!(msg.contains(LIB_DIR_VAR), "{msg}");
    }

    #[test]
    fn only_so12_is_found_with_any_driver() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "libcublasLt.so.12");
        for drv in [Some(12), Some(13), None] {
            let c = candidates(&CUBLASLT, &env(&[d.path()]), drv).unwrap();
            assert_eq!(c[0], Candidate::Path(d.path().join("libcublasLt.so.12")));
        }
    }

    #[test]
    fn folders_are_searched_in_order_and_the_explicit_file_first() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        touch(a.path(), "libnccl.so");
        touch(b.path(), "libnccl.so.2");
        let mut e = env(&[a.path(), b.path()]);
        let c = candidates(&NCCL, &e, Some(12)).unwrap();
        assert_eq!(c[0], Candidate::Path(a.path().join("libnccl.so")));
        assert_eq!(c[1], Candidate::Path(b.path().join("libnccl.so.2")));
        // Then the system loader: the runtime soname before the dev name.
        assert_eq!(c[2], Candidate::Name("libnccl.so.2".into()));
        assert_eq!(c[3], Candidate::Name("libnccl.so".into()));
        e.explicit_file = Some(PathBuf::from("/opt/x/libnccl.so.2"));
        let c = candidates(&NCCL, &e, Some(12)).unwrap();
        assert_eq!(c[0], Candidate::Path("/opt/x/libnccl.so.2".into()));
    }

    #[test]
    fn ld_library_path_folders_are_scanned_too() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "libcublasLt.so.13");
        let e = LibEnv {
            ld_library_path: vec![d.path().to_path_buf()],
            ..Default::default()
        };
        let c = candidates(&CUBLASLT, &e, Some(13)).unwrap();
        assert_eq!(c[0], Candidate::Path(d.path().join("libcublasLt.so.13")));
    }

    #[test]
    fn no_files_anywhere_falls_back_to_system_names_and_fails_with_a_hint() {
        let d = tempfile::tempdir().unwrap();
        let c = candidates(&CUBLASLT, &env(&[d.path()]), Some(12)).unwrap();
        assert_eq!(
            c,
            vec![
                Candidate::Name("libcublasLt.so.12".into()),
                Candidate::Name("libcublasLt.so".into())
            ]
        );
        // Empty fake files fail to load; the message names the files and
        // the variables to set.
        touch(d.path(), "libcublasLt.so.12");
        let c = candidates(&CUBLASLT, &env(&[d.path()]), Some(12)).unwrap();
        let err = match open_first(&CUBLASLT, &c) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a fake library must not load"),
        };
        assert!(err.contains("libcublasLt.so.12"), "{err}");
        assert!(err.contains(LIB_DIR_VAR), "{err}");
        assert!(err.contains("MFUBENCH_CUBLASLT_LIB"), "{err}");
        assert!(err.contains("LD_LIBRARY_PATH"), "{err}");
    }

    #[test]
    fn unknown_driver_tries_every_major() {
        assert_eq!(usable_majors(&CUBLASLT, None), vec![13, 12]);
        assert_eq!(usable_majors(&CUBLASLT, Some(12)), vec![12]);
        assert_eq!(usable_majors(&NCCL, Some(11)), vec![2]);
    }
}
