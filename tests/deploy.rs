//! The deployment files are contracts with the binary and with each other: the Kubernetes
//! objects `kubectl kustomize` renders (selectors that select, ports and paths that exist,
//! probes on the agent's own endpoints, rules and dashboards equal to the repository's files),
//! the systemd unit (`systemd-analyze verify` and its sandbox score), and the Dockerfile. The
//! StatefulSet's and the unit's command lines are run for real against a simulator, with their
//! volumes and credentials mapped to temporary directories.
//!
//! Needs `kubectl` and `systemd-analyze`: skipped with a notice without them, a failure under
//! `CI=true` (.ci/install-deploy-tools.sh).

mod common;

use common::{spawn, tool_available};
use itniotech_exporter::config::{Config, DEFAULT_PORT};
use itniotech_exporter::server::{HEALTHY_PATH, INTAKE_PATH, INTAKE_READY_PATH, READY_PATH};
use itniotech_exporter::simulator::{SimConfig, Simulator, DEMO_API_KEY};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const INSTALL_HINT: &str = "run .ci/install-deploy-tools.sh";
const SECRET: &str = "s3cr3t-Deploy-Test";
const TOKEN: &str = "intake-token-of-the-deploy-test";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `kubectl kustomize DIR` as JSON values, one per object; `None` without kubectl.
fn kustomize(dir: &Path) -> Option<Vec<Value>> {
    if !tool_available("kubectl", &["version", "--client"], INSTALL_HINT) {
        return None;
    }
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    Some(
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|doc| {
                let y = serde_yaml_ng::Value::deserialize(doc).unwrap();
                serde_json::to_value(y).unwrap()
            })
            .collect(),
    )
}

fn base() -> Option<Vec<Value>> {
    kustomize(&root().join("deploy/kubernetes/base"))
}

fn objects<'a>(all: &'a [Value], kind: &str) -> Vec<&'a Value> {
    all.iter().filter(|o| o["kind"] == kind).collect()
}

fn object<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<_> = objects(all, kind)
        .into_iter()
        .filter(|o| o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} {name}");
    found[0]
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every pair of `selector` is among `labels` (a non-empty selector).
fn selects(selector: &Value, labels: &Value) -> bool {
    let (selector, labels) = (str_map(selector), str_map(labels));
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn statefulset(all: &[Value]) -> &Value {
    object(all, "StatefulSet", "itniotech-exporter")
}

fn container(sts: &Value) -> &Value {
    let containers = sts["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The value of `--flag=value` in an argument list.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
}

fn mount_path<'a>(container: &'a Value, volume: &str) -> &'a str {
    container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume)
        .and_then(|m| m["mountPath"].as_str())
        .unwrap_or_else(|| panic!("volume {volume} is mounted"))
}

fn volume<'a>(sts: &'a Value, name: &str) -> &'a Value {
    sts["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("volume {name}"))
}

