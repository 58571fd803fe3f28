//! [`NetworkLab`]: a private network of Linux network namespaces, one per node, so a test can
//! cut a node off from everyone (peers and clients alike) and heal it again.
//!
//! Layout: one bridge in the root namespace holding `10.213.X.1/24` (the test process reaches
//! every node through it), and per node a namespace with `lo` up and a veth whose far end is a
//! bridge port; node `id` has `10.213.X.(10+id)`. Cutting a node sets its bridge-side veth
//! down: its packets go nowhere, established connections stall (no reset), as when a cable is
//! pulled. Traffic never leaves the lab's /24: no default route, no NAT, no forwarding.
//!
//! Needs root (CAP_NET_ADMIN). When namespaces cannot be made, [`NetworkLab::new`] panics with
//! the reason: a partition test that skips itself proves nothing.
//!
//! Names carry the test process's pid and a per-process counter, so parallel tests and
//! parallel test processes never collide, and a lab left behind by a killed test process is
//! swept by the next one (its pid is dead).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Linux's limit on interface names (IFNAMSIZ - 1).
const INTERFACE_NAME_BYTES_MAX: usize = 15;
/// Namespace names of every lab start with this; the pid follows.
const NAMESPACE_PREFIX: &str = "sluice-lab-";
/// Bridge names: `sb<pid hex>_<lab hex>`.
const BRIDGE_PREFIX: &str = "sb";
/// Host-side veth names: `sv<pid hex>_<lab hex>_<node>`.
const VETH_PREFIX: &str = "sv";
/// Labs per test process (the counter is one hex digit in interface names).
const LABS_PER_PROCESS_MAX: u32 = 16;
/// Where `ip netns exec` finds a namespace's own `/etc` files.
const NETNS_ETC: &str = "/etc/netns";
/// Nodes per lab (one decimal digit in interface names; addresses .11 to .19).
pub const LAB_NODES_MAX: i32 = 9;
/// Candidate third octets of `10.213.X.0/24`.
const SUBNET_COUNT: u32 = 250;

/// A set of network namespaces on one bridge; removed on drop (even while panicking).
pub struct NetworkLab {
    namespaces: Vec<String>,
    bridge: String,
    veths: Vec<String>,
    subnet_octet: u8,
}

impl NetworkLab {
    /// `nodes` namespaces (ids 1..=nodes) on a fresh bridge.
    pub fn new(nodes: i32) -> NetworkLab {
        assert!(
            (1..=LAB_NODES_MAX).contains(&nodes),
            "1..={LAB_NODES_MAX} nodes"
        );
        static LABS: AtomicU32 = AtomicU32::new(0);
        let lab = LABS.fetch_add(1, Ordering::Relaxed);
        assert!(lab < LABS_PER_PROCESS_MAX, "too many labs in one process");
        sweep_stale_labs();
        let pid = std::process::id();
        let tag = format!("{pid:x}_{lab:x}");
        let mut network = NetworkLab {
            namespaces: Vec::new(),
            bridge: format!("{BRIDGE_PREFIX}{tag}"),
            veths: Vec::new(),
            subnet_octet: free_subnet_octet(pid, lab),
        };
        assert!(network.bridge.len() <= INTERFACE_NAME_BYTES_MAX);
        // From here on, Drop removes whatever was made if a later step panics.
        network.make_bridge();
        for id in 1..=nodes {
            network.make_node(&tag, id);
        }
        network
    }

    /// The address node `id` binds inside its namespace.
    pub fn node_ip(&self, id: i32) -> Ipv4Addr {
        assert!((1..=LAB_NODES_MAX).contains(&id));
        Ipv4Addr::new(10, 213, self.subnet_octet, 10 + id as u8)
    }

