//! Finding and opening the CUDA libraries the backend loads itself
//! (cuBLASLt and NCCL).
//!
//! Order of the search, first hit wins:
//! 1. an explicit file: `MFUBENCH_CUBLASLT_LIB` / `MFUBENCH_NCCL_LIB`;
//! 2. the folders of `MFUBENCH_CUDA_LIB_DIR` (colon-separated, e.g. pip's
//!    `site-packages/nvidia/cublas/lib:site-packages/nvidia/nccl/lib`), in
//!    order, each scanned for the versioned names, newest usable major first;
//! 3. the folders of `LD_LIBRARY_PATH`, scanned the same way;
//! 4. pip's NVIDIA wheels: `nvidia/{cu13,cu12,cublas,nccl,cuda_runtime}/lib`
//!    under the Python package folders of `$VIRTUAL_ENV`, `$CONDA_PREFIX`
//!    and the `python3` first on `PATH` (a PyTorch-only machine has its
//!    CUDA libraries nowhere else), see [`site_package_dirs`];
//! 5. the system loader with bare names (ld.so.cache, `/etc/ld.so.conf.d`),
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

/// Sub-folders of `site-packages/nvidia` that pip's CUDA wheels install
/// their libraries into: `cu13` (CUDA 13 wheels: nvidia-cublas 13,
/// nvidia-cuda-runtime 13, ...), `cu12`, and the per-library folders of the
/// `-cu12` wheels and of nvidia-nccl-cu13 (`nccl`).
pub const PIP_NVIDIA_SUBDIRS: &[&str] = &["cu13", "cu12", "cublas", "nccl", "cuda_runtime"];

/// The environment the search reads, captured so tests can fake it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibEnv {
    /// `MFUBENCH_*_LIB` for the library being searched.
    pub explicit_file: Option<PathBuf>,
    /// `MFUBENCH_CUDA_LIB_DIR`, split.
    pub lib_dirs: Vec<PathBuf>,
    /// `LD_LIBRARY_PATH`, split.
    pub ld_library_path: Vec<PathBuf>,
    /// Python package folders (`site-packages`, `dist-packages`) whose
    /// `nvidia/*/lib` folders are scanned after `LD_LIBRARY_PATH`.
    pub site_packages: Vec<PathBuf>,
}

/// Where Python environments live, as read from the process environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonEnv {
    /// `$VIRTUAL_ENV`.
    pub virtual_env: Option<PathBuf>,
    /// `$CONDA_PREFIX`.
    pub conda_prefix: Option<PathBuf>,
    /// `$PATH`, split.
    pub path: Vec<PathBuf>,
    /// `$HOME` (for pip's `--user` folder).
    pub home: Option<PathBuf>,
}

impl PythonEnv {
    /// Reads the process environment.
    pub fn from_process() -> PythonEnv {
        let var = |n: &str| {
            std::env::var_os(n)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        };
        PythonEnv {
            virtual_env: var("VIRTUAL_ENV"),
            conda_prefix: var("CONDA_PREFIX"),
            path: std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
            home: var("HOME"),
        }
    }
}

/// Python package folders of an installation prefix, as CPython's
/// `site.getsitepackages()` lists them: `lib/pythonX.Y/site-packages`
/// (venv, conda, python.org builds; `lib64` too), and Debian's
/// `local/lib/pythonX.Y/dist-packages` and `lib/python3/dist-packages`.
/// Only folders that exist, `pythonX.Y` newest first.
pub fn prefix_site_packages(prefix: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (lib, leaf) in [
        ("lib", "site-packages"),
        ("lib64", "site-packages"),
        ("local/lib", "dist-packages"),
        ("lib", "dist-packages"),
    ] {
        let Ok(entries) = std::fs::read_dir(prefix.join(lib)) else {
            continue;
        };
        // (minor version, folder); "python3" itself (Debian's
        // lib/python3/dist-packages) counts as minor 0 and sorts last.
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let ver = name.strip_prefix("python3")?;
                let minor = match ver.strip_prefix('.') {
                    Some(m) => m.parse().ok()?,
                    None if ver.is_empty() => 0,
                    None => return None,
                };
                Some((minor, e.path().join(leaf)))
            })
            .filter(|(_, p)| p.is_dir())
            .collect();
        versions.sort_by_key(|(minor, _)| std::cmp::Reverse(*minor));
        out.extend(versions.into_iter().map(|(_, p)| p));
    }
    out
}