#[test]
#[cfg_attr(
    not(tool_kubectl),
    ignore = "needs kubectl (.ci/install-deploy-tools.sh)"
)]
fn base_renders_exactly_the_documented_objects() {
    let Some(all) = base() else { return };
    let mut got: Vec<(String, String)> = all
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = [
        ("ConfigMap", "itniotech-exporter-config"),
        ("NetworkPolicy", "itniotech-exporter"),
        ("PodDisruptionBudget", "itniotech-exporter"),
        ("Service", "itniotech-exporter"),
        ("Service", "itniotech-exporter-headless"),
        ("ServiceAccount", "itniotech-exporter"),
        ("ServiceMonitor", "itniotech-exporter"),
        ("StatefulSet", "itniotech-exporter"),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    // The config ConfigMap carries kustomize's content hash.
    for (kind, name) in &mut got {
        if kind == "ConfigMap" && name.starts_with("itniotech-exporter-config-") {
            *name = "itniotech-exporter-config".into();
        }
    }
    for rules in rule_files() {
        want.push(("PrometheusRule".into(), rule_object_name(&rules)));
    }
    for json in dashboard_files() {
        want.push(("ConfigMap".into(), dashboard_object_name(&json)));
    }
    want.sort();
    assert_eq!(got, want);
    // Nothing namespaced is pinned to a namespace in the base: overlays choose it.
    for o in &all {
        assert!(o["metadata"]["namespace"].is_null(), "{o}");
    }
}

#[test]
#[cfg_attr(
    not(tool_kubectl),
    ignore = "needs kubectl (.ci/install-deploy-tools.sh)"
)]
fn statefulset_gives_each_replica_its_volume_probes_and_a_restricted_sandbox() {
    let Some(all) = base() else { return };
    let sts = statefulset(&all);
    let spec = &sts["spec"];
    let pod = &spec["template"]["spec"];
    let c = container(sts);
    let a = args(c);

    // One claim per replica, kept when a replica is scaled away or the set deleted.
    let claims = spec["volumeClaimTemplates"].as_array().unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["spec"]["accessModes"][0], "ReadWriteOnce");
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"],
        "Retain"
    );
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"],
        "Retain"
    );
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    let claim = claims[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(flag(&a, "--storage.path"), Some(mount_path(c, claim)));
    assert!(selects(
        &spec["selector"]["matchLabels"],
        &spec["template"]["metadata"]["labels"]
    ));

    // The governing Service is the headless one.
    let governing = object(&all, "Service", spec["serviceName"].as_str().unwrap());
    assert_eq!(governing["spec"]["clusterIP"], "None");

    // Image: the project's, tagged with this version.
    let image = c["image"].as_str().unwrap();
    assert_eq!(
        image,
        format!(
            "ghcr.io/itniotech-exporter/itniotech-exporter:{}",
            env!("CARGO_PKG_VERSION")
        )
    );

    // Port and probes: the agent's own endpoints on its default port.
    assert_eq!(a[0], "run");
    let ports = c["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[0]["containerPort"], DEFAULT_PORT);
    assert_eq!(ports[0]["name"], "http");
    assert_eq!(
        flag(&a, "--web.listen-address"),
        Some(format!("0.0.0.0:{DEFAULT_PORT}").as_str())
    );
    // The capture proxy listens where its named port says.
    assert_eq!(ports[1]["name"], "proxy");
    assert_eq!(
        flag(&a, "--proxy.listen-address"),
        Some(format!("0.0.0.0:{}", ports[1]["containerPort"]).as_str())
    );
    for (probe, path) in [
        ("startupProbe", HEALTHY_PATH),
        ("livenessProbe", HEALTHY_PATH),
        // Not READY_PATH: a vendor outage would take every replica out of the intake.
        ("readinessProbe", INTAKE_READY_PATH),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "http", "{probe}");
    }

    // Credentials from the Secret volume, never from the environment or the args themselves.
    let secrets_dir = mount_path(c, "secrets");
    let secret = &volume(sts, "secrets")["secret"];
    assert_eq!(secret["secretName"], "itniotech-exporter");
    for (name, key) in [
        ("--api.key-file", "api-key"),
        ("--api.secret-file", "api-secret"),
        ("--intake.token-file", "intake-token"),
    ] {
        assert_eq!(
            flag(&a, name),
            Some(format!("{secrets_dir}/{key}").as_str()),
            "{name}"
        );
    }
    assert!(c["env"].is_null(), "no environment: secrets come as files");
    let config_dir = mount_path(c, "config");
    assert_eq!(
        flag(&a, "--config.file"),
        Some(format!("{config_dir}/config.toml").as_str())
    );

    // The "restricted" Pod Security Standard, and no API token.
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert!(psc["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    let csc = &c["securityContext"];
    assert_eq!(csc["allowPrivilegeEscalation"], false);
    assert_eq!(csc["readOnlyRootFilesystem"], true);
    assert_eq!(csc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
}

#[test]
#[cfg_attr(
    not(tool_kubectl),
    ignore = "needs kubectl (.ci/install-deploy-tools.sh)"
)]
fn services_monitor_budget_and_policy_select_the_agents() {
    let Some(all) = base() else { return };
    let sts = statefulset(&all);
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    let c = container(sts);
    let container_ports: BTreeMap<&str, &serde_json::Value> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), &p["containerPort"]))
        .collect();

    let intake = object(&all, "Service", "itniotech-exporter");
    let headless = object(&all, "Service", "itniotech-exporter-headless");
    for svc in [intake, headless] {
        assert!(selects(&svc["spec"]["selector"], pod_labels), "{svc}");
        for p in svc["spec"]["ports"].as_array().unwrap() {
            // Each Service port is the container's port of that name, number unchanged.
            let target = container_ports[p["targetPort"].as_str().unwrap()];
            assert_eq!(&p["port"], target, "{svc}");
        }
    }
    let names = |svc: &serde_json::Value| -> Vec<String> {
        svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    // Apps reach the intake and the proxy; Prometheus scrapes only the web port.
    assert_eq!(names(intake), ["http", "proxy"]);
    assert_eq!(names(headless), ["http"]);
    // Draining: relabelling a pod takes it out of the intake Service, not out of the scrape.
    let intake_sel = str_map(&intake["spec"]["selector"]);
    let sts_sel = str_map(&sts["spec"]["selector"]["matchLabels"]);
    let drain_keys: Vec<&String> = intake_sel
        .keys()
        .filter(|k| !sts_sel.contains_key(*k))
        .collect();
    assert_eq!(drain_keys, ["itniotech-exporter/intake"]);
    assert!(str_map(&headless["spec"]["selector"])
        .keys()
        .all(|k| sts_sel.contains_key(k)));
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);

    // The ServiceMonitor scrapes through exactly one Service (the headless one), so every pod
    // is scraped once.
    let sm = object(&all, "ServiceMonitor", "itniotech-exporter");
    let monitored: Vec<&Value> = objects(&all, "Service")
        .into_iter()
        .filter(|s| {
            selects(
                &sm["spec"]["selector"]["matchLabels"],
                &s["metadata"]["labels"],
            )
        })
        .collect();
    assert_eq!(monitored.len(), 1);
    assert_eq!(
        monitored[0]["metadata"]["name"],
        "itniotech-exporter-headless"
    );
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["path"], "/metrics");
    assert!(headless["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == endpoint["port"]));
    // A stable instance label across restarts (the pod name).
    assert!(endpoint["relabelings"]
        .as_array()
        .unwrap()
        .iter()
        .any(
            |r| r["sourceLabels"] == serde_json::json!(["__meta_kubernetes_pod_name"])
                && r["targetLabel"] == "instance"
        ));

    let pdb = object(&all, "PodDisruptionBudget", "itniotech-exporter");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"], pod_labels));
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);

    let np = object(&all, "NetworkPolicy", "itniotech-exporter");
    assert!(selects(
        &np["spec"]["podSelector"]["matchLabels"],
        pod_labels
    ));
    assert_eq!(
        np["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let ingress = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(ingress.len(), 1);
    let ingress_ports: Vec<&str> = ingress[0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_str().unwrap())
        .collect();
    assert_eq!(ingress_ports, ["http", "proxy"]);
    let egress_ports: Vec<(u64, &str)> = np["spec"]["egress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["ports"].as_array().unwrap())
        .map(|p| (p["port"].as_u64().unwrap(), p["protocol"].as_str().unwrap()))
        .collect();
    assert_eq!(egress_ports, [(53, "UDP"), (53, "TCP"), (443, "TCP")]);
}

/// The rule files the PrometheusRules are made of.
fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("alerts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("itniotech-") && name.ends_with(".yml")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 2, "alerts and recording rules");
    files
}

fn rule_object_name(file: &Path) -> String {
    let stem = file.file_stem().unwrap().to_str().unwrap();
    format!(
        "itniotech-exporter-{}",
        stem.strip_prefix("itniotech-").unwrap()
    )
}

fn dashboard_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

fn dashboard_object_name(file: &Path) -> String {
    format!(
        "itniotech-exporter-dashboard-{}",
        file.file_stem().unwrap().to_str().unwrap()
    )
}

#[test]
#[cfg_attr(
    not(tool_kubectl),
    ignore = "needs kubectl (.ci/install-deploy-tools.sh)"
)]
fn prometheus_rules_hold_exactly_the_rule_files() {
    let Some(all) = base() else { return };
    let files = rule_files();
    assert_eq!(objects(&all, "PrometheusRule").len(), files.len());
    let mut rules_seen = 0;
    for file in &files {
        let want: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(file)).unwrap();
        let want = serde_json::to_value(want).unwrap();
        let obj = object(&all, "PrometheusRule", &rule_object_name(file));
        // The whole spec is the file: the same groups, the same rules, field for field.
        assert_eq!(obj["spec"], want, "{}", file.display());
        rules_seen += want["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["rules"].as_array().unwrap().len())
            .sum::<usize>();
    }
    assert!(rules_seen > 20, "{rules_seen} rules");
}

#[test]
#[cfg_attr(
    not(tool_kubectl),
    ignore = "needs kubectl (.ci/install-deploy-tools.sh)"
)]
fn dashboards_are_configmaps_of_the_json_files() {
    let Some(all) = base() else { return };
    let maps: Vec<&Value> = objects(&all, "ConfigMap")
        .into_iter()
        .filter(|m| m["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    let files = dashboard_files();
    assert_eq!(maps.len(), files.len());
    for file in files {
        let map = object(&all, "ConfigMap", &dashboard_object_name(&file));
        let key = file.file_name().unwrap().to_str().unwrap();
        let data = map["data"].as_object().unwrap();
        assert_eq!(data.len(), 1);
        assert_eq!(data[key].as_str().unwrap(), read(&file), "{key}");
        // The sidecar's limit for one object (1 MiB, the etcd value limit) leaves room.
        assert!(read(&file).len() < 900 * 1024);
    }
}

/// Every file under `dir`, relative path → bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn generated_rules_and_dashboards_are_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(root().join("deploy/kubernetes/generate.sh"))
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed = root().join("deploy/kubernetes/base");
    for dir in ["rules", "dashboards"] {
        let (want, got) = (tree(&tmp.path().join(dir)), tree(&committed.join(dir)));
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>(),
            "deploy/kubernetes/base/{dir} is stale: run deploy/kubernetes/generate.sh"
        );
        for (path, bytes) in &want {
            assert!(
                got[path] == *bytes,
                "deploy/kubernetes/base/{dir}/{} is stale: run deploy/kubernetes/generate.sh",
                path.display()
            );
        }
    }
}

