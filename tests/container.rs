//! The Dockerfile, checked without a container engine (none runs here): what it copies
//! exists and is not excluded from the build context, the binary and paths match the
//! workspace, the runtime is not root, and the health check, port, volume and labels agree
//! with the code. `scripts/check-container` adds hadolint and runs the build stage's commands
//! by hand in a clean clone.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BINARY: &str = env!("CARGO_BIN_EXE_starrocks-gateway");

/// One instruction: its keyword in upper case and the rest of its (joined) line.
#[derive(Debug)]
struct Instruction {
    keyword: String,
    arguments: String,
}

/// A build stage: its base image, its name and its instructions.
#[derive(Debug)]
struct Stage {
    name: Option<String>,
    instructions: Vec<Instruction>,
}

impl Stage {
    fn all(&self, keyword: &str) -> impl Iterator<Item = &str> {
        self.instructions
            .iter()
            .filter(move |i| i.keyword == keyword)
            .map(|i| i.arguments.as_str())
    }

    fn last(&self, keyword: &str) -> Option<&str> {
        self.all(keyword).last()
    }
}

/// Parses the Dockerfile's instructions into stages: comments dropped, `\` continuations
/// joined.
fn stages() -> Vec<Stage> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for line in logical.iter().filter(|line| !line.is_empty()) {
        let (keyword, arguments) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let arguments = arguments.trim().to_owned();
        if keyword == "FROM" {
            let words: Vec<&str> = arguments.split_whitespace().collect();
            let name = words
                .iter()
                .position(|w| w.eq_ignore_ascii_case("as"))
                .map(|at| words[at + 1].to_owned());
            stages.push(Stage {
                name,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(Instruction { keyword, arguments });
        }
    }
    stages
}

fn stage<'a>(stages: &'a [Stage], name: &str) -> &'a Stage {
    stages
        .iter()
        .find(|s| s.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no `{name}` stage"))
}

/// A `COPY`'s options, sources and destination.
fn copy_parts(arguments: &str) -> (Vec<&str>, Vec<&str>, &str) {
    let words: Vec<&str> = arguments.split_whitespace().collect();
    let (options, paths): (Vec<&str>, Vec<&str>) = words.iter().partition(|w| w.starts_with("--"));
    let (destination, sources) = paths.split_last().expect("COPY has a destination");
    (options, sources.to_vec(), destination)
}

/// A JSON (exec form) argument list: `["a", "b"]`.
fn exec_form(arguments: &str) -> Vec<String> {
    serde_json::from_str(arguments).unwrap_or_else(|e| panic!("not exec form ({e}): {arguments}"))
}

fn runtime(stages: &[Stage]) -> &Stage {
    stages.last().expect("a final stage")
}

