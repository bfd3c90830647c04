//! The Kubernetes manifests in `deploy/kubernetes/` (docs/kubernetes.md) agree with
//! certgate and with each other.
//!
//! `scripts/validate-manifests.sh` checks them against the Kubernetes API schemas. These
//! tests check what a schema cannot: the probes hit `/healthz` and `/readyz` on the port
//! `admin_listen` opens, the Service reaches the ports `listen` and `admin_listen` open,
//! the ConfigMaps are mounted as directories where `certgate.yaml` looks for them (a
//! `subPath` mount never sees an update, which would silently break hot reload), the
//! pod is locked down, sized, spread and covered by its PodDisruptionBudget, the
//! kustomization lists every file, and `certgate validate` accepts the config and the
//! roles exactly as the pods will see them.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use certgate::config::schema::GlobalConfig;
use serde_json::Value;

/// The manifests' directory.
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");
/// Not a Kubernetes resource: kustomize's list of them.
const KUSTOMIZATION: &str = "kustomization.yaml";
/// The Deployment and its container.
const NAME: &str = "certgate";
/// distroless' `nonroot` user, which the Dockerfile runs as.
const NONROOT_UID: u64 = 65532;
/// Role file extensions in `roles_dir` (README "Global config").
const ROLE_EXTENSIONS: [&str; 4] = ["yaml", "yml", "toml", "json"];

// === loading ===

/// One YAML document of a manifest file.
struct Doc {
    /// File name inside [`DIR`].
    file: String,
    value: Value,
}

/// Every resource in [`DIR`] except the kustomization.
struct Manifests {
    docs: Vec<Doc>,
}

impl Manifests {
    fn load() -> Manifests {
        let mut docs = Vec::new();
        for file in manifest_files() {
            let text = read(&Path::new(DIR).join(&file));
            let values: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"));
            for value in values.into_iter().filter(|v| !v.is_null()) {
                assert!(
                    value.get("kind").is_some_and(Value::is_string),
                    "{file}: a document without `kind`"
                );
                docs.push(Doc {
                    file: file.clone(),
                    value,
                });
            }
        }
        assert!(!docs.is_empty(), "no manifests in {DIR}");
        Manifests { docs }
    }

