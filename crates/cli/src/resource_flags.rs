//! The resource, security and misc flags of `run` and `create` (Docker's
//! names and syntax); the engine's `flags` module parses the values and the
//! engine checks what they mean.

use std::path::PathBuf;

use berth_engine::flags::{self, Ulimit};
use berth_engine::ResourceOptions;
use clap::Args;

#[derive(Args, Debug, Default)]
pub struct ResourceArgs {
    /// Memory limit (units b, k, m, g)
    #[arg(short = 'm', long, value_name = "bytes", value_parser = flags::parse_memory)]
    memory: Option<i64>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long, value_name = "bytes", allow_hyphen_values = true, value_parser = flags::parse_memory_swap)]
    memory_swap: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal", allow_hyphen_values = true, value_parser = flags::parse_cpus)]
    cpus: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "int", allow_negative_numbers = true)]
    cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pids_limit: Option<i64>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long, value_name = "uint16")]
    blkio_weight: Option<u16>,
    /// Ulimit options (name=soft[:hard])
    #[arg(long, value_name = "ulimit", value_parser = flags::parse_ulimit)]
    ulimit: Vec<Ulimit>,
    /// Add Linux capabilities
    #[arg(long, value_name = "list")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, value_name = "list")]
    cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// Signal to stop a container
    #[arg(long, value_name = "string")]
    stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    stop_timeout: Option<i64>,
    /// Set meta data on a container (no -l: berth's global -l is --log-level)
    #[arg(long, value_name = "list", value_parser = flags::validate_label)]
    label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long, value_name = "list")]
    label_file: Vec<PathBuf>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "list")]
    env_file: Vec<PathBuf>,
}

impl ResourceArgs {
    pub fn options(&self) -> ResourceOptions {
        ResourceOptions {
            memory: self.memory,
            memory_swap: self.memory_swap,
            nano_cpus: self.cpus,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            pids_limit: self.pids_limit,
            blkio_weight: self.blkio_weight,
            ulimits: self.ulimit.clone(),
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            privileged: self.privileged,
            init: self.init,
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            labels: self.label.clone(),
            label_files: self.label_file.clone(),
            env_files: self.env_file.clone(),
        }
    }
}
