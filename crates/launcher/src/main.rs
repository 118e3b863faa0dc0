//! `mfubench`: the command line (see the library, `mfubench_launcher`).

fn main() -> std::process::ExitCode {
    mfubench_launcher::main()
}
