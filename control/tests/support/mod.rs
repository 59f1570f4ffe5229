//! What the control plane's tests share: a group of masters on 127.0.0.1 in the test process,
//! with Raft timing short enough for tests and a program that defines one job, `count <n>`.

use std::collections::BTreeMap;
use std::time::Duration;

use tethys_control::raft::MasterConfig;
use tethys_control::rpc::server::{MasterNode, MasterOptions};
use tethys_storage::test_dir::TestDir;

/// The options of master `id` of `members`, keeping its state in `dir`: master 0 forms the
/// group; elections within 150-300 ms; workers beat every 50 ms; build `test-build`, whose
/// program defines the job `count` with one argument.
pub fn quick_options(id: u64, dir: &TestDir, members: &BTreeMap<u64, String>, secret: &str) -> MasterOptions {
    let mut options = MasterOptions::new(id, dir.path().to_path_buf(), members.clone(), secret.to_string());
    options.bootstrap = id == 0;
    options.raft = MasterConfig {
        heartbeat: Duration::from_millis(30),
        election_timeout: (Duration::from_millis(150), Duration::from_millis(300)),
        snapshot_after_entries: 100,
    };
    options.heartbeat_interval = Duration::from_millis(50);
    options.build_id = "test-build".to_string();
    options.validator = Some(std::sync::Arc::new(|name: &str, args: &[String], _parallelism: u32| match (name, args.len()) {
        ("count", 1) => Ok(Default::default()),
        ("count", n) => Err(format!("count takes 1 argument, not {n}")),
        (other, _) => Err(format!("this program defines no job {other:?}")),
    }));
    options
}

/// Masters running in this process.
pub struct Masters {
    /// Their directories, removed when dropped.
    pub dirs: Vec<TestDir>,
    /// Their gRPC addresses, by id.
    pub addrs: BTreeMap<u64, String>,
    /// The masters, by id.
    pub nodes: BTreeMap<u64, MasterNode>,
}

/// Starts `count` masters with `quick_options`, changed by `adjust` (directories named `name`).
pub async fn start_masters(count: u64, name: &str, secret: &str, adjust: impl Fn(&mut MasterOptions)) -> Masters {
    let mut listeners = BTreeMap::new();
    for id in 0..count {
        listeners.insert(id, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: BTreeMap<u64, String> = listeners.iter().map(|(id, listener)| (*id, listener.local_addr().unwrap().to_string())).collect();
    let dirs: Vec<TestDir> = (0..count).map(|_| TestDir::new(name)).collect();
    let mut nodes = BTreeMap::new();
    for (id, listener) in listeners {
        let mut options = quick_options(id, &dirs[id as usize], &addrs, secret);
        adjust(&mut options);
        nodes.insert(id, MasterNode::start(options, listener).await.unwrap());
    }
    Masters { dirs, addrs, nodes }
}