    /// The resource `kind`/`name`; panics with the resources there are.
    fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name).unwrap_or_else(|| {
            let have: Vec<String> = self.docs.iter().map(|d| describe(&d.value)).collect();
            panic!("no {kind}/{name} in {DIR}; there are: {have:?}")
        })
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.docs
            .iter()
            .map(|d| &d.value)
            .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .map(|d| &d.value)
            .filter(|v| v["kind"] == kind)
            .collect()
    }

    /// The only resource of `kind` in `file`.
    fn in_file(&self, file: &str, kind: &str) -> &Value {
        let found: Vec<&Value> = self
            .docs
            .iter()
            .filter(|d| d.file == file && d.value["kind"] == kind)
            .map(|d| &d.value)
            .collect();
        assert_eq!(found.len(), 1, "{file} must hold exactly one {kind}");
        found[0]
    }

    fn deployment(&self) -> &Value {
        self.get("Deployment", NAME)
    }

    fn pod_spec(&self) -> &Value {
        &self.deployment()["spec"]["template"]["spec"]
    }

    fn pod_labels(&self) -> &serde_json::Map<String, Value> {
        object(
            &self.deployment()["spec"]["template"]["metadata"]["labels"],
            "Deployment pod template labels",
        )
    }

    fn container(&self) -> &Value {
        array(&self.pod_spec()["containers"], "containers")
            .iter()
            .find(|c| c["name"] == NAME)
            .unwrap_or_else(|| panic!("the Deployment has no container named {NAME}"))
    }

    /// The `certgate-config` ConfigMap's `certgate.yaml`, parsed by certgate's own schema
    /// (so fields left out get certgate's defaults).
    fn config(&self) -> Config {
        let path = self.config_path();
        let file = file_name(&path);
        let cm = self.config_map_mounted_at(parent(&path));
        let text = cm["data"][&file]
            .as_str()
            .unwrap_or_else(|| panic!("ConfigMap {} has no key {file}", describe(cm)));
        let global: GlobalConfig = serde_saphyr::from_str(text)
            .unwrap_or_else(|e| panic!("{file} in {} does not parse: {e}", describe(cm)));
        Config { path, global }
    }

    /// `--config FILE` from the container's command and args. The image's ENTRYPOINT
    /// says the same, but only what the manifest says can be checked against its mounts.
    fn config_path(&self) -> PathBuf {
        let c = self.container();
        let argv: Vec<&str> = ["command", "args"]
            .iter()
            .filter_map(|k| c[k].as_array())
            .flatten()
            .map(|a| a.as_str().expect("command and args are strings"))
            .collect();
        assert!(
            argv.contains(&"serve"),
            "the container must run `certgate serve`: {argv:?}"
        );
        let value = argv.iter().enumerate().find_map(|(i, a)| {
            if *a == "--config" || *a == "-c" {
                argv.get(i + 1).copied()
            } else {
                a.strip_prefix("--config=")
            }
        });
        let path = PathBuf::from(value.unwrap_or_else(|| {
            panic!("the container's command/args must pass --config FILE: {argv:?}")
        }));
        assert!(
            path.is_absolute(),
            "--config {} must be absolute",
            path.display()
        );
        path
    }

    /// The container's volume mount at exactly `path`.
    fn mount_at(&self, path: &Path) -> &Value {
        array(&self.container()["volumeMounts"], "volumeMounts")
            .iter()
            .find(|m| m["mountPath"].as_str().map(Path::new) == Some(path))
            .unwrap_or_else(|| panic!("nothing is mounted at {}", path.display()))
    }

    /// The pod's volume named `name`.
    fn volume(&self, name: &str) -> &Value {
        array(&self.pod_spec()["volumes"], "volumes")
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no volume named {name}"))
    }

    /// The ConfigMap (from these manifests) mounted as a whole directory at `path`.
    fn config_map_mounted_at(&self, path: &Path) -> &Value {
        let mount = self.mount_at(path);
        let shown = path.display();
        assert!(
            mount.get("subPath").is_none() && mount.get("subPathExpr").is_none(),
            "{shown} is mounted with subPath: the kubelet never updates a subPath mount, \
             so edits would never reach certgate; mount the ConfigMap as a directory"
        );
        assert_eq!(mount["readOnly"], true, "mount {shown} readOnly");
        let volume = self.volume(str_at(mount, "/name"));
        let cm = volume
            .get("configMap")
            .unwrap_or_else(|| panic!("the volume at {shown} is not a configMap volume"));
        assert!(
            cm.get("items").is_none(),
            "the configMap volume at {shown} lists `items`: a key added later (a new role) \
             would never appear; mount every key"
        );
        self.get("ConfigMap", str_at(cm, "/name"))
    }
}

/// certgate's global config as the pods read it.
struct Config {
    /// Where the container reads it.
    path: PathBuf,
    global: GlobalConfig,
}

impl Config {
    fn dir(&self) -> &Path {
        parent(&self.path)
    }

    fn listen(&self) -> SocketAddr {
        parse_addr("listen", &self.global.listen)
    }

    fn admin_listen(&self) -> SocketAddr {
        parse_addr("admin_listen", &self.global.admin_listen)
    }

    /// A config directory resolved the way certgate resolves it.
    fn resolve(&self, dir: &Path) -> PathBuf {
        normalize(&self.dir().join(dir))
    }
}

// === the tests ===

