//! Running a command to its end and reading what it used from `wait4`'s rusage (peak RSS,
//! CPU times): the benchmarks' memory and CPU figures of other processes.

use std::process::{Command, Stdio};

/// Runs `command` (no input, output discarded, stderr kept when `show_errors`) to its end;
/// its rusage. A child's `ru_maxrss` is never below this process's RSS when it was spawned.
pub fn run_to_end(command: &mut Command, show_errors: bool) -> Result<libc::rusage, String> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(if show_errors {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pointers to live locals; std never waits for `child` (it is only dropped).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4: {err}"));
        }
    }
    drop(child);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!("{command:?} failed (wait status {status:#x})"));
    }
    Ok(usage)
}
