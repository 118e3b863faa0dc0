//! Generates Rust declarations from NVIDIA's real headers (cuda.h,
//! cublasLt.h, nccl.h, nvml.h), fetched by `ci/fetch-nvidia-headers.sh`.
//! Every function the stand-ins export is checked against these
//! declarations at compile time (`exports!` in src/lib.rs), and every enum
//! value they use comes from them.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=MFUBENCH_NVIDIA_INCLUDE");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let default = manifest.join("../../target/nvidia-headers/include");
    let inc = std::env::var_os("MFUBENCH_NVIDIA_INCLUDE")
        .map(PathBuf::from)
        .unwrap_or(default);
    if !inc.join("cuda.h").is_file() {
        panic!(
            "mfubench-simgpu: NVIDIA's headers are not at {} — run ci/fetch-nvidia-headers.sh (or set MFUBENCH_NVIDIA_INCLUDE to a folder holding cuda.h, cublasLt.h, nccl.h and nvml.h)",
            inc.display()
        );
    }
    println!("cargo:rerun-if-changed={}", inc.join("cuda.h").display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let b = bindgen::Builder::default()
        .header_contents(
            "all.h",
            "#include <cuda.h>\n#include <cublasLt.h>\n#include <nccl.h>\n#include <nvml.h>\n",
        )
        .clang_arg(format!("-I{}", inc.display()))
        .allowlist_function("cu(Init|Driver|Device|Ctx|Stream|Event|Mem|GetError).*")
        .allowlist_function("cublasLt.*")
        .allowlist_function("nccl.*")
        .allowlist_function("nvml.*")
        .allowlist_type("CU.*|cublas.*|cuda.*|nccl.*|nvml.*")
        .allowlist_var("CU.*|CUBLAS.*|NCCL.*|NVML.*|nvml.*|CUDA_VERSION")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen could not read NVIDIA's headers");
    b.write_to_file(out.join("nvidia.rs")).unwrap();
}