#[test]
fn kustomization_lists_every_manifest_and_sets_their_namespace() {
    let text = read(&Path::new(DIR).join(KUSTOMIZATION));
    let k: Value = serde_saphyr::from_str(&text).expect("kustomization.yaml parses");
    assert_eq!(k["apiVersion"], "kustomize.config.k8s.io/v1beta1");
    assert_eq!(k["kind"], "Kustomization");
    let listed: Vec<&str> = array(&k["resources"], "kustomization resources")
        .iter()
        .map(|r| r.as_str().expect("resources are file names"))
        .collect();
    let listed_set: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(listed.len(), listed_set.len(), "a resource is listed twice");
    let files = manifest_files();
    let files: BTreeSet<&str> = files.iter().map(String::as_str).collect();
    assert_eq!(
        listed_set, files,
        "kustomization.yaml `resources` must list exactly the manifest files in {DIR}"
    );

    let manifests = Manifests::load();
    let namespace = str_at(&k, "/namespace");
    let ns_objects = manifests.of_kind("Namespace");
    assert_eq!(ns_objects.len(), 1, "one Namespace manifest");
    assert_eq!(ns_objects[0]["metadata"]["name"], namespace);
    for doc in &manifests.docs {
        if doc.value["kind"] != "Namespace" {
            assert_eq!(
                doc.value["metadata"]["namespace"],
                namespace,
                "{} in {}: metadata.namespace must be the kustomization's",
                describe(&doc.value),
                doc.file
            );
        }
    }
}

#[test]
fn image_tag_is_the_crate_version() {
    let manifests = Manifests::load();
    let version = env!("CARGO_PKG_VERSION");
    let image = str_at(manifests.container(), "/image");
    let (name, tag) = image.rsplit_once(':').expect("the image has a tag");
    assert_eq!(tag, version, "the Deployment's image tag");
    let k: Value = serde_saphyr::from_str(&read(&Path::new(DIR).join(KUSTOMIZATION))).unwrap();
    let entry = array(&k["images"], "kustomization images")
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("kustomization.yaml `images` has no entry for {name}"));
    assert_eq!(entry["newTag"], version, "kustomization.yaml images newTag");
}

#[test]
fn config_and_roles_are_mounted_as_directories_where_certgate_reads_them() {
    let manifests = Manifests::load();
    let config = manifests.config();

    // The config itself: a whole-directory mount of the ConfigMap holding the file.
    let config_cm = manifests.config_map_mounted_at(config.dir());
    assert_eq!(
        manifests.in_file("configmap-config.yaml", "ConfigMap")["metadata"]["name"],
        config_cm["metadata"]["name"],
        "the config directory must be configmap-config.yaml's ConfigMap"
    );

    // roles_dir: the roles ConfigMap, as a directory.
    let roles_dir = config.resolve(&config.global.roles_dir);
    let roles_cm = manifests.config_map_mounted_at(&roles_dir);
    assert_eq!(
        manifests.in_file("configmap-roles.yaml", "ConfigMap")["metadata"]["name"],
        roles_cm["metadata"]["name"],
        "roles_dir {} must be configmap-roles.yaml's ConfigMap",
        roles_dir.display()
    );
    assert!(
        !role_keys(roles_cm).is_empty(),
        "the roles ConfigMap holds no role file"
    );

    // crls_dir: its ConfigMap may be optional and absent from the manifests, but if
    // one is mounted there, every key must appear, like the roles.
    let crls_dir = config.resolve(&config.global.crls_dir);
    let mounts = array(&manifests.container()["volumeMounts"], "volumeMounts");
    if let Some(m) = mounts
        .iter()
        .find(|m| m["mountPath"].as_str().map(Path::new) == Some(crls_dir.as_path()))
    {
        let volume = manifests.volume(str_at(m, "/name"));
        assert!(
            volume["configMap"].get("items").is_none(),
            "the volume at crls_dir {} lists `items`: a CRL added later would never appear",
            crls_dir.display()
        );
    }

    // No subPath anywhere: every file certgate reads must follow ConfigMap updates.
    for m in mounts {
        assert!(
            m.get("subPath").is_none() && m.get("subPathExpr").is_none(),
            "volume mount {} uses subPath, which never sees ConfigMap updates",
            m["mountPath"]
        );
    }
}