/// The `api.max_rps` of a rendered config ConfigMap, validated by the agent's own parser.
fn config_max_rps(all: &[Value]) -> f64 {
    let map = objects(all, "ConfigMap")
        .into_iter()
        .find(|m| {
            m["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("itniotech-exporter-config-")
        })
        .expect("config ConfigMap");
    let text = map["data"]["config.toml"].as_str().unwrap();
    let cfg = Config::from_toml(Path::new("config.toml"), text).expect("a valid config file");
    cfg.api.max_rps.get()
}

#[test]
#[cfg_attr(
    not(tool_kubectl),
    ignore = "needs kubectl (.ci/install-deploy-tools.sh)"
)]
fn call_budget_is_split_between_the_replicas() {
    let Some(all) = base() else { return };
    let replicas = statefulset(&all)["spec"]["replicas"].as_f64().unwrap();
    // The account budget the docs assume: the single agent's default, 10 requests/s.
    let budget = Config::default().api.max_rps.get();
    assert_eq!(config_max_rps(&all) * replicas, budget);
}

/// deploy/kubernetes copied to a temporary directory, with the example overlay's secret files.
fn example_overlay() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let mut stack = vec![root().join("deploy/kubernetes")];
    let src_root = root().join("deploy/kubernetes");
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let to = tmp.path().join(p.strip_prefix(&src_root).unwrap());
            if p.is_dir() {
                std::fs::create_dir_all(&to).unwrap();
                stack.push(p);
            } else {
                std::fs::copy(&p, &to).unwrap();
            }
        }
    }
    let overlay = tmp.path().join("overlays/example");
    for (key, value) in [
        ("api-key", DEMO_API_KEY),
        ("api-secret", SECRET),
        ("intake-token", TOKEN),
    ] {
        std::fs::write(overlay.join("secrets").join(key), format!("{value}\n")).unwrap();
    }
    (tmp, overlay)
}