    /// The bridge's address: the test process (root namespace) talks to nodes from it.
    pub fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet_octet, 1)
    }

    /// The command prefix running a program inside node `id`'s namespace.
    pub fn exec_prefix(&self, id: i32) -> Vec<String> {
        let namespace = self.namespace(id);
        ["ip", "netns", "exec", namespace]
            .map(str::to_string)
            .to_vec()
    }

    /// A command running `program` inside node `id`'s namespace.
    pub fn command(&self, id: i32, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.namespace(id)])
            .arg(program);
        command
    }

    /// Every namespace resolves exactly `hosts` (plus localhost); other names fail.
    pub fn set_hosts(&self, hosts: &[(&str, Ipv4Addr)]) {
        let mut table = String::from("127.0.0.1 localhost\n");
        for (name, address) in hosts {
            table.push_str(&format!("{address} {name}\n"));
        }
        for namespace in &self.namespaces {
            let dir = std::path::Path::new(NETNS_ETC).join(namespace);
            std::fs::create_dir_all(&dir).expect("create /etc/netns/<namespace>");
            std::fs::write(dir.join("hosts"), &table).expect("write the lab's hosts");
            let resolver = "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n";
            std::fs::write(dir.join("resolv.conf"), resolver).expect("write resolv.conf");
        }
    }

    /// Isolates node `id` from everyone: its bridge port goes down.
    pub fn cut(&self, id: i32) {
        ip(&["link", "set", self.veth(id), "down"]);
    }

    /// Undoes [`NetworkLab::cut`].
    pub fn heal(&self, id: i32) {
        ip(&["link", "set", self.veth(id), "up"]);
    }

    fn namespace(&self, id: i32) -> &str {
        &self.namespaces[index(id)]
    }

    fn veth(&self, id: i32) -> &str {
        &self.veths[index(id)]
    }

    fn make_bridge(&mut self) {
        let bridge = self.bridge.clone();
        // Forward delay 0 and no STP: a port forwards as soon as it is up (heal is instant).
        ip(&[
            "link",
            "add",
            &bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        ]);
        let host = format!("{}/24", self.host_ip());
        ip(&["addr", "add", &host, "dev", &bridge]);
        ip(&["link", "set", &bridge, "up"]);
    }

    fn make_node(&mut self, tag: &str, id: i32) {
        let namespace = format!("{NAMESPACE_PREFIX}{tag}-{id}");
        ip(&["netns", "add", &namespace]);
        self.namespaces.push(namespace.clone());
        let veth = format!("{VETH_PREFIX}{tag}_{id}");
        let peer = format!("sp{tag}_{id}");
        assert!(peer.len() <= INTERFACE_NAME_BYTES_MAX, "{peer} is too long");
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        self.veths.push(veth.clone());
        ip(&["link", "set", &peer, "netns", &namespace]);
        ip(&["link", "set", &veth, "master", &self.bridge]);
        ip(&["link", "set", &veth, "up"]);
        let address = format!("{}/24", self.node_ip(id));
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", namespace.as_str()];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["link", "set", "lo", "up"]);
        inside(&["addr", "add", &address, "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
    }
}

impl Drop for NetworkLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end, and with it the pair.
        for namespace in &self.namespaces {
            let _ = ip_quiet(&["netns", "delete", namespace]);
            let _ = std::fs::remove_dir_all(std::path::Path::new(NETNS_ETC).join(namespace));
        }
        for veth in &self.veths {
            let _ = ip_quiet(&["link", "delete", veth]);
        }
        let _ = ip_quiet(&["link", "delete", &self.bridge]);
    }
}

fn index(id: i32) -> usize {
    usize::try_from(id - 1).expect("node ids start at 1")
}

/// `ip ARGS`; panics with ip's own message when it fails (no root, no netns support, ...).
fn ip(args: &[&str]) {
    if let Err(failure) = ip_quiet(args) {
        panic!(
            "network lab: `ip {}` failed: {failure} (partition tests need root and network \
             namespaces)",
            args.join(" ")
        );
    }
}

fn ip_quiet(args: &[&str]) -> Result<String, String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| format!("cannot run ip: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A third octet for `10.213.X.0/24` that no interface on this machine uses yet.
fn free_subnet_octet(pid: u32, lab: u32) -> u8 {
    let used = ip_quiet(&["-o", "-4", "addr", "show"]).unwrap_or_default();
    let start = pid.wrapping_mul(31).wrapping_add(lab.wrapping_mul(7));
    (0..SUBNET_COUNT)
        .map(|step| ((start + step) % SUBNET_COUNT + 1) as u8)
        .find(|octet| !used.contains(&format!(" 10.213.{octet}.")))
        .expect("a free 10.213.X.0/24")
}

/// Removes namespaces and bridges of labs whose test process is gone (killed before its
/// drops ran).
fn sweep_stale_labs() {
    let namespaces = ip_quiet(&["netns", "list"]).unwrap_or_default();
    for line in namespaces.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let pid = name
            .strip_prefix(NAMESPACE_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|hex| u32::from_str_radix(hex, 16).ok());
        if pid.is_some_and(is_dead) {
            let _ = ip_quiet(&["netns", "delete", name]);
            let _ = std::fs::remove_dir_all(std::path::Path::new(NETNS_ETC).join(name));
        }
    }
    let links = ip_quiet(&["-o", "link", "show"]).unwrap_or_default();
    for line in links.lines() {
        // "7: sb1a2b_0: <BROADCAST,..." or "8: sv1a2b_0_1@if9: ..."
        let Some(name) = line.split(": ").nth(1).and_then(|n| n.split('@').next()) else {
            continue;
        };
        let pid = [BRIDGE_PREFIX, VETH_PREFIX]
            .iter()
            .find_map(|prefix| name.strip_prefix(prefix))
            .filter(|rest| rest.contains('_'))
            .and_then(|rest| rest.split('_').next())
            .and_then(|hex| u32::from_str_radix(hex, 16).ok());
        if pid.is_some_and(is_dead) {
            let _ = ip_quiet(&["link", "delete", name]);
        }
    }
}

fn is_dead(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}
