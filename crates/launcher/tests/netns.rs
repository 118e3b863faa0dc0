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
    if let Some(why) = netns_missing() {
        return skip(test, &why);
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
    if let Some(why) = netns_missing() {
        return skip(test, &why);
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

/// 32 ranks, 8 on each of 4 namespace hosts (oversubscribed on this
/// machine's cores), take the per-node path of a run above
/// `SHARD_ABOVE_RANKS`: each node's leader gathers its ranks, writes them to
/// `ranks/<host>.json` and sends rank 0 one node record; run.json holds no
/// rank record. The summary rank 0 computed from the node records must be
/// the flat summary of the rank records read back from the shards, and the
/// node records those of the shards' ranks.
#[test]
fn thirty_two_ranks_are_gathered_per_node_into_shards() {
    let test = "thirty_two_ranks_are_gathered_per_node_into_shards";
    if let Some(why) = netns_missing() {
        return skip(test, &why);
    }
    require_worker();
    let _lock = TestLock::acquire();
    let _hosts = Netns::up(4);
    let extra = Netns::mpirun_args();
    let tmp = tempfile::tempdir().expect("tempdir");
    // Leaders write their shards (the folder is shared here), then, forced,
    // send them to rank 0 instead.
    for (id, through_rank0) in [("scale", false), ("via0", true)] {
        check_sharded_run(tmp.path(), id, through_rank0, &extra);
    }
}

fn check_sharded_run(out: &std::path::Path, id: &str, through_rank0: bool, extra: &[String]) {
    let mut cmd = mfubench_cmd();
    if through_rank0 {
        cmd.env("MFUBENCH_SHARDS_THROUGH_RANK0", "1");
    }
    cmd.args([
        "run",
        test_config("quick.toml").to_str().expect("utf-8"),
        "--hosts",
        "hostA:8,hostB:8,hostC:8,hostD:8",
        "--out",
        out.to_str().expect("utf-8"),
        "--run-id",
        id,
        "--timeout",
        "5m",
    ]);
    if through_rank0 {
        cmd.args(["--env", "MFUBENCH_SHARDS_THROUGH_RANK0"]);
    }
    cmd.arg("--").args(extra);
    let f = run(&mut cmd, Duration::from_secs(360));
    assert_eq!(f.code(), 0, "{f:?}");
    assert_eq!(
        f.stderr
            .contains("3 node(s) sent their shard of rank records to rank 0"),
        through_rank0,
        "{}",
        f.stderr
    );
    let dir = out.join(id);
    let j = read_json(&dir.join("run.json"));
    assert_eq!(j["world_size"], 32, "{j:#}");
    assert!(j.get("ranks").is_none(), "run.json holds rank records");
    assert_eq!(j["summary"]["wrong"], 0);
    let nodes = j["nodes"].as_array().expect("nodes");
    let files = j["rank_shards"]["files"].as_array().expect("rank_shards");
    assert_eq!(nodes.len(), 4);
    assert_eq!(files.len(), 4);
    for (host, f) in ["hostA", "hostB", "hostC", "hostD"].iter().zip(files) {
        assert_eq!(f["host"], *host);
        assert_eq!(f["path"], format!("ranks/{host}.json"));
        let shard = read_json(&dir.join(format!("ranks/{host}.json")));
        let ranks = shard["ranks"].as_array().expect("shard ranks");
        assert_eq!(ranks.len(), 8, "{host}");
        assert!(ranks.iter().all(|r| r["host"] == *host), "{host}");
    }

    // The flat computation over the same records.
    let loaded = mfubench_report::read::read_run_full(&dir).expect("read the run and its shards");
    let run_record = &loaded.record;
    assert_eq!(run_record.ranks.len(), 32);
    let inputs = run_record.summary_inputs(run_record.config.acceptance.straggler_tolerance);
    let flat = mfubench_core::result::summarize(&run_record.ranks, inputs);
    assert_eq!(
        serde_json::to_value(&flat).expect("summary"),
        j["summary"],
        "the summary from the node records differs from the flat one"
    );
    let flat_nodes = mfubench_core::aggregate::nodes_of(&run_record.ranks, &run_record.plan);
    assert_eq!(
        serde_json::to_value(&flat_nodes).expect("nodes"),
        j["nodes"]
    );

    // The report reads the shards and finds nothing to warn about in the
    // stored summary.
    let f = run(
        mfubench_cmd().args(["report", dir.to_str().expect("utf-8")]),
        Duration::from_secs(120),
    );
    assert_eq!(f.code(), 0, "{f:?}");
    assert!(
        !f.stdout.contains("differs from the value recomputed"),
        "{}",
        f.stdout
    );
    assert!(f.stdout.contains("| hostD |"), "{}", f.stdout);
}