#[test]
fn every_copied_source_exists_and_is_in_the_build_context() {
    let stages = stages();
    let ignored: Vec<String> = std::fs::read_to_string(Path::new(ROOT).join(".dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(|line| line.trim().trim_end_matches('/').to_owned())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let mut checked = 0;
    for stage in &stages {
        for copy in stage.all("COPY") {
            let (options, sources, _) = copy_parts(copy);
            if options.iter().any(|o| o.starts_with("--from=")) {
                continue;
            }
            for source in sources {
                checked += 1;
                let path = source.trim_end_matches('/');
                if path == "." {
                    continue;
                }
                assert!(
                    Path::new(ROOT).join(path).exists(),
                    "COPY {source}: no such file in the repository"
                );
                assert!(
                    !ignored.iter().any(|pattern| pattern == path),
                    "COPY {source}: excluded by .dockerignore"
                );
            }
        }
    }
    assert!(checked >= 4, "the Dockerfile's COPY lines were read");
}

#[test]
fn the_binary_is_built_and_copied_by_the_workspace_name_and_is_the_entrypoint() {
    let stages = stages();
    let name = "starrocks-gateway";
    assert!(
        BINARY.ends_with(name),
        "the workspace's binary is `{name}`: {BINARY}"
    );
    let builder = stage(&stages, "builder");
    let build = builder
        .all("RUN")
        .find(|run| run.contains("cargo build"))
        .expect("the builder runs cargo build");
    assert!(build.contains(&format!("--bin {name}")), "{build}");
    assert!(
        build.contains("--release") && build.contains("--locked"),
        "{build}"
    );
    let cook = builder
        .all("RUN")
        .find(|run| run.contains("cargo chef cook"))
        .expect("the builder cooks the dependencies");
    for flag in ["--release", "--locked", "--no-default-features"] {
        assert_eq!(
            cook.contains(flag),
            build.contains(flag),
            "cook and build must agree on {flag}, or the cooked layer is not the one used"
        );
    }

    let runtime = runtime(&stages);
    let copied = runtime
        .all("COPY")
        .map(copy_parts)
        .find(|(options, _, _)| options.contains(&"--from=builder"))
        .filter(|(_, sources, _)| sources == &[format!("/app/target/release/{name}").as_str()])
        .map(|(_, _, destination)| destination.to_owned())
        .expect("the runtime copies the release binary from the builder");
    let entrypoint = exec_form(runtime.last("ENTRYPOINT").expect("an ENTRYPOINT"));
    assert_eq!(
        entrypoint,
        vec![copied.clone()],
        "the entrypoint is the copied binary"
    );

    let command = exec_form(runtime.last("CMD").expect("a CMD"));
    assert_eq!(command[0], "serve", "{command:?}");
    let config = command
        .iter()
        .skip_while(|a| *a != "--config")
        .nth(1)
        .expect("CMD names a config");
    let relative = config
        .strip_prefix("/app/")
        .expect("the config is under /app");
    assert!(
        Path::new(ROOT).join(relative).exists(),
        "CMD's config {config} is copied from the repository"
    );
}

#[test]
fn the_runtime_runs_as_a_user_that_is_not_root() {
    let stages = stages();
    let user = runtime(&stages)
        .last("USER")
        .expect("the runtime sets USER");
    let name = user.split(':').next().unwrap_or_default();
    assert!(
        !["root", "0", ""].contains(&name),
        "the runtime runs as `{user}`"
    );
}

#[test]
fn the_health_check_port_volume_and_labels_agree_with_the_code() {
    let stages = stages();
    let runtime = runtime(&stages);

    let health = runtime.last("HEALTHCHECK").expect("a HEALTHCHECK");
    let (_, command) = health.split_once("CMD").expect("HEALTHCHECK CMD");
    let command = exec_form(command.trim());
    assert_eq!(command[0], "/app/starrocks-gateway", "{command:?}");
    let help = std::process::Command::new(BINARY)
        .args(&command[1..])
        .arg("--help")
        .output()
        .expect("the binary runs");
    assert!(
        help.status.success(),
        "the health check's subcommand exists: {}",
        String::from_utf8_lossy(&help.stderr)
    );
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("http://127.0.0.1:8080/healthz"), "{help}");

    let example: toml::Value =
        std::fs::read_to_string(Path::new(ROOT).join("config/gateway.example.toml"))
            .expect("the example config")
            .parse()
            .expect("TOML");
    let listen = example["server"]["listen"].as_str().expect("server.listen");
    let port = listen.rsplit(':').next().expect("a port");
    let exposed: Vec<&str> = runtime
        .all("EXPOSE")
        .flat_map(str::split_whitespace)
        .collect();
    assert_eq!(
        exposed,
        vec![port],
        "EXPOSE matches the example's server.listen"
    );

    let volume = runtime
        .last("VOLUME")
        .expect("a VOLUME for the SQLite data");
    let database = runtime
        .all("ENV")
        .find_map(|env| env.strip_prefix("SRGW_STORAGE__URL="))
        .expect("the image's storage URL");
    let file = database
        .strip_prefix("sqlite://")
        .expect("SQLite by default");
    assert_eq!(
        Path::new(file).parent(),
        Some(Path::new(volume)),
        "the SQLite file lies in the volume"
    );

    let labels: Vec<&str> = runtime.all("LABEL").collect();
    let label = |key: &str| {
        labels
            .iter()
            .flat_map(|l| l.split("\" "))
            .find_map(|pair| pair.trim().strip_prefix(&format!("{key}=")))
            .map(|value| value.trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("no {key} label"))
    };
    assert_eq!(label("org.opencontainers.image.title"), "starrocks-gateway");
    assert_eq!(
        label("org.opencontainers.image.licenses"),
        env!("CARGO_PKG_LICENSE")
    );
    assert_eq!(label("org.opencontainers.image.version"), "${VERSION}");
    let version = runtime
        .all("ARG")
        .find_map(|arg| arg.strip_prefix("VERSION="))
        .expect("ARG VERSION");
    assert_eq!(
        version,
        env!("CARGO_PKG_VERSION"),
        "the label's default version"
    );
}