#[test]
#[cfg_attr(
    not(tool_kubectl),
    ignore = "needs kubectl (.ci/install-deploy-tools.sh)"
)]
fn example_overlay_wires_secret_namespace_replicas_and_budget() {
    if !tool_available("kubectl", &["version", "--client"], INSTALL_HINT) {
        return;
    }
    let (_tmp, overlay) = example_overlay();
    let all = kustomize(&overlay).unwrap();
    let sts = statefulset(&all);
    let replicas = sts["spec"]["replicas"].as_f64().unwrap();
    assert_eq!(replicas, 3.0);
    // Three replicas share no more than the single agent's budget.
    assert!(config_max_rps(&all) * replicas <= Config::default().api.max_rps.get());

    let secret = objects(&all, "Secret");
    assert_eq!(secret.len(), 1);
    let secret = secret[0];
    assert_eq!(
        volume(sts, "secrets")["secret"]["secretName"],
        secret["metadata"]["name"]
    );
    let keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["api-key", "api-secret", "intake-token"]);

    let ns = object(&all, "Namespace", "otp-monitoring");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    for o in &all {
        if o["kind"] != "Namespace" {
            assert_eq!(o["metadata"]["namespace"], "otp-monitoring", "{o}");
        }
        if o["apiVersion"]
            .as_str()
            .unwrap()
            .starts_with("monitoring.coreos.com/")
        {
            assert_eq!(o["metadata"]["labels"]["release"], "kube-prometheus-stack");
        }
    }
}