/// Python package folders that may hold pip's NVIDIA wheels, in search
/// order: `$VIRTUAL_ENV`'s, `$CONDA_PREFIX`'s, those of the prefix of the
/// first `python3` on `PATH` (`<prefix>/bin/python3`; a venv's prefix is
/// its own folder, so its symlinked interpreter is not followed), then
/// pip's `--user` folder (`~/.local`).
///
/// This mirrors `site.getsitepackages()` from the file system instead of
/// running `python3`: the search runs inside MPI ranks, where starting a
/// child process (fork) is unsafe with some interconnects' registered memory.
pub fn site_package_dirs(py: &PythonEnv) -> Vec<PathBuf> {
    let mut prefixes: Vec<PathBuf> = Vec::new();
    prefixes.extend(py.virtual_env.iter().cloned());
    prefixes.extend(py.conda_prefix.iter().cloned());
    if let Some(bin) = py
        .path
        .iter()
        .find(|d| !d.as_os_str().is_empty() && d.join("python3").is_file())
    {
        if let Some(prefix) = bin.parent() {
            prefixes.push(prefix.to_path_buf());
        }
    }
    prefixes.extend(py.home.iter().map(|h| h.join(".local")));
    let mut out: Vec<PathBuf> = Vec::new();
    for p in prefixes {
        for d in prefix_site_packages(&p) {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// The `nvidia/*/lib` folders of pip's wheels under `site_packages`, in
/// [`PIP_NVIDIA_SUBDIRS`] order per package folder; only existing ones.
pub fn pip_nvidia_lib_dirs(site_packages: &[PathBuf]) -> Vec<PathBuf> {
    site_packages
        .iter()
        .flat_map(|sp| {
            PIP_NVIDIA_SUBDIRS
                .iter()
                .map(move |sub| sp.join("nvidia").join(sub).join("lib"))
        })
        .filter(|d| d.is_dir())
        .collect()
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
            site_packages: site_package_dirs(&PythonEnv::from_process()),
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
    let pip_dirs = pip_nvidia_lib_dirs(&env.site_packages);
    for dir in env
        .lib_dirs
        .iter()
        .chain(&env.ld_library_path)
        .chain(&pip_dirs)
    {
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
        "Install {} ({}) or, if it is installed, set {}=<folder holding {}> (colon-separated, several allowed), {}=<file>, or LD_LIBRARY_PATH (pip's nvidia/*/lib folders of $VIRTUAL_ENV, $CONDA_PREFIX and the python3 on PATH were searched)",
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
    /// Its name in messages ("cuBLASLt", "NCCL").
    pub name: &'static str,
}

impl Opened {
    /// The one symbol loader of every library we open ourselves: entry
    /// point `symbol` as the function-pointer type `T`, or an error naming
    /// the library, the file and the symbol.
    ///
    /// # Safety
    /// `T` must be the symbol's C signature (from the library's header), and
    /// the pointer may be used only while the library stays loaded (the
    /// callers keep it for the life of the process).
    pub unsafe fn symbol<T: Copy>(&self, symbol: &'static str) -> Result<T, DiscoveryError> {
        let c = format!("{symbol}\0");
        // SAFETY: the caller's contract (signature and lifetime).
        match unsafe { self.lib.get::<T>(c.as_bytes()) } {
            Ok(s) => Ok(*s),
            Err(e) => Err(DiscoveryError::Symbol {
                name: self.name,
                path: self.what.clone(),
                symbol,
                reason: e.to_string(),
            }),
        }
    }

    /// An entry point that older versions lack: None when absent.
    ///
    /// # Safety
    /// As [`Opened::symbol`].
    pub unsafe fn optional<T: Copy>(&self, symbol: &'static str) -> Option<T> {
        // SAFETY: the caller's contract.
        unsafe { self.symbol(symbol) }.ok()
    }
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
            Ok(lib) => {
                return Ok(Opened {
                    lib,
                    what,
                    name: spec.name,
                })
            }
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
            site_packages: vec![],
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

    /// A fake Python installation: `<root>/<rel>/nvidia/<sub>/lib/<file>`
    /// for each `(sub, file)`; returns the package folder.
    fn fake_site(root: &Path, rel: &str, libs: &[(&str, &str)]) -> PathBuf {
        let sp = root.join(rel);
        for (sub, file) in libs {
            let d = sp.join("nvidia").join(sub).join("lib");
            std::fs::create_dir_all(&d).unwrap();
            touch(&d, file);
        }
        std::fs::create_dir_all(&sp).unwrap();
        sp
    }

    /// A `bin/python3` under `prefix` (a file is all the search looks for).
    fn fake_python(prefix: &Path) -> PathBuf {
        let bin = prefix.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        touch(&bin, "python3");
        bin
    }

    #[test]
    fn pytorch_cuda13_venv_on_path_is_found_without_any_variable() {
        // The layout of a PyTorch cu130 venv: nvidia-cublas 13 in
        // nvidia/cu13/lib, nvidia-nccl-cu13 in nvidia/nccl/lib; found via
        // the python3 first on PATH, no VIRTUAL_ENV set.
        let root = tempfile::tempdir().unwrap();
        let venv = root.path().join("opt/torch/.venv");
        let sp = fake_site(
            &venv,
            "lib/python3.12/site-packages",
            &[
                ("cu13", "libcublasLt.so.13"),
                ("cu13", "libcudart.so.13"),
                ("nccl", "libnccl.so.2"),
            ],
        );
        let empty_bin = root.path().join("usr/bin");
        std::fs::create_dir_all(&empty_bin).unwrap();
        let py = PythonEnv {
            path: vec![empty_bin, fake_python(&venv), "/usr/bin".into()],
            ..Default::default()
        };
        let dirs = site_package_dirs(&py);
        assert_eq!(dirs, vec![sp.clone()]);
        let e = LibEnv {
            site_packages: dirs,
            ..Default::default()
        };
        let lt = candidates(&CUBLASLT, &e, Some(13)).unwrap();
        assert_eq!(
            lt[0],
            Candidate::Path(sp.join("nvidia/cu13/lib/libcublasLt.so.13"))
        );
        let nccl = candidates(&NCCL, &e, Some(13)).unwrap();
        assert_eq!(
            nccl[0],
            Candidate::Path(sp.join("nvidia/nccl/lib/libnccl.so.2"))
        );
        // With a CUDA 12 driver the .so.13 wheel is unusable: a clear error.
        let err = candidates(&CUBLASLT, &e, Some(12)).unwrap_err().to_string();
        assert!(err.contains("nvidia/cu13/lib/libcublasLt.so.13"), "{err}");
    }

    #[test]
    fn cuda12_wheels_in_virtual_env_and_conda_are_found_in_that_order() {
        let root = tempfile::tempdir().unwrap();
        let venv = root.path().join("venv");
        let conda = root.path().join("conda");
        let v = fake_site(
            &venv,
            "lib/python3.11/site-packages",
            &[("cublas", "libcublasLt.so.12")],
        );
        let c = fake_site(
            &conda,
            "lib/python3.10/site-packages",
            &[("cublas", "libcublasLt.so.12"), ("nccl", "libnccl.so.2")],
        );
        let py = PythonEnv {
            virtual_env: Some(venv),
            conda_prefix: Some(conda),
            ..Default::default()
        };
        let e = LibEnv {
            site_packages: site_package_dirs(&py),
            ..Default::default()
        };
        let lt = candidates(&CUBLASLT, &e, Some(12)).unwrap();
        assert_eq!(
            lt[..2],
            [
                Candidate::Path(v.join("nvidia/cublas/lib/libcublasLt.so.12")),
                Candidate::Path(c.join("nvidia/cublas/lib/libcublasLt.so.12")),
            ]
        );
        // Then the system loader.
        assert_eq!(lt[2], Candidate::Name("libcublasLt.so.12".into()));
        let nccl = candidates(&NCCL, &e, None).unwrap();
        assert_eq!(
            nccl[0],
            Candidate::Path(c.join("nvidia/nccl/lib/libnccl.so.2"))
        );
    }

    #[test]
    fn explicit_folders_come_before_pip_wheels() {
        let root = tempfile::tempdir().unwrap();
        let sp = fake_site(
            root.path(),
            "venv/lib/python3.12/site-packages",
            &[("cu13", "libcublasLt.so.13")],
        );
        let mine = root.path().join("mine");
        std::fs::create_dir_all(&mine).unwrap();
        touch(&mine, "libcublasLt.so.13");
        let e = LibEnv {
            lib_dirs: vec![mine.clone()],
            site_packages: vec![sp.clone()],
            ..Default::default()
        };
        let c = candidates(&CUBLASLT, &e, Some(13)).unwrap();
        assert_eq!(c[0], Candidate::Path(mine.join("libcublasLt.so.13")));
        assert_eq!(
            c[1],
            Candidate::Path(sp.join("nvidia/cu13/lib/libcublasLt.so.13"))
        );
    }

    #[test]
    fn debian_dist_packages_and_user_site_are_searched() {
        let root = tempfile::tempdir().unwrap();
        let usr = root.path().join("usr");
        let local = fake_site(
            &usr,
            "local/lib/python3.11/dist-packages",
            &[("nccl", "libnccl.so.2")],
        );
        let home = root.path().join("home");
        let user = fake_site(
            &home,
            ".local/lib/python3.11/site-packages",
            &[("cublas", "libcublasLt.so.12")],
        );
        let py = PythonEnv {
            path: vec![fake_python(&usr)],
            home: Some(home),
            ..Default::default()
        };
        assert_eq!(site_package_dirs(&py), vec![local, user]);
    }

    #[test]
    fn newer_python_versions_come_first_and_missing_folders_are_skipped() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        for v in ["python3.9", "python3.12", "python3.10"] {
            std::fs::create_dir_all(p.join("lib").join(v).join("site-packages")).unwrap();
        }
        // A pythonX.Y folder without site-packages, and an unrelated one.
        std::fs::create_dir_all(p.join("lib/python3.13")).unwrap();
        std::fs::create_dir_all(p.join("lib/perl5/site-packages")).unwrap();
        let got: Vec<String> = prefix_site_packages(p)
            .iter()
            .map(|d| d.strip_prefix(p).unwrap().display().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "lib/python3.12/site-packages",
                "lib/python3.10/site-packages",
                "lib/python3.9/site-packages"
            ]
        );
        assert!(prefix_site_packages(&p.join("nowhere")).is_empty());
        assert!(pip_nvidia_lib_dirs(&[p.join("lib/python3.12/site-packages")]).is_empty());
    }
}