#[test]
fn config_and_roles_pass_certgate_validate() {
    let manifests = Manifests::load();
    let config = manifests.config();
    let tmp = tempfile::tempdir().expect("temp dir");

    // Recreate the pod's view of the config directory: every ConfigMap volume mounted
    // at or below it, at the same relative path.
    let mut written = 0;
    for m in array(&manifests.container()["volumeMounts"], "volumeMounts") {
        let mount_path = Path::new(str_at(m, "/mountPath"));
        let Ok(rel) = mount_path.strip_prefix(config.dir()) else {
            continue;
        };
        let volume = manifests.volume(str_at(m, "/name"));
        let Some(cm_ref) = volume.get("configMap") else {
            continue;
        };
        let cm_name = str_at(cm_ref, "/name");
        let Some(cm) = manifests.find("ConfigMap", cm_name) else {
            assert_eq!(
                cm_ref["optional"], true,
                "ConfigMap {cm_name} is mounted but not in the manifests, and not optional"
            );
            continue; // an optional ConfigMap that is absent: an empty directory
        };
        let dir = tmp.path().join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        for (key, value) in cm["data"].as_object().into_iter().flatten() {
            let text = value.as_str().expect("ConfigMap data values are strings");
            std::fs::write(dir.join(key), text).unwrap();
            written += 1;
        }
        for (key, value) in cm["binaryData"].as_object().into_iter().flatten() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().expect("binaryData values are strings"))
                .unwrap_or_else(|e| panic!("{cm_name} binaryData {key}: {e}"));
            std::fs::write(dir.join(key), bytes).unwrap();
            written += 1;
        }
    }
    assert!(
        written > 0,
        "no ConfigMap files under {}",
        config.dir().display()
    );
    let config_file = tmp.path().join(file_name(&config.path));
    assert!(config_file.is_file(), "the config file was not written");

    let out = Command::new(env!("CARGO_BIN_EXE_certgate"))
        .arg("validate")
        .arg("--config")
        .arg(&config_file)
        .env_remove("CERTGATE_LOG")
        .output()
        .expect("run certgate validate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "certgate validate rejects the manifests' config:\n{stdout}\n{stderr}"
    );
    assert!(
        !stderr.contains("warning:"),
        "certgate validate warns about the manifests' config:\n{stderr}"
    );
    let roles_cm = manifests.config_map_mounted_at(&config.resolve(&config.global.roles_dir));
    for key in role_keys(roles_cm) {
        let role = key.rsplit_once('.').unwrap().0.to_ascii_lowercase();
        assert!(
            stdout.contains(&format!("role {role}:")),
            "certgate validate did not load role {role} from {key}:\n{stdout}"
        );
    }
}

#[test]
fn container_and_service_ports_match_listen_and_admin_listen() {
    let manifests = Manifests::load();
    let config = manifests.config();
    let (grpc, admin) = (config.listen(), config.admin_listen());
    for (field, addr) in [("listen", grpc), ("admin_listen", admin)] {
        assert!(
            !addr.ip().is_loopback(),
            "{field} {addr} is loopback: nothing outside the pod (Envoy, the kubelet's \
             probes, Prometheus) could reach it"
        );
    }
    assert_ne!(grpc.port(), admin.port());

    let container = manifests.container();
    assert_eq!(
        container_port(container, "grpc"),
        grpc.port(),
        "port `grpc`"
    );
    assert_eq!(
        container_port(container, "admin"),
        admin.port(),
        "port `admin`"
    );

    let labels = manifests.pod_labels();
    let mut grpc_services = 0;
    for svc in manifests.of_kind("Service") {
        let what = describe(svc);
        let selector = object(&svc["spec"]["selector"], "Service selector");
        assert!(!selector.is_empty(), "{what} has no selector");
        assert!(
            selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
            "{what}'s selector {selector:?} does not select the pods {labels:?}"
        );
        for port in array(&svc["spec"]["ports"], "Service ports") {
            let target = resolve_port(container, &port["targetPort"]);
            let number = port["port"].as_u64().expect("Service port number");
            assert!(
                target == grpc.port() || target == admin.port(),
                "{what} port {number} targets {target}, which certgate does not listen on"
            );
            assert_eq!(
                number,
                u64::from(target),
                "{what}: keep the Service port equal to the container port"
            );
            if target == grpc.port() {
                grpc_services += 1;
                assert_eq!(
                    port["appProtocol"], "grpc",
                    "{what}: the gRPC port needs appProtocol grpc (HTTP/2 for meshes)"
                );
            } else {
                assert_eq!(port["appProtocol"], "http", "{what}: the admin port");
            }
        }
    }
    let main = manifests.get("Service", NAME);
    let targets: Vec<u16> = array(&main["spec"]["ports"], "ports")
        .iter()
        .map(|p| resolve_port(container, &p["targetPort"]))
        .collect();
    assert!(
        targets.contains(&grpc.port()) && targets.contains(&admin.port()),
        "Service {NAME} must expose both the gRPC and the admin port, as separate ports"
    );
    assert!(grpc_services >= 1);
}

