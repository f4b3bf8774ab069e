//! Running the real, pinned agent CLIs offline: which binaries, which versions, and isolated
//! homes and working directories that point them at [`crate::fake_model::FakeModel`].

mod claude;
mod codex;
mod pins;
mod workdir;

pub use claude::ClaudeSandbox;
pub use codex::CodexSandbox;
pub use pins::{Cli, Pin, installed_version, pin};
pub use workdir::git_workdir;

/// Environment that every sandbox sets: loopback never goes through a proxy.
fn common_env(home: &std::path::Path) -> Vec<(String, String)> {
    let home = home.to_string_lossy().into_owned();
    vec![
        ("HOME".into(), home.clone()),
        ("XDG_CONFIG_HOME".into(), format!("{home}/.config")),
        ("XDG_CACHE_HOME".into(), format!("{home}/.cache")),
        ("XDG_DATA_HOME".into(), format!("{home}/.local/share")),
        ("XDG_STATE_HOME".into(), format!("{home}/.local/state")),
        ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
        ("no_proxy".into(), "127.0.0.1,localhost".into()),
    ]
}
