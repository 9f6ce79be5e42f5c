//! A child process whose stdio the test chooses (a directory, a TCP socket, a pipe it keeps
//! open), for the cases [`crate::util::Proc`] cannot express because it pipes all three.
//! Same safety net: killed after [`WATCHDOG`], and on drop.

use std::io::Read;
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::util::{Run, WATCHDOG};

pub struct RawProc {
    pub child: Child,
    pub cmd: String,
    done: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
}

/// `program args...` as one readable string, for failure reports.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&format!("{:?}", a.to_string_lossy()));
    }
    s
}

impl RawProc {
    /// Spawns `cmd` with whatever stdio the caller set on it.
    pub fn spawn(mut cmd: Command) -> RawProc {
        let desc = describe(&cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
        let (tx, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let f = Arc::clone(&fired);
        let pid = Pid::from_raw(child.id() as i32);
        thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
                f.store(true, Ordering::SeqCst);
                let _ = kill(pid, Signal::SIGKILL);
            }
        });
        RawProc {
            child,
            cmd: desc,
            done: Some(tx),
            fired,
        }
    }

    /// Reads whatever stdout and stderr pipes the child has to their end and waits for it.
    /// stdin, if the test still holds it, stays open.
    pub fn finish(mut self) -> Run {
        let reader = |pipe: Option<Box<dyn Read + Send>>| -> Option<JoinHandle<Vec<u8>>> {
            pipe.map(|mut r| {
                thread::spawn(move || {
                    let mut v = Vec::new();
                    let _ = r.read_to_end(&mut v);
                    v
                })
            })
        };
        let out = reader(self.child.stdout.take().map(|p| Box::new(p) as _));
        let err = reader(self.child.stderr.take().map(|p| Box::new(p) as _));
        let status = self.child.wait().expect("wait for child");
        self.done.take();
        let collect =
            |h: Option<JoinHandle<Vec<u8>>>| h.map(|h| h.join().unwrap()).unwrap_or_default();
        Run {
            cmd: self.cmd.clone(),
            status,
            stdout: collect(out),
            stderr: collect(err),
            watchdog_fired: self.fired.load(Ordering::SeqCst),
        }
    }
}

impl Drop for RawProc {
    fn drop(&mut self) {
        if self.done.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