#[test]
fn probes_hit_healthz_and_readyz_on_the_admin_port() {
    let manifests = Manifests::load();
    let admin = manifests.config().admin_listen().port();
    let container = manifests.container();
    let probe = |kind: &str, paths: &[&str]| {
        let p = container
            .get(kind)
            .unwrap_or_else(|| panic!("the container has no {kind}"));
        let get = p
            .get("httpGet")
            .unwrap_or_else(|| panic!("{kind} is not an httpGet probe"));
        let path = str_at(get, "/path");
        assert!(
            paths.contains(&path),
            "{kind} probes {path}, expected one of {paths:?}"
        );
        assert_eq!(
            resolve_port(container, &get["port"]),
            admin,
            "{kind} must probe the admin port (admin_listen)"
        );
        assert!(
            get.get("scheme").is_none_or(|s| s == "HTTP"),
            "{kind}: the admin endpoint is plain HTTP"
        );
    };
    // Liveness must never be /readyz: a draining or still-loading pod is alive.
    probe("livenessProbe", &["/healthz"]);
    probe("readinessProbe", &["/readyz"]);
    probe("startupProbe", &["/healthz", "/readyz"]);
}

#[test]
fn pod_runs_locked_down() {
    let manifests = Manifests::load();
    let pod = &manifests.pod_spec()["securityContext"];
    let c = &manifests.container()["securityContext"];
    // The container's securityContext overrides the pod's.
    let effective = |pointer: &str| -> &Value {
        c.pointer(pointer)
            .or_else(|| pod.pointer(pointer))
            .unwrap_or(&Value::Null)
    };
    assert_eq!(effective("/runAsNonRoot"), true, "runAsNonRoot");
    assert_eq!(effective("/runAsUser"), NONROOT_UID, "runAsUser");
    assert_eq!(
        effective("/seccompProfile/type"),
        "RuntimeDefault",
        "seccompProfile"
    );
    assert_eq!(c["readOnlyRootFilesystem"], true, "readOnlyRootFilesystem");
    assert_eq!(
        c["allowPrivilegeEscalation"], false,
        "allowPrivilegeEscalation"
    );
    assert_ne!(c["privileged"], true, "privileged");
    let drop = array(&c["capabilities"]["drop"], "capabilities.drop");
    assert!(
        drop.iter().any(|d| d == "ALL"),
        "capabilities.drop must be [ALL]"
    );
    assert!(
        c["capabilities"]["add"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "no capabilities may be added"
    );
    let spec = manifests.pod_spec();
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(spec[host], true, "{host}");
    }
    assert_eq!(
        spec["automountServiceAccountToken"], false,
        "certgate never calls the Kubernetes API: no service account token"
    );
}