/// Starts the in-process simulator (real clock) checking the test's secret.
async fn simulator() -> String {
    let sim = Simulator::new(
        SimConfig {
            api_secret: SECRET.into(),
            ..SimConfig::default()
        },
        itniotech_exporter::clock::system(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.serve(listener));
    url
}

/// The agent answers on `paths` and takes orders only with the token.
async fn check_running_agent(addr: &str, paths: &[&str]) {
    let http = reqwest::Client::new();
    for path in paths {
        let ok = common::eventually(Duration::from_secs(30), || async {
            let r = http.get(format!("http://{addr}{path}")).send().await.ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        assert!(ok.is_some(), "{path} answers 200");
    }
    let order = serde_json::json!({"appId": "deployApp", "orderId": "d-1"});
    let url = format!("http://{addr}{INTAKE_PATH}");
    let r = http.post(&url).json(&order).send().await.unwrap();
    assert_eq!(r.status(), 401, "the intake needs the token");
    let r = http
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let metrics = common::scrape(&http, addr).await.unwrap();
    assert_eq!(
        common::sum(&metrics, "itniotech_exporter_build_info", &[]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tool_kubectl),
    ignore = "needs kubectl (.ci/install-deploy-tools.sh)"
)]
async fn statefulset_command_line_runs_the_agent() {
    let Some(all) = base() else { return };
    let sts = statefulset(&all);
    let c = container(sts);
    let tmp = tempfile::tempdir().unwrap();
    // Each volume mount becomes a directory, filled the way Kubernetes would fill it.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in c["volumeMounts"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let is_claim = sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["metadata"]["name"] == name);
        if !is_claim {
            let v = volume(sts, name);
            if v["secret"].is_object() {
                for (key, value) in [
                    ("api-key", DEMO_API_KEY),
                    ("api-secret", SECRET),
                    ("intake-token", TOKEN),
                ] {
                    std::fs::write(dir.join(key), format!("{value}\n")).unwrap();
                }
            } else if v["configMap"].is_object() {
                let cm_name = v["configMap"]["name"].as_str().unwrap();
                let cm = object(&all, "ConfigMap", cm_name);
                for (key, value) in cm["data"].as_object().unwrap() {
                    std::fs::write(dir.join(key), value.as_str().unwrap()).unwrap();
                }
            } else {
                assert!(v["emptyDir"].is_object(), "{v}");
            }
        }
        mounts.push((m["mountPath"].as_str().unwrap().to_string(), dir));
    }
    let sim = simulator().await;
    let mut run: Vec<String> = args(c)
        .into_iter()
        .map(|a| {
            if a.starts_with("--web.listen-address=") {
                // Never a fixed port in a test.
                return "--web.listen-address=127.0.0.1:0".to_string();
            }
            if a.starts_with("--proxy.listen-address=") {
                return "--proxy.listen-address=127.0.0.1:0".to_string();
            }
            // A path under a mount moves under that mount's directory (the deepest mount).
            let Some((name, value)) = a.split_once('=') else {
                return a;
            };
            let under = |m: &String| value == m || value.starts_with(&format!("{m}/"));
            match mounts
                .iter()
                .filter(|(m, _)| under(m))
                .max_by_key(|(m, _)| m.len())
            {
                Some((m, dir)) => format!("{name}={}{}", dir.display(), &value[m.len()..]),
                None => a,
            }
        })
        .collect();
    run.push(format!("--api.base-url={sim}"));
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let (agent, addr) = spawn(&run, &[]);
    let probes: Vec<String> = ["startupProbe", "livenessProbe", "readinessProbe"]
        .iter()
        .map(|p| c[*p]["httpGet"]["path"].as_str().unwrap().to_string())
        .collect();
    let probes: Vec<&str> = probes.iter().map(String::as_str).collect();
    check_running_agent(&addr, &probes).await;
    // The store is on the claim's mount.
    assert!(tmp.path().join("data/itniotech-exporter.db").exists());
    let logs = agent.output();
    assert!(!logs.contains(SECRET) && !logs.contains(TOKEN));
}

// ---------------------------------------------------------------------------------------------
// systemd
// ---------------------------------------------------------------------------------------------

fn unit_path() -> PathBuf {
    root().join("deploy/systemd/itniotech-exporter.service")
}

/// The unit's `Key=value` lines (continuations joined), in order.
fn unit_entries(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with('[')) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        if let Some((k, v)) = pending.split_once('=') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
        pending.clear();
    }
    out
}

