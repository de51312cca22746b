//! The machine a run measured: what a reader needs to compare two reports.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub hostname: String,
    pub cpu_model: String,
    /// Logical CPUs.
    pub cores: usize,
    pub memory_bytes: u64,
    /// `uname -r`.
    pub kernel: String,
    pub os: String,
}

impl Machine {
    /// Read it through `sysinfo`; fields it cannot learn stay empty, never an error.
    pub fn detect() -> Machine {
        use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        let cpu_model = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .unwrap_or_default();
        Machine {
            hostname: System::host_name().unwrap_or_default(),
            cpu_model,
            cores: sys.cpus().len(),
            memory_bytes: sys.total_memory(),
            kernel: System::kernel_version().unwrap_or_default(),
            os: System::long_os_version().unwrap_or_default(),
        }
    }

    /// One line for the report header.
    pub fn line(&self) -> String {
        format!(
            "{} ({} cores), {} RAM, Linux {}",
            if self.cpu_model.is_empty() {
                "unknown CPU"
            } else {
                &self.cpu_model
            },
            self.cores,
            device::units::human_iec(self.memory_bytes),
            self.kernel
        )
    }
}
