//! Reading the job's output: rank tags added by the launcher program,
//! the worker's `@@mfubench {json}` progress events, and the launcher
//! program's own reports of ranks that died.

use std::borrow::Cow;

use super::command::LauncherKind;

/// Which of the worker's streams a tagged line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// One output line split into its rank tag and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged<'a> {
    /// Rank that printed it; `None` for the launcher program's own lines.
    pub rank: Option<u64>,
    /// The stream the rank wrote it to (for untagged lines: where we read it).
    pub stream: Stream,
    /// The text without the tag.
    pub text: Cow<'a, str>,
}

/// Splits a line read from the launcher program's `read_from` stream.
///
/// mpirun `--tag-output` writes `[JOB,RANK]<stdout>:text` (or `<stderr>`);
/// srun `--label` writes `RANK: text` (right-aligned rank).
pub fn split_tag(kind: LauncherKind, read_from: Stream, line: &str) -> Tagged<'_> {
    let untagged = Tagged {
        rank: None,
        stream: read_from,
        text: Cow::Borrowed(line),
    };
    match kind {
        LauncherKind::Mpirun => {
            let Some(rest) = line.strip_prefix('[') else {
                return untagged;
            };
            let Some((inside, after)) = rest.split_once(']') else {
                return untagged;
            };
            let Some(rank) = inside
                .split_once(',')
                .and_then(|(_, r)| r.parse::<u64>().ok())
            else {
                return untagged;
            };
            let (stream, text) = if let Some(t) = after.strip_prefix("<stdout>:") {
                (Stream::Out, t)
            } else if let Some(t) = after.strip_prefix("<stderr>:") {
                (Stream::Err, t)
            } else {
                return untagged;
            };
            // A rank that writes one line in several write() calls gets
            // the tag repeated inside the line (`a[1,0]<stderr>:b`): drop it.
            let tag = &line[..line.len() - text.len()];
            let text = if text.contains(tag) {
                Cow::Owned(text.replace(tag, ""))
            } else {
                Cow::Borrowed(text)
            };
            Tagged {
                rank: Some(rank),
                stream,
                text,
            }
        }
        LauncherKind::Srun => {
            let trimmed = line.trim_start();
            let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return untagged;
            }
            let (num, rest) = trimmed.split_at(digits);
            match (num.parse::<u64>(), rest.strip_prefix(": ")) {
                (Ok(rank), Some(text)) => Tagged {
                    rank: Some(rank),
                    stream: read_from,
                    text: Cow::Borrowed(text),
                },
                // `--label` writes "0: " then the text; an empty line is "0: ".
                (Ok(rank), None) if rest == ":" => Tagged {
                    rank: Some(rank),
                    stream: read_from,
                    text: Cow::Borrowed(""),
                },
                _ => untagged,
            }
        }
    }
}

pub use mfubench_core::protocol::Event;

/// Parses the text of a worker line: `Some(Ok)` for an event, `Some(Err)`
/// for a malformed one, `None` for human text.
pub fn parse_event(text: &str) -> Option<Result<Event, serde_json::Error>> {
    Event::parse_line(text)
}

/// How a rank ended abnormally, as reported by mpirun or srun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankDeath {
    /// MPI rank.
    pub rank: u64,
    /// Host, when the report names it.
    pub host: Option<String>,
    /// What happened, e.g. `was killed by signal 9 (Killed)`.
    pub what: String,
    /// The exit code, when the rank exited (rather than being killed).
    pub code: Option<i32>,
}

/// Recognises the launcher program's reports of a dead rank:
/// - mpirun: `mpirun noticed that process rank 1 with PID 123 on node X
///   exited on signal 9 (Killed).`
/// - srun: `srun: error: X: task 1: Killed` / `... task 1: Exited with exit code 3`.
///
/// mpirun's report of a non-zero exit spans several lines ("Process name:
/// [[J,1],R]" then "Exit code: N"); [`DeathParser`] keeps that state.
#[derive(Debug, Default)]
pub struct DeathParser {
    pending_rank: Option<u64>,
    pending_host: Option<String>,
}

