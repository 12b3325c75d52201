//! Runs a container of a pod the operator builds as a local process, the way the kubelet would:
//! its exact command, arguments and environment (Secret references resolved), with each
//! volume mount mapped to a temporary directory filled with what the volume would hold. The
//! only change is the listen address (a free port on a test address, since tests run side by
//! side), so the test meets the binary with exactly what the operator produces.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PodSpec};
use tokio::process::Command;

/// The Secrets and ConfigMaps the pod's volumes and environment read: name → key → value.
#[derive(Default, Clone)]
pub struct Objects {
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
}

/// A container ready to run: mount paths mapped under `root`.
pub struct LocalContainer {
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// (container path, host path), longest first.
    pub mounts: Vec<(String, PathBuf)>,
}

impl LocalContainer {
    /// Lays out the volumes of `container` under `root` and resolves its environment.
    pub fn prepare(pod: &PodSpec, container: &Container, objects: &Objects, root: &Path) -> Self {
        let mut mounts = Vec::new();
        let mut written: Vec<(PathBuf, String)> = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let volume = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == m.name)
                .unwrap_or_else(|| {
                    panic!(
                        "volume {} of mount {} is not in the pod",
                        m.name, m.mount_path
                    )
                });
            // One directory per volume, as in a pod: an init container and the main container
            // that mount the same emptyDir see the same files.
            let host = root.join(format!("volume-{}", m.name));
            std::fs::create_dir_all(&host).unwrap();
            let mut files: BTreeMap<String, String> = BTreeMap::new();
            if let Some(s) = &volume.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                files.extend(objects.secrets.get(&name).cloned().unwrap_or_default());
            }
            if let Some(c) = &volume.config_map {
                files.extend(
                    objects
                        .config_maps
                        .get(&c.name)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            if let Some(p) = &volume.projected {
                for source in p.sources.iter().flatten() {
                    let Some(s) = &source.secret else { continue };
                    let data = objects.secrets.get(&s.name).cloned().unwrap_or_default();
                    match &s.items {
                        Some(items) => {
                            for item in items {
                                if let Some(v) = data.get(&item.key) {
                                    files.insert(item.path.clone(), v.clone());
                                }
                            }
                        }
                        None => files.extend(data),
                    }
                }
            }
            for (name, value) in &files {
                written.push((host.join(name), value.clone()));
            }
            let host_path = match &m.sub_path {
                Some(sub) => host.join(sub),
                None => host,
            };
            mounts.push((m.mount_path.clone(), host_path));
        }
        mounts.sort_by_key(|(c, _)| std::cmp::Reverse(c.len()));
        // Files that name paths in the pod's volumes (the router's config names its worker
        // credential directory) get the mapped paths, as the mounts themselves do.
        for (path, mut content) in written {
            for (container, host) in &mounts {
                content = content.replace(container.as_str(), &host.display().to_string());
            }
            std::fs::write(path, content).unwrap();
        }
        let mut this = LocalContainer {
            command: container.command.clone().unwrap_or_default(),
            args: container.args.clone().unwrap_or_default(),
            env: Vec::new(),
            mounts,
        };
        for e in container.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => this.host_path(v),
                (None, Some(from)) => {
                    let key = from.secret_key_ref.as_ref().unwrap_or_else(|| {
                        panic!("env {} reads something other than a Secret", e.name)
                    });
                    let found = objects.secrets.get(&key.name).and_then(|s| s.get(&key.key));
                    match found {
                        Some(v) => v.clone(),
                        // As the kubelet does: an optional key that is absent sets nothing.
                        None if key.optional == Some(true) => continue,
                        None => panic!("env {} needs Secret {}/{}", e.name, key.name, key.key),
                    }
                }
                (None, None) => String::new(),
            };
            this.env.push((e.name.clone(), value));
        }
        this
    }

    /// `text` with every mount's container path replaced by its host path.
    pub fn map_paths_in(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (container, host) in &self.mounts {
            text = text.replace(container.as_str(), &host.display().to_string());
        }
        text
    }

    /// A container path as the host sees it (paths outside every mount are left alone).
    pub fn host_path(&self, value: &str) -> String {
        for (container, host) in &self.mounts {
            if value == container {
                return host.display().to_string();
            }
            if let Some(rest) = value.strip_prefix(&format!("{container}/")) {
                return host.join(rest).display().to_string();
            }
        }
        value.to_string()
    }

    /// The command to spawn: `bin_dir` stands for the image's PATH (it holds `llm-mcp-hub` and
    /// the CLIs), `listen` replaces the `--listen` address the operator gives.
    pub fn command(&self, bin_dir: &Path, listen: &str) -> Command {
        // Arguments that name files in volumes (`--config /etc/…`) point into the mapped mounts.
        let mut args: Vec<String> = self.args.iter().map(|a| self.host_path(a)).collect();
        if let Some(i) = args.iter().position(|a| a == "--listen") {
            args[i + 1] = listen.to_string();
        }
        let (program, leading) = self
            .command
            .split_first()
            .expect("the container names a command");
        // A shell script given inline (`sh -c …`) names container paths as well.
        let leading: Vec<String> = leading.iter().map(|a| self.map_paths_in(a)).collect();
        let mut command = Command::new(bin_dir.join(program));
        command
            .args(leading)
            .args(args)
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/local/bin:/usr/bin:/bin", bin_dir.display()),
            )
            .envs(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        command
    }
}

/// The pod spec and the named container (or init container) of a Deployment.
pub fn container_of<'a>(
    deployment: &'a k8s_openapi::api::apps::v1::Deployment,
    name: &str,
) -> (&'a PodSpec, &'a Container) {
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a pod template");
    let container = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"));
    (pod, container)
}
