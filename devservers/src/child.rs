//! A server child process with a log file, a parent-death signal and signal-based control.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns `command` from one thread that lives as long as the process.
///
/// The parent-death signal fires when the *thread* that spawned a child exits, so spawning from
/// a short-lived test thread would kill a server shared by later tests.
fn spawn_from_keeper_thread(command: Command) -> std::io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("devservers-keeper".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawn the devservers keeper thread");
        Mutex::new(requests)
    });
    let (reply, answer) = mpsc::channel();
    keeper
        .lock()
        .expect("keeper lock")
        .send((command, reply))
        .map_err(|_| std::io::Error::other("the devservers keeper thread is gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("the devservers keeper thread is gone"))?
}

/// Makes the child receive `signal` when this process dies, however it dies.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command, signal: Signal) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || nix::sys::prctl::set_pdeathsig(signal).map_err(std::io::Error::from));
    }
}

/// A running server process whose output goes to a log file.
pub(crate) struct ServerProcess {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `command` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        name: &'static str,
        mut command: Command,
        log: &Path,
        on_parent_death: Signal,
    ) -> anyhow::Result<Self> {
        let file = File::options().create(true).append(true).open(log)?;
        command.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(file);
        die_with_parent(&mut command, on_parent_death);
        let child = spawn_from_keeper_thread(command).with_context(|| format!("cannot start {name}"))?;
        Ok(ServerProcess { name, child, log: log.to_path_buf() })
    }

    /// Fails with the end of the log if the process has exited.
    pub(crate) fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); end of {}:\n{}", self.name, self.log.display(), self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Sends `signal` to the process in `slot`, if any, waits up to `grace` for it to exit,
    /// then kills it. The slot is empty afterwards.
    pub(crate) async fn stop(slot: &mut Option<Self>, signal: Signal, grace: Duration) -> anyhow::Result<()> {
        match slot.take() {
            Some(process) => process.terminate(signal, grace).await,
            None => Ok(()),
        }
    }

    /// SIGKILL to the process in `slot`, if any; the slot is empty afterwards.
    pub(crate) fn kill_slot(slot: &mut Option<Self>) {
        if let Some(mut process) = slot.take() {
            process.kill();
        }
    }

    async fn terminate(mut self, signal: Signal, grace: Duration) -> anyhow::Result<()> {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pids fit in i32"));
        let _ = signal::kill(pid, signal);
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(server = self.name, "did not stop in {grace:?}; killing it");
        self.kill();
        Ok(())
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Any program run as a child process for a test: output appended to a log file, SIGTERM on
/// the parent's death, and killable and restartable with the same command.
pub struct Program {
    name: &'static str,
    make: Box<dyn Fn() -> Command + Send + Sync>,
    log: PathBuf,
    process: Option<ServerProcess>,
}

impl Program {
    /// Starts the command `make` builds, logging to `log`.
    pub fn start(
        name: &'static str,
        log: &Path,
        make: impl Fn() -> Command + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let mut program = Program { name, make: Box::new(make), log: log.to_path_buf(), process: None };
        program.restart()?;
        Ok(program)
    }

    /// Starts it again (after [`Program::kill`] or [`Program::stop`]; a running one is killed first).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.process = Some(ServerProcess::spawn(self.name, (self.make)(), &self.log, Signal::SIGTERM)?);
        Ok(())
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        ServerProcess::kill_slot(&mut self.process);
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        ServerProcess::stop(&mut self.process, Signal::SIGTERM, grace).await
    }

    /// Fails with the end of its log if it has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.process.as_mut() {
            Some(process) => process.ensure_running(),
            None => bail!("{} is not running", self.name),
        }
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }
}
