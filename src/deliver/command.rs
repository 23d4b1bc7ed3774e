//! Command targets: a program run without a shell, the secret on its standard input, never
//! in its arguments or environment. It learns which key it gets from the environment
//! (`SVCACCT_DELIVER_ACCOUNT`, `SVCACCT_DELIVER_KEY`, `SVCACCT_DELIVER_KEY_ID`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a command may take.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `argv` in `base_dir` with `secret` on standard input; success is exit status 0.
pub fn run(
    argv: &[String],
    base_dir: &Path,
    names: (&str, &str, &str),
    secret: &[u8],
) -> Result<(), String> {
    // Absolute: a relative program with a working directory set is resolved differently
    // from one platform to the next.
    let program = if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
        base_dir
            .canonicalize()
            .map_err(|e| format!("cannot resolve {}: {e}", base_dir.display()))?
            .join(&argv[0])
    } else {
        argv[0].clone().into()
    };
    let mut cmd = Command::new(&program);
    cmd.args(&argv[1..])
        .current_dir(base_dir)
        .env_clear()
        .env("SVCACCT_DELIVER_ACCOUNT", names.0)
        .env("SVCACCT_DELIVER_KEY", names.1)
        .env("SVCACCT_DELIVER_KEY_ID", names.2)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for var in ["PATH", "HOME", "LANG", "TMPDIR"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading is judged by its exit status.
        let _ = stdin.write_all(secret);
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{} failed: {status}", argv[0])),
            Ok(None) if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} took longer than {}s",
                    argv[0],
                    TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for {}: {e}", argv[0])),
        }
    }
}
