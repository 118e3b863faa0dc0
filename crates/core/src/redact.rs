//! What of the environment and the command line may be written down, and
//! how secrets are kept out of run.json, printed commands and logs.
//!
//! The environment capture is an explicit allow-list: the names in
//! [`KNOWN_HARMLESS`] keep their values (with any credentials inside a URL
//! replaced). Other names of the families that shape a run (`NCCL_`,
//! `CUDA_`, `UCX_`, `SLURM_`, `OMPI_`) are kept with the value
//! [`REDACTED`], so a reader knows they were set; names that hold secrets by
//! construction (Open MPI's job key `OMPI_MCA_*precondition*`) are left out
//! entirely, as is everything else. Command lines: the value of
//! `-x NAME=VALUE` (mpirun's forward-with-value form) and URL credentials
//! anywhere are replaced.

use std::collections::BTreeMap;

/// What a redacted value reads as.
pub const REDACTED: &str = "<redacted>";

/// Families whose other variables are recorded by name only.
pub const FAMILIES: [&str; 5] = ["NCCL_", "CUDA_", "UCX_", "SLURM_", "OMPI_"];

/// Variables whose values are recorded: settings that explain a run's
/// numbers and hold nothing private.
pub const KNOWN_HARMLESS: &[&str] = &[
    "NCCL_DEBUG",
    "NCCL_DEBUG_SUBSYS",
    "NCCL_ALGO",
    "NCCL_PROTO",
    "NCCL_IB_HCA",
    "NCCL_IB_DISABLE",
    "NCCL_IB_GID_INDEX",
    "NCCL_NET_GDR_LEVEL",
    "NCCL_P2P_DISABLE",
    "NCCL_P2P_LEVEL",
    "NCCL_SHM_DISABLE",
    "NCCL_SOCKET_IFNAME",
    "NCCL_NVLS_ENABLE",
    "NCCL_CROSS_NIC",
    "NCCL_MIN_NCHANNELS",
    "NCCL_MAX_NCHANNELS",
    "NCCL_BUFFSIZE",
    "NCCL_NTHREADS",
    "NCCL_COLLNET_ENABLE",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "CUDA_DEVICE_MAX_CONNECTIONS",
    "CUDA_MODULE_LOADING",
    "CUDA_LAUNCH_BLOCKING",
    "UCX_TLS",
    "UCX_NET_DEVICES",
    "UCX_IB_GPU_DIRECT_RDMA",
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "SLURM_JOB_NODELIST",
    "SLURM_NODELIST",
    "SLURM_JOB_NUM_NODES",
    "SLURM_NNODES",
    "SLURM_NTASKS",
    "SLURM_NTASKS_PER_NODE",
    "SLURM_TASKS_PER_NODE",
    "SLURM_JOB_PARTITION",
    "SLURM_CLUSTER_NAME",
    "SLURM_STEP_ID",
    "SLURM_CPUS_PER_TASK",
    "SLURM_GPUS_PER_NODE",
    "SLURM_JOB_GPUS",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "OMPI_MCA_btl",
    "OMPI_MCA_pml",
    "OMPI_MCA_btl_tcp_if_include",
    "OMPI_MCA_btl_tcp_if_exclude",
    "OMPI_MCA_oob_tcp_if_include",
    "OMPI_MCA_mpi_yield_when_idle",
];

/// Whether a name is left out entirely (its very presence is private).
fn never(name: &str) -> bool {
    name.to_ascii_lowercase().contains("precondition")
}

/// Replaces the credentials of every `scheme://user:password@host` in `s`.
pub fn redact_url_credentials(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str(REDACTED);
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The environment as run.json records it (see the module note).
pub fn captured_env(vars: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    vars.into_iter()
        .filter(|(k, _)| FAMILIES.iter().any(|p| k.starts_with(p)) && !never(k))
        .map(|(k, v)| {
            let v = if KNOWN_HARMLESS.contains(&k.as_str()) {
                redact_url_credentials(&v)
            } else {
                REDACTED.to_string()
            };
            (k, v)
        })
        .collect()
}

/// A command line as it may be stored and printed: `-x NAME=VALUE` keeps
/// `NAME`, every URL loses its credentials.
pub fn redact_command(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut after_x = false;
    for a in argv {
        let a = if after_x {
            match a.split_once('=') {
                Some((name, _)) => format!("{name}={REDACTED}"),
                None => a.clone(),
            }
        } else {
            redact_url_credentials(a)
        };
        after_x = a == "-x" || a == "--env";
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        captured_env(pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())))
    }

    #[test]
    fn harmless_values_kept_others_redacted_secrets_dropped() {
        let v = env(&[
            ("NCCL_DEBUG", "INFO"),
            ("SLURM_JOB_ID", "42"),
            ("CUDA_VISIBLE_DEVICES", "0,1"),
            ("HOME", "/root"),
            ("MY_API_TOKEN", "t0ken"),
            ("NCCL_PASSWD", "hunter2"),
            ("NCCL_AUTH_PW", "hunter2"),
            ("SLURM_PASS", "hunter2"),
            ("UCX_CREDENTIAL", "hunter2"),
            ("OMPI_MCA_conn", "postgres://u:hunter2@db:5432/x"),
            ("OMPI_MCA_orte_precondition_transports", "abcdef-123456"),
            (
                "OMPI_MCA_btl_tcp_if_include",
                "http://u:hunter2@10.0.0.1/24",
            ),
        ]);
        assert_eq!(v["NCCL_DEBUG"], "INFO");
        assert_eq!(v["SLURM_JOB_ID"], "42");
        assert_eq!(v["CUDA_VISIBLE_DEVICES"], "0,1");
        for k in [
            "NCCL_PASSWD",
            "NCCL_AUTH_PW",
            "SLURM_PASS",
            "UCX_CREDENTIAL",
            "OMPI_MCA_conn",
        ] {
            assert_eq!(v[k], REDACTED, "{k}");
        }
        assert!(!v.contains_key("HOME") && !v.contains_key("MY_API_TOKEN"));
        assert!(!v.keys().any(|k| k.contains("precondition")));
        assert_eq!(
            v["OMPI_MCA_btl_tcp_if_include"],
            "http://<redacted>@10.0.0.1/24"
        );
        let all = format!("{v:?}");
        assert!(!all.contains("hunter2") && !all.contains("t0ken") && !all.contains("abcdef"));
    }

    #[test]
    fn url_credentials_known_answers() {
        assert_eq!(
            redact_url_credentials("postgres://u:hunter2@db:5432/x?y=1"),
            "postgres://<redacted>@db:5432/x?y=1"
        );
        assert_eq!(
            redact_url_credentials("https://host/path"),
            "https://host/path"
        );
        assert_eq!(
            redact_url_credentials("a=s3://k:s@b/c and ftp://x@y"),
            "a=s3://<redacted>@b/c and ftp://<redacted>@y"
        );
        assert_eq!(redact_url_credentials("no url"), "no url");
    }

    #[test]
    fn command_values_redacted() {
        let argv: Vec<String> = [
            "mpirun",
            "-x",
            "MY_API_TOKEN=abc",
            "-x",
            "NCCL_DEBUG",
            "--env",
            "X=1",
            "--mca",
            "conn",
            "mysql://root:pw@h/db",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = redact_command(&argv);
        assert_eq!(r[2], "MY_API_TOKEN=<redacted>");
        assert_eq!(r[4], "NCCL_DEBUG");
        assert_eq!(r[6], "X=<redacted>");
        assert_eq!(r[9], "mysql://<redacted>@h/db");
    }
}