/// The unit with its ExecStart binary replaced by the one cargo built.
fn unit_with_test_binary(dir: &Path) -> PathBuf {
    let text = read(unit_path()).replace(
        "/usr/local/bin/itniotech-exporter",
        common::binary().to_str().unwrap(),
    );
    let path = dir.join("itniotech-exporter.service");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[cfg_attr(
    not(tool_systemd_analyze),
    ignore = "needs systemd-analyze (.ci/install-deploy-tools.sh)"
)]
fn systemd_unit_verifies_and_is_sandboxed() {
    if !tool_available("systemd-analyze", &["--version"], INSTALL_HINT) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let unit = unit_with_test_binary(tmp.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Unknown keys are only warnings for systemd: any output is a failure here.
    assert!(out.status.success() && said.trim().is_empty(), "{said}");

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for itniotech-exporter.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    // 0 = fully locked down, 10 = unprotected; "OK" is below 2. What remains is the network
    // (it must reach the vendor and be scraped) and the host root file system (read-only).
    assert!(score <= 1.5, "exposure {score}:\n{text}");

    let entries = unit_entries(&read(unit_path()));
    let get = |k: &str| -> Vec<&str> {
        entries
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "itniotech-exporter"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(get(key), [value], "{key}");
    }
    let creds: Vec<&str> = get("LoadCredential")
        .into_iter()
        .map(|c| c.split(':').next().unwrap())
        .collect();
    assert_eq!(creds, ["api-key", "api-secret", "intake-token"]);
    assert!(
        get("Environment").is_empty(),
        "no secrets in the environment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_command_line_runs_the_agent() {
    let entries = unit_entries(&read(unit_path()));
    let exec = &entries.iter().find(|(k, _)| k == "ExecStart").unwrap().1;
    let tmp = tempfile::tempdir().unwrap();
    let state_root = tmp.path().join("state");
    let creds = tmp.path().join("credentials");
    std::fs::create_dir_all(&creds).unwrap();
    // LoadCredential=NAME:PATH puts PATH's content at %d/NAME.
    for (name, value) in [
        ("api-key", DEMO_API_KEY),
        ("api-secret", SECRET),
        ("intake-token", TOKEN),
    ] {
        std::fs::write(creds.join(name), format!("{value}\n")).unwrap();
    }
    // $ARGS comes from the shipped /etc/default file.
    let default = read(root().join("deploy/systemd/itniotech-exporter.default"));
    let extra = default
        .lines()
        .find_map(|l| l.strip_prefix("ARGS="))
        .expect("ARGS= in the default file")
        .trim_matches('"')
        .to_string();
    let mut words: Vec<String> = exec.split_whitespace().map(str::to_string).collect();
    assert_eq!(words[0], "/usr/local/bin/itniotech-exporter");
    words.remove(0);
    let mut run = Vec::new();
    for w in words {
        if w == "$ARGS" {
            run.extend(extra.split_whitespace().map(str::to_string));
            continue;
        }
        assert!(!w.contains('$'), "only $ARGS is expanded: {w}");
        run.push(
            w.replace("%S", state_root.to_str().unwrap())
                .replace("%d", creds.to_str().unwrap()),
        );
    }
    let sim = simulator().await;
    run.push("--web.listen-address=127.0.0.1:0".into());
    run.push(format!("--api.base-url={sim}"));
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let (agent, addr) = spawn(&run, &[]);
    check_running_agent(&addr, &[HEALTHY_PATH, READY_PATH]).await;
    assert!(state_root
        .join("itniotech-exporter/itniotech-exporter.db")
        .exists());
    let logs = agent.output();
    assert!(!logs.contains(SECRET) && !logs.contains(TOKEN));
}

// ---------------------------------------------------------------------------------------------
// Container image
// ---------------------------------------------------------------------------------------------

/// One Dockerfile instruction: keyword and its argument text (continuations joined).
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in read(root().join("Dockerfile")).lines() {
        let t = line.trim();
        if t.starts_with('#') || (pending.is_empty() && t.is_empty()) {
            continue;
        }
        if let Some(cont) = t.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let (kw, rest) = pending.split_once(' ').unwrap_or((&pending, ""));
        out.push((kw.to_uppercase(), rest.trim().to_string()));
        pending.clear();
    }
    out
}

/// A JSON-array ("exec form") instruction argument.
fn exec_form(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("exec form expected, got {s}: {e}"))
}

#[test]
fn dockerfile_builds_a_non_root_image_with_volume_healthcheck_and_build_info() {
    let ins = dockerfile();
    let froms: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(froms.len(), 2, "multi-stage: build, then runtime");
    let (build, runtime) = (&ins[froms[0]..froms[1]], &ins[froms[1]..]);
    let one = |stage: &[(String, String)], kw: &str| -> String {
        let v: Vec<&String> = stage
            .iter()
            .filter(|(k, _)| k == kw)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(v.len(), 1, "one {kw}");
        v[0].clone()
    };
    // Base images by full name (registry included), so nothing resolves to a squatted name.
    for stage in [build, runtime] {
        let from = stage[0].1.split_whitespace().next().unwrap();
        assert!(
            from.starts_with("docker.io/") || from.starts_with("gcr.io/"),
            "{from}"
        );
    }
    assert!(runtime[0].1.starts_with("gcr.io/distroless/"));

    // Build info: REVISION reaches build.rs; VERSION labels the image with Cargo's version.
    let build_run = build
        .iter()
        .filter(|(k, _)| k == "RUN")
        .map(|(_, v)| v.as_str())
        .find(|r| r.contains("cargo build"))
        .expect("cargo build");
    assert!(build_run.contains("ITNIOTECH_REVISION=\"${REVISION}\""));
    assert!(build_run.contains("--release") && build_run.contains("--locked"));
    assert!(build
        .iter()
        .any(|(k, v)| k == "ARG" && v.starts_with("REVISION")));
    let args: Vec<&str> = runtime
        .iter()
        .filter(|(k, _)| k == "ARG")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(args.contains(&format!("VERSION={}", env!("CARGO_PKG_VERSION")).as_str()));
    assert!(args.iter().any(|a| a.starts_with("REVISION")));
    let labels = one(runtime, "LABEL");
    assert!(labels.contains("org.opencontainers.image.version=\"${VERSION}\""));
    assert!(labels.contains("org.opencontainers.image.revision=\"${REVISION}\""));

    // Non-root, numeric (Kubernetes' runAsNonRoot can only check a number).
    let user = one(runtime, "USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric USER");
    assert!(uid > 0);

    // Entry point, store on the volume, port, health check on the agent's own endpoint.
    let entrypoint = exec_form(&one(runtime, "ENTRYPOINT"));
    assert_eq!(entrypoint, ["/usr/local/bin/itniotech-exporter"]);
    let cmd = exec_form(&one(runtime, "CMD"));
    assert_eq!(cmd[0], "run");
    let store = flag(&cmd, "--storage.path").expect("--storage.path");
    assert_eq!(exec_form(&one(runtime, "VOLUME")), [store]);
    assert_eq!(one(runtime, "EXPOSE"), DEFAULT_PORT.to_string());
    let health = one(runtime, "HEALTHCHECK");
    let (opts, check) = health.split_once("CMD ").unwrap();
    assert!(opts.contains("--interval=") && opts.contains("--timeout="));
    let check = exec_form(check);
    assert_eq!(
        check.last().unwrap(),
        &format!("http://127.0.0.1:{DEFAULT_PORT}{HEALTHY_PATH}")
    );
    // The check's program and the binary are installed into what the runtime stage copies.
    let copy = one(runtime, "COPY");
    assert_eq!(copy, "--from=build /out/ /");
    for program in [&check[0], &entrypoint[0]] {
        assert!(
            build_run.contains(&format!("/out{program}")),
            "{program} is installed into /out"
        );
    }
    assert!(build_run.contains(&format!("-o {uid} -g {uid} /out{store}")));

    // The command's flags exist.
    let help = Command::new(common::binary())
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for arg in &cmd[1..] {
        let name = arg.split('=').next().unwrap();
        assert!(help.contains(name), "{name} is a flag of run");
    }

    // Only sources go into the build context.
    let ignore = read(root().join(".dockerignore"));
    for entry in [".git", "target"] {
        assert!(
            ignore.lines().any(|l| l == entry),
            "{entry} in .dockerignore"
        );
    }
}
