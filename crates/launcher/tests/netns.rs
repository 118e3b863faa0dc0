//! Three "hosts" on one machine: network namespaces hostA, hostB, hostC on
//! a bridge (10.77.0.0/24, addresses only inside the namespaces), set up by
//! ci/netns-up.sh. mpirun starts one rank per host through the rsh agent
//! ci/nsexec.sh, which enters the namespace under the host's own name; the
//! run must record three distinct hosts. Needs root and iproute2.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn three_hosts_in_network_namespaces() {
    let test = "three_hosts_in_network_namespaces";
    if !is_root() {
        return skip(test, "needs root (network namespaces)");
    }
    for p in ["ip", "nsenter", "unshare", "mpirun"] {
        if find_program(p).is_none() {
            return skip(test, &format!("{p} is not installed"));
        }
    }
    require_worker();
    let _lock = TestLock::acquire();
    let _hosts = Netns::up(3);

    // The options ci/mpirun-ns.sh adds: rsh agent, TCP over the bridge only.
    let f = run(
        Command::new(root().join("ci/mpirun-ns.sh")).arg("--print-args"),
        Duration::from_secs(30),
    );
    assert_eq!(f.code(), 0, "{f:?}");
    let extra: Vec<&str> = f.stdout.lines().collect();

    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("results");
    let mut cmd = mfubench_cmd();
    // ci/nsexec.sh gives the remote ranks a fresh environment, as ssh
    // does: NCCL_* reaches them only because mfubench forwards it (-x), and
    // SLURM_* (recorded, not forwarded) must not.
    cmd.env("NCCL_MFUBENCH_TEST_MARKER", "forwarded-4711")
        .env("SLURM_MFUBENCH_TEST_MARKER", "not-forwarded")
        .env("MY_TEST_SETTING", "by-env-flag")
        .args([
            "run",
            test_config("quick.toml").to_str().expect("utf-8"),
            // No --np: the rank count is the sum of the slots (3), not run.ranks (2).
            "--hosts",
            "hostA:1,hostB:1,hostC:1",
            "--out",
            out.to_str().expect("utf-8"),
            "--run-id",
            "netns",
            "--timeout",
            "240",
            "--env",
            "MY_TEST_SETTING",
            "--",
        ])
        .args(&extra);
    let f = run(&mut cmd, Duration::from_secs(300));
    assert_eq!(f.code(), 0, "{f:?}");
    assert!(
        f.stderr
            .contains("3 rank(s), from the sum of the slots of --hosts"),
        "{}",
        f.stderr
    );

    let j = read_json(&out.join("netns/run.json"));
    let mut hosts: Vec<String> = j["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .filter_map(|h| h.as_str().map(str::to_string))
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["hostA", "hostB", "hostC"], "{j:#}");
    let rank_hosts: Vec<&str> = j["ranks"]
        .as_array()
        .expect("ranks")
        .iter()
        .filter_map(|r| r["host"].as_str())
        .collect();
    assert_eq!(rank_hosts.len(), 3);
    // Rank 0 (on hostA, a fresh environment) saw the forwarded variable
    // and not the other; run.json records it by name, its value redacted
    // (not on the allow-list of harmless settings).
    assert_eq!(j["env"]["NCCL_MFUBENCH_TEST_MARKER"], "<redacted>", "{j:#}");
    assert!(
        j["env"].get("SLURM_MFUBENCH_TEST_MARKER").is_none(),
        "{j:#}"
    );
    let forwarded: Vec<&str> = j["launch"]["forwarded_env"]
        .as_array()
        .expect("launch.forwarded_env")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for n in ["NCCL_MFUBENCH_TEST_MARKER", "MY_TEST_SETTING", "PATH"] {
        assert!(forwarded.contains(&n), "{n}: {forwarded:?}");
    }
    assert!(!forwarded.contains(&"SLURM_MFUBENCH_TEST_MARKER"));
    // The launch metadata reached rank 0 on its remote "host" via -x.
    assert_eq!(j["launch"]["launcher"], "mpirun");
    assert!(
        j["launch"]["command"]
            .as_array()
            .is_some_and(|c| c.iter().any(|a| a == "plm_rsh_agent")),
        "{j:#}"
    );
}

#[test]
fn host_slots_decide_the_rank_count() {
    let test = "host_slots_decide_the_rank_count";
    if !is_root() {
        return skip(test, "needs root (network namespaces)");
    }
    for p in ["ip", "nsenter", "unshare", "mpirun"] {
        if find_program(p).is_none() {
            return skip(test, &format!("{p} is not installed"));
        }
    }
    require_worker();
    let _lock = TestLock::acquire();
    let _hosts = Netns::up(2);
    let f = run(
        Command::new(root().join("ci/mpirun-ns.sh")).arg("--print-args"),
        Duration::from_secs(30),
    );
    let extra: Vec<&str> = f.stdout.lines().collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut cmd = mfubench_cmd();
    cmd.args([
        "run",
        test_config("quick.toml").to_str().expect("utf-8"),
        "--hosts",
        "hostA:2,hostB:3",
        "--out",
        tmp.path().to_str().expect("utf-8"),
        "--run-id",
        "slots",
        "--timeout",
        "4m",
        "--",
    ])
    .args(&extra);
    let f = run(&mut cmd, Duration::from_secs(300));
    assert_eq!(f.code(), 0, "{f:?}");
    let j = read_json(&tmp.path().join("slots/run.json"));
    assert_eq!(j["world_size"], 5, "{j:#}");
    let mut per_host = std::collections::BTreeMap::new();
    for r in j["ranks"].as_array().expect("ranks") {
        *per_host
            .entry(r["host"].as_str().unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_host.into_iter().collect::<Vec<_>>(),
        [("hostA".to_string(), 2), ("hostB".to_string(), 3)]
    );
}
