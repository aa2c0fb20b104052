//! The faults the soak injects besides the simulator's chaos: `kill -9` of the agent (and a
//! restart on the same store), and a full disk under the store.

use crate::common::{spawn, Proc};
use itniotech_exporter::simulator::DEMO_API_KEY;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, RwLock};

pub const SECRET: &str = "s3cr3t-Soak-Test";

/// The agent under test: a real process, restarted on the same store after each kill.
pub struct Agent {
    args: Vec<String>,
    proc: Mutex<Option<Proc>>,
    /// Where it listens now (a new port after each restart).
    pub addr: Arc<RwLock<String>>,
    /// Everything every incarnation printed.
    pub logs: Mutex<String>,
}

impl Agent {
    pub fn start(args: Vec<String>) -> Agent {
        let (proc, addr) = Self::spawn(&args);
        Agent {
            args,
            proc: Mutex::new(Some(proc)),
            addr: Arc::new(RwLock::new(addr)),
            logs: Mutex::new(String::new()),
        }
    }

    fn spawn(args: &[String]) -> (Proc, String) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        spawn(
            &args,
            &[
                ("ITNIOTECH_API_KEY", DEMO_API_KEY),
                ("ITNIOTECH_API_SECRET", SECRET),
            ],
        )
    }

    pub fn addr(&self) -> String {
        self.addr.read().unwrap().clone()
    }

    /// SIGKILL, then start again on the same store.
    pub fn kill9_and_restart(&self) {
        let mut slot = self.proc.lock().unwrap();
        if let Some(mut p) = slot.take() {
            p.kill9();
            self.logs.lock().unwrap().push_str(&p.output());
        }
        let (proc, addr) = Self::spawn(&self.args);
        *slot = Some(proc);
        *self.addr.write().unwrap() = addr;
    }

    /// Everything printed so far, by every incarnation.
    pub fn all_logs(&self) -> String {
        let mut logs = self.logs.lock().unwrap().clone();
        if let Some(p) = self.proc.lock().unwrap().as_ref() {
            logs.push_str(&p.output());
        }
        logs
    }
}

/// The store's directory: a size-limited tmpfs when this process may mount one (root, as in
/// CI), so the disk can really be filled; else a plain temporary directory.
pub struct Disk {
    pub dir: PathBuf,
    mounted: bool,
    _tmp: tempfile::TempDir,
}

impl Disk {
    pub fn new(size_mb: u32) -> Disk {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let dir = tmp.path().join("store");
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m,mode=0700")])
            .arg("tmpfs")
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        Disk {
            dir,
            mounted,
            _tmp: tmp,
        }
    }

    /// Whether the disk can be filled.
    pub fn can_fill(&self) -> bool {
        self.mounted
    }

    /// Fills the file system with one file until it refuses (ENOSPC); returns the bytes
    /// written. The store's next commit that needs space fails with SQLITE_FULL.
    pub fn fill(&self) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.filler()).expect("the filler file");
        let block = vec![0u8; 1 << 16];
        let mut written = 0u64;
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
        let _ = f.sync_all();
        written
    }

    pub fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if self.mounted {
            // Lazily: the agent may still hold the files open while the test unwinds.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