#[test]
fn resources_are_requested_and_memory_is_limited() {
    let manifests = Manifests::load();
    let r = &manifests.container()["resources"];
    let cpu_request = cpu_millis(&quantity(&r["requests"]["cpu"], "requests.cpu"));
    let mem_request = bytes(&quantity(&r["requests"]["memory"], "requests.memory"));
    let mem_limit = bytes(&quantity(&r["limits"]["memory"], "limits.memory"));
    assert!(cpu_request > 0, "requests.cpu");
    assert!(
        mem_request >= 16 << 20,
        "requests.memory below certgate's measured idle RSS (docs/kubernetes.md)"
    );
    assert!(
        mem_limit >= mem_request,
        "limits.memory {mem_limit} < requests.memory {mem_request}"
    );
    if !r["limits"]["cpu"].is_null() {
        let cpu_limit = cpu_millis(&quantity(&r["limits"]["cpu"], "limits.cpu"));
        assert!(cpu_limit >= cpu_request, "limits.cpu < requests.cpu");
    }
}

#[test]
fn replicas_are_spread_and_the_budget_selects_them() {
    let manifests = Manifests::load();
    let deployment = manifests.deployment();
    let replicas = deployment["spec"]["replicas"]
        .as_u64()
        .expect("spec.replicas is set");
    assert!(
        replicas >= 2,
        "at least 2 replicas: every request waits on one"
    );

    let selector = object(
        &deployment["spec"]["selector"]["matchLabels"],
        "Deployment selector",
    );
    let labels = manifests.pod_labels();
    assert!(
        selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        "the Deployment's selector does not match its own pod labels"
    );

    let pdbs = manifests.of_kind("PodDisruptionBudget");
    assert_eq!(pdbs.len(), 1, "one PodDisruptionBudget");
    let pdb = pdbs[0];
    assert_eq!(pdb["apiVersion"], "policy/v1");
    assert_eq!(
        object(&pdb["spec"]["selector"]["matchLabels"], "PDB selector"),
        selector,
        "the PodDisruptionBudget must select exactly the Deployment's pods"
    );
    assert!(
        pdb["spec"]["selector"].get("matchExpressions").is_none(),
        "PDB selector: matchLabels only"
    );
    let spec = &pdb["spec"];
    let allowed = match (
        spec["maxUnavailable"].as_u64(),
        spec["minAvailable"].as_u64(),
    ) {
        (Some(max), None) => max,
        (None, Some(min)) => replicas.saturating_sub(min),
        _ => panic!("the PDB sets one integer maxUnavailable or minAvailable"),
    };
    assert!(
        (1..replicas).contains(&allowed),
        "the PDB must allow 1..{replicas} disruptions (node drains must proceed, and one \
         pod must stay), allows {allowed}"
    );

    // Replicas on different nodes: a topology spread or an anti-affinity by hostname,
    // selecting these pods.
    let pod = manifests.pod_spec();
    let selects_us = |sel: &Value| {
        object(&sel["matchLabels"], "labelSelector.matchLabels")
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    let by_spread = pod["topologySpreadConstraints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| t["topologyKey"] == "kubernetes.io/hostname" && selects_us(&t["labelSelector"]));
    let anti = &pod["affinity"]["podAntiAffinity"];
    let by_anti = ["requiredDuringSchedulingIgnoredDuringExecution"]
        .iter()
        .filter_map(|k| anti[k].as_array())
        .flatten()
        .chain(
            anti["preferredDuringSchedulingIgnoredDuringExecution"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| &p["podAffinityTerm"]),
        )
        .any(|t| t["topologyKey"] == "kubernetes.io/hostname" && selects_us(&t["labelSelector"]));
    assert!(
        by_spread || by_anti,
        "spread the replicas over nodes (topologySpreadConstraints or podAntiAffinity on \
         kubernetes.io/hostname selecting the pods)"
    );
}

#[test]
fn shutdown_drains_and_metrics_are_scraped() {
    let manifests = Manifests::load();
    let pod = manifests.pod_spec();
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds is set");
    let pre_stop = manifests.container()["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        grace >= pre_stop + 10,
        "terminationGracePeriodSeconds {grace} leaves less than 10 s to drain after the \
         {pre_stop} s preStop sleep"
    );

    let admin = manifests.config().admin_listen().port();
    let annotations = object(
        &manifests.deployment()["spec"]["template"]["metadata"]["annotations"],
        "pod annotations",
    );
    let annotation = |k: &str| annotations.get(k).and_then(Value::as_str);
    assert_eq!(annotation("prometheus.io/scrape"), Some("true"));
    assert_eq!(
        annotation("prometheus.io/port"),
        Some(admin.to_string().as_str()),
        "prometheus.io/port must be the admin port"
    );
    assert_eq!(annotation("prometheus.io/path"), Some("/metrics"));
}

// === helpers ===

/// `*.yaml` / `*.yml` in [`DIR`] except the kustomization, sorted.
fn manifest_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(DIR)
        .unwrap_or_else(|e| panic!("{DIR}: {e}"))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| (n.ends_with(".yaml") || n.ends_with(".yml")) && n != KUSTOMIZATION)
        .collect();
    files.sort();
    files
}