impl DeathParser {
    /// Feeds one untagged line; returns a death when one is complete.
    pub fn feed(&mut self, line: &str) -> Option<RankDeath> {
        let l = line.trim();
        if let Some(i) = l.find("process rank ") {
            let rest = &l[i + "process rank ".len()..];
            let rank: u64 = rest.split_whitespace().next()?.parse().ok()?;
            let host = rest
                .split_once(" on node ")
                .and_then(|(_, h)| h.split_whitespace().next())
                .map(str::to_string);
            let what = if let Some((_, sig)) = rest.split_once("exited on signal ") {
                format!("was killed by signal {}", sig.trim_end_matches('.'))
            } else if let Some((_, code)) = rest.split_once("exited with status ") {
                format!("exited with status {}", code.trim_end_matches('.'))
            } else {
                rest.split_once(" on node ")
                    .and_then(|(_, h)| h.split_once(' '))
                    .map(|(_, w)| w.trim_end_matches('.').to_string())
                    .unwrap_or_else(|| "failed".to_string())
            };
            let code = rest
                .split_once("exited with status ")
                .and_then(|(_, c)| c.trim_end_matches('.').trim().parse().ok());
            return Some(RankDeath {
                rank,
                host,
                what,
                code,
            });
        }
        if let Some(rest) = l.strip_prefix("Process name:") {
            // [[13713,1],1]
            self.pending_rank = rest
                .trim()
                .trim_end_matches(']')
                .rsplit(',')
                .next()
                .and_then(|r| r.parse().ok());
            return None;
        }
        if let Some(rest) = l.strip_prefix("Local host:") {
            self.pending_host = Some(rest.trim().to_string());
            return None;
        }
        if let Some(rest) = l.strip_prefix("Exit code:") {
            let rank = self.pending_rank.take()?;
            return Some(RankDeath {
                rank,
                host: self.pending_host.take(),
                what: format!("exited with code {}", rest.trim()),
                code: rest.trim().parse().ok(),
            });
        }
        if let Some(rest) = l.strip_prefix("srun: error: ") {
            // HOST: task N: Killed
            let (host, rest) = rest.split_once(": task")?;
            let (tasks, what) = rest.split_once(": ")?;
            // "task 0-1" or "tasks 0,2": take the first rank named.
            let rank: u64 = tasks
                .trim_start_matches('s')
                .trim()
                .split([',', '-'])
                .next()?
                .trim()
                .parse()
                .ok()?;
            let code = what
                .strip_prefix("Exited with exit code ")
                .and_then(|c| c.trim().parse().ok());
            let what = match what {
                "Killed" => "was killed by signal 9 (Killed)".to_string(),
                w => w.to_lowercase(),
            };
            return Some(RankDeath {
                rank,
                host: Some(host.trim().to_string()),
                what,
                code,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpirun_tags() {
        let t = split_tag(LauncherKind::Mpirun, Stream::Out, "[1,3]<stderr>:boom: x");
        assert_eq!(
            (t.rank, t.stream, t.text.as_ref()),
            (Some(3), Stream::Err, "boom: x")
        );
        let t = split_tag(LauncherKind::Mpirun, Stream::Err, "[host:123] mca error");
        assert_eq!((t.rank, t.text.as_ref()), (None, "[host:123] mca error"));
        let t = split_tag(LauncherKind::Mpirun, Stream::Out, "[1,0]<stdout>:");
        assert_eq!((t.rank, t.text.as_ref()), (Some(0), ""));
        let t = split_tag(
            LauncherKind::Mpirun,
            Stream::Err,
            "[1,0]<stderr>:a [1,0]<stderr>:2[1,0]<stderr>: b",
        );
        assert_eq!(t.text, "a 2 b");
    }

    #[test]
    fn srun_labels() {
        let t = split_tag(LauncherKind::Srun, Stream::Err, " 12: hello");
        assert_eq!(
            (t.rank, t.stream, t.text.as_ref()),
            (Some(12), Stream::Err, "hello")
        );
        let t = split_tag(LauncherKind::Srun, Stream::Out, "srun: error: x");
        assert_eq!(t.rank, None);
        let t = split_tag(LauncherKind::Srun, Stream::Out, "3:");
        assert_eq!((t.rank, t.text.as_ref()), (Some(3), ""));
    }

    #[test]
    fn events() {
        let e = parse_event(r#"@@mfubench {"event":"hello","rank":1,"host":"h","local_rank":1,"pid":9,"device":"cpu"}"#)
            .unwrap()
            .unwrap();
        assert!(matches!(
            e,
            Event::Hello {
                rank: 1,
                pid: 9,
                ..
            }
        ));
        let e = parse_event(r#"@@mfubench {"event":"telemetry","x":1}"#)
            .unwrap()
            .unwrap();
        assert_eq!(e, Event::Unknown);
        assert!(parse_event("@@mfubench {bad").unwrap().is_err());
        assert!(parse_event("plain text").is_none());
    }

    #[test]
    fn deaths() {
        let mut p = DeathParser::default();
        let d = p
            .feed("mpirun noticed that process rank 1 with PID 4242 on node box exited on signal 9 (Killed).")
            .unwrap();
        assert_eq!(d.rank, 1);
        assert_eq!(d.host.as_deref(), Some("box"));
        assert_eq!(d.what, "was killed by signal 9 (Killed)");

        assert!(p.feed("  Process name: [[13713,1],2]").is_none());
        let d = p.feed("  Exit code:    3").unwrap();
        assert_eq!(
            (d.rank, d.what.as_str(), d.code),
            (2, "exited with code 3", Some(3))
        );

        let d = p.feed("srun: error: node7: task 5: Killed").unwrap();
        assert_eq!((d.rank, d.host.as_deref()), (5, Some("node7")));
        let d = p
            .feed("srun: error: node7: tasks 0-1: Exited with exit code 3")
            .unwrap();
        assert_eq!((d.rank, d.what.as_str()), (0, "exited with exit code 3"));
        assert!(p
            .feed("srun: error: Unable to allocate resources")
            .is_none());
    }
}
