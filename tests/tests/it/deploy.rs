//! The deploy files agree with each other and with the code: the image pins the agent CLIs
//! the compatibility tier tests, the unit migrates before doctor and runs with the state and
//! config directories the example config names, and the health check needs no shell.

use std::path::Path;

pub fn trials() -> Vec<taskgate_tests::harness::Trial> {
    taskgate_tests::trials! {
        blocking: [
            the_agents_image_installs_the_pinned_cli_versions,
            the_health_check_runs_the_binary_not_a_shell,
            the_unit_migrates_before_doctor_and_uses_the_example_configs_paths,
            the_compose_files_keep_state_in_the_taskgate_home,
        ],
    }
}

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The value of `ARG NAME=value` in the Containerfile.
fn build_arg(containerfile: &str, name: &str) -> String {
    containerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARG ")?.strip_prefix(name)?.strip_prefix('=').map(str::to_owned))
        .unwrap_or_else(|| panic!("no ARG {name}"))
}

fn the_agents_image_installs_the_pinned_cli_versions() {
    let pins: toml::Table = read("tests/agent-clis.toml").parse().unwrap();
    let containerfile = read("deploy/Containerfile");
    for (cli, arg) in [("codex", "CODEX_VERSION"), ("claude", "CLAUDE_VERSION")] {
        let pin = &pins[cli];
        let (package, version) = (pin["package"].as_str().unwrap(), pin["version"].as_str().unwrap());
        assert_eq!(build_arg(&containerfile, arg), version, "{cli}: deploy/Containerfile vs tests/agent-clis.toml");
        assert!(containerfile.contains(&format!("\"{package}@${{{arg}}}\"")), "{cli}: installs {package}");
    }
}

fn the_health_check_runs_the_binary_not_a_shell() {
    let containerfile = read("deploy/Containerfile");
    let check = containerfile.lines().find(|l| l.starts_with("HEALTHCHECK")).expect("a HEALTHCHECK");
    assert!(check.ends_with(r#"CMD ["taskgate", "health"]"#), "{check}");
    let instructions = || containerfile.lines().filter(|l| !l.trim_start().starts_with('#'));
    assert!(!instructions().any(|l| l.contains("/dev/tcp")), "dash has no /dev/tcp");
    // The data dir exists in the image and belongs to the user the image runs as.
    assert!(containerfile.contains("install -d -o taskgate -g taskgate -m 0750 /var/lib/taskgate/data"));
    assert!(containerfile.contains("TASKGATE_SERVER__DATA_DIR=/var/lib/taskgate/data"));
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l == "target/"), "the build context leaves target/ out");
}

fn the_unit_migrates_before_doctor_and_uses_the_example_configs_paths() {
    let unit = read("deploy/taskgate.service");
    let directive =
        |key: &str| -> Vec<&str> { unit.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('=')).collect() };
    assert_eq!(
        directive("ExecStartPre"),
        ["/usr/local/bin/taskgate migrate", "/usr/local/bin/taskgate doctor"],
        "migrate first, so doctor finds a database"
    );
    assert_eq!(directive("ExecStart"), ["/usr/local/bin/taskgate serve"]);
    assert_eq!(directive("StateDirectory"), ["taskgate"]);
    assert_eq!(directive("ConfigurationDirectory"), ["taskgate"]);
    assert_eq!(directive("Environment"), ["TASKGATE_CONFIG=/etc/taskgate/taskgate.toml"]);
    assert!(!unit.contains("TASKGATE_SERVER__DATA_DIR"), "the data dir comes from the config file, for shells too");
    let example = taskgate::config::Config::load_from(
        Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/taskgate.toml")),
        std::iter::empty(),
    )
    .unwrap();
    assert_eq!(example.server.data_dir, Path::new("/var/lib/taskgate/data"), "inside the unit's StateDirectory");
}

fn the_compose_files_keep_state_in_the_taskgate_home() {
    for file in ["deploy/compose.sqlite.yaml", "deploy/compose.postgres.yaml"] {
        let compose = read(file);
        assert!(compose.contains("state:/var/lib/taskgate\n"), "{file}: a volume for the database and the logins");
        assert!(compose.contains("./taskgate.toml:/etc/taskgate/taskgate.toml:ro"), "{file}");
        assert!(compose.contains("dockerfile: deploy/Containerfile"), "{file}");
    }
}