/// The keys of a roles ConfigMap that certgate loads as roles.
fn role_keys(cm: &Value) -> Vec<String> {
    let mut keys: Vec<String> = ["data", "binaryData"]
        .iter()
        .filter_map(|k| cm[k].as_object())
        .flat_map(|m| m.keys())
        .filter(|k| {
            !k.starts_with('.')
                && k.rsplit_once('.').is_some_and(|(_, ext)| {
                    ROLE_EXTENSIONS.iter().any(|e| ext.eq_ignore_ascii_case(e))
                })
        })
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// The number of the container port `name`.
fn container_port(container: &Value, name: &str) -> u16 {
    resolve_port(container, &Value::String(name.into()))
}

/// A probe's or Service's port (a number or a container port name) as a number.
fn resolve_port(container: &Value, port: &Value) -> u16 {
    let number = match port {
        Value::Number(n) => n.as_u64(),
        Value::String(name) => array(&container["ports"], "container ports")
            .iter()
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64()),
        _ => None,
    };
    number
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or_else(|| panic!("port {port} is not a container port"))
}

fn parse_addr(field: &str, value: &str) -> SocketAddr {
    value
        .parse()
        .unwrap_or_else(|e| panic!("{field}: {value:?} is not an ip:port: {e}"))
}

/// A Kubernetes memory quantity in bytes (`64Mi`, `1G`, `134217728`).
fn bytes(q: &str) -> u64 {
    let units: [(&str, u64); 10] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("m", 0), // milli-bytes: legal, never meant
        ("", 1),
    ];
    let (number, factor) = units
        .iter()
        .find_map(|(suffix, f)| q.strip_suffix(suffix).map(|n| (n, *f)))
        .unwrap();
    assert!(factor > 0, "memory quantity {q:?} in milli-bytes");
    let n: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("memory quantity {q:?}"));
    (n * factor as f64) as u64
}

/// A Kubernetes CPU quantity in millicores (`100m`, `0.5`, `2`).
fn cpu_millis(q: &str) -> u64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or_else(|_| panic!("cpu quantity {q:?}")),
        None => {
            let cores: f64 = q.parse().unwrap_or_else(|_| panic!("cpu quantity {q:?}"));
            (cores * 1000.0) as u64
        }
    }
}

/// Removes `.` and `..` components without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .unwrap_or_else(|| panic!("{} has no parent", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_else(|| panic!("{} has no file name", path.display()))
        .to_string_lossy()
        .into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `kind/name` for messages.
fn describe(v: &Value) -> String {
    format!(
        "{}/{}",
        v["kind"].as_str().unwrap_or("?"),
        v["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} is not a string in {v}"))
}

/// A quantity written as a string (`64Mi`) or a bare number (`1`).
fn quantity(v: &Value, what: &str) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => panic!("{what} is not set"),
    }
}

fn array<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not a list: {v}"))
}

fn object<'a>(v: &'a Value, what: &str) -> &'a serde_json::Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what} is not a map: {v}"))
}
