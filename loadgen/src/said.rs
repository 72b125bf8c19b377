//! What a child process (a spawned server, a `--server-cmd`) wrote to its
//! log, quoted in an error about it: the error then stands on its own, and
//! the log need not outlive the run.

use std::path::Path;

/// Lines quoted at most: the last ones, after a server's final report (some
/// 60 lines) if it got that far.
const LINES: usize = 20;

/// The end of the log at `path`, as a suffix for an error message.
pub(crate) fn said(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
    if tail.trim().is_empty() {
        "; it wrote nothing".into()
    } else {
        format!("; its output ends:\n{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::said;

    #[test]
    fn the_last_lines_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        assert_eq!(said(&log), "; it wrote nothing");
        let text: String = (1..=25).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&log, text).unwrap();
        let s = said(&log);
        assert!(
            s.starts_with("; its output ends:\nline 6\n") && s.ends_with("line 25"),
            "{s}"
        );
    }
}
