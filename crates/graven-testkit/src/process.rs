//! A child process that serves on a port it chose (`--listen 127.0.0.1:0`) and says where in a
//! line on its standard output (`listening on http://127.0.0.1:40001`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A child that printed the address it listens on; killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Listening {
    pub child: Child,
    /// `host:port`, from the `listening on` line (over http, or https).
    pub addr: String,
    /// Whether that line said `https://`.
    pub tls: bool,
    /// What the child printed on standard output up to and including that line, each line
    /// without its line ending.
    pub banner: Vec<String>,
}

impl Listening {
    /// The first banner line that starts with `prefix`, with the prefix taken off.
    pub fn banner_value(&self, prefix: &str) -> Option<&str> {
        self.banner.iter().find_map(|l| l.strip_prefix(prefix))
    }

    /// Sends the child SIGKILL and waits for it: as a crash stops a server.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `cmd` with its standard output piped and reads that until a line
/// `listening on http://<addr>` or `listening on https://<addr>`, at most `within`. Standard
/// output is drained afterwards, so the child never blocks on a full pipe; standard input
/// and error are what `cmd` says (inherited unless set).
///
/// Panics, with the lines read so far, if the child exits first or the time runs out; the
/// child is killed then.
#[track_caller]
pub fn spawn_listening(cmd: &mut Command, within: Duration) -> Listening {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let Some(out) = child.stdout.take() else { panic!("no standard output pipe") };
    // The lines arrive on a channel, so the deadline holds even if the child prints nothing.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            // After the address line nobody listens; the lines are read and dropped.
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + within;
    let mut banner = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("did not say where it listens within {within:?}")
                    }
                    mpsc::RecvTimeoutError::Disconnected => "exited before listening".to_owned(),
                };
                panic!("{cmd:?} {why}; it printed: {banner:#?}");
            }
        };
        let line = line.trim_end().to_owned();
        let found = line
            .strip_prefix("listening on http://")
            .map(|a| (a.to_owned(), false))
            .or_else(|| line.strip_prefix("listening on https://").map(|a| (a.to_owned(), true)));
        banner.push(line);
        if let Some((addr, tls)) = found {
            return Listening { child, addr, tls, banner };
        }
    }
}
