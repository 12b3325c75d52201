//! The committed CRD YAML is current, the schemas are structural, and the CEL rules say what they mean.

use std::path::PathBuf;

use kube::CustomResourceExt;
use llm_mcp_hub_crds::{
    AccountSpec, CredentialsSpec, HubGateway, HubGatewaySpec, LLMProvider, LLMProviderSpec,
    ModelsSpec, ProviderKind, SecretKeyRef, SessionStoreMode, crd_file_name, crd_yaml, crds,
};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_yaml_is_current() {
    let regen = "run `cargo run -p llm-mcp-hub-crds --bin crdgen` and commit the result";
    for dir in ["crds", "charts/llm-mcp-hub/crds"] {
        for crd in crds() {
            let path = repo_root().join(dir).join(crd_file_name(&crd));
            let committed = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{} missing ({e}): {regen}", path.display()));
            assert!(
                committed == crd_yaml(&crd),
                "{} is stale: {regen}",
                path.display()
            );
        }
    }
}

#[test]
fn committed_yaml_parses_back_to_the_same_crd() {
    for crd in crds() {
        let path = repo_root().join("crds").join(crd_file_name(&crd));
        let text = std::fs::read_to_string(path).unwrap();
        let parsed: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(parsed, crd);
    }
}

/// Checks the rules of a structural schema as the API server applies them
/// (apiextensions-apiserver `pkg/apis/apiextensions/validation` and `schema/validation.go`).
fn check_structural(path: &str, s: &Value, in_junctor: bool, errors: &mut Vec<String>) {
    let obj = match s.as_object() {
        Some(o) => o,
        None => {
            errors.push(format!("{path}: schema is not an object"));
            return;
        }
    };
    for forbidden in [
        "$ref",
        "definitions",
        "$defs",
        "$schema",
        "id",
        "dependencies",
        "patternProperties",
        "additionalItems",
        "const",
        "examples",
    ] {
        if obj.contains_key(forbidden) {
            errors.push(format!(
                "{path}: `{forbidden}` is not allowed in a CRD schema"
            ));
        }
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let embedded = obj.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true));
    if in_junctor {
        for k in [
            "type",
            "description",
            "default",
            "nullable",
            "additionalProperties",
            "x-kubernetes-preserve-unknown-fields",
            "x-kubernetes-int-or-string",
            "x-kubernetes-embedded-resource",
        ] {
            if obj.contains_key(k) {
                errors.push(format!("{path}: `{k}` inside allOf/anyOf/oneOf/not"));
            }
        }
    } else if !int_or_string && !preserve && !embedded {
        match obj.get("type").and_then(Value::as_str) {
            Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
            Some(t) => errors.push(format!("{path}: unknown type {t}")),
            None => errors.push(format!("{path}: no `type` (not structural)")),
        }
    }
    if let Some(t) = obj.get("type")
        && !t.is_string()
    {
        errors.push(format!("{path}: `type` must be one string, got {t}"));
    }
    if int_or_string && obj.contains_key("type") {
        errors.push(format!("{path}: x-kubernetes-int-or-string with a type"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        errors.push(format!("{path}: both properties and additionalProperties"));
    }
    let ty = obj.get("type").and_then(Value::as_str);
    if obj.contains_key("properties") && ty.is_some() && ty != Some("object") {
        errors.push(format!("{path}: properties on a non-object"));
    }
    if obj.contains_key("items") && ty.is_some() && ty != Some("array") {
        errors.push(format!("{path}: items on a non-array"));
    }
    if ty == Some("array") && !in_junctor && !obj.contains_key("items") {
        errors.push(format!("{path}: array without items"));
    }
    if let Some(enm) = obj.get("enum").and_then(Value::as_array) {
        for v in enm {
            let ok = match ty {
                Some("string") => v.is_string(),
                Some("integer") => v.is_i64() || v.is_u64(),
                Some("number") => v.is_number(),
                Some("boolean") => v.is_boolean(),
                _ => true,
            };
            if !ok {
                errors.push(format!("{path}: enum value {v} does not match type"));
            }
        }
    }
    if let Some(list_type) = obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
        if ty != Some("array") {
            errors.push(format!("{path}: x-kubernetes-list-type on a non-array"));
        }
        if list_type == "map" {
            let keys: Vec<&str> = obj
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if keys.is_empty() {
                errors.push(format!("{path}: list-type map without list-map-keys"));
            }
            let items = obj.get("items").cloned().unwrap_or(Value::Null);
            let required: Vec<&str> = items
                .get("required")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for key in keys {
                let has_default = items
                    .pointer(&format!("/properties/{key}/default"))
                    .is_some();
                if !required.contains(&key) && !has_default {
                    errors.push(format!(
                        "{path}: list-map key {key} neither required nor defaulted"
                    ));
                }
                if items.pointer(&format!("/properties/{key}/nullable")) == Some(&Value::Bool(true))
                {
                    errors.push(format!("{path}: list-map key {key} is nullable"));
                }
            }
        }
    }
    if obj.contains_key("default")
        && obj.get("nullable") == Some(&Value::Bool(true))
        && obj["default"].is_null()
    {
        errors.push(format!("{path}: null default"));
    }
    if let Some(rules) = obj
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for r in rules {
            if r.get("rule")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                errors.push(format!("{path}: validation rule without `rule`"));
            }
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            check_structural(&format!("{path}.{k}"), v, in_junctor, errors);
        }
    }
    if let Some(items) = obj.get("items") {
        check_structural(&format!("{path}[]"), items, in_junctor, errors);
    }
    if let Some(ap) = obj.get("additionalProperties") {
        if ap.is_object() {
            check_structural(&format!("{path}{{}}"), ap, in_junctor, errors);
        } else if ap != &Value::Bool(true) && ap != &Value::Bool(false) {
            errors.push(format!("{path}: bad additionalProperties"));
        }
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = obj.get(junctor).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                check_structural(&format!("{path}.{junctor}[{i}]"), sub, true, errors);
            }
        }
    }
    if let Some(not) = obj.get("not") {
        check_structural(&format!("{path}.not"), not, true, errors);
    }
    // Every field documented, so `kubectl explain` is useful.
    if !in_junctor && !obj.contains_key("description") && path.matches('.').count() >= 1 {
        let leaf_ok =
            path.ends_with(".apiVersion") || path.ends_with(".kind") || path.ends_with(".metadata");
        if !leaf_ok && !path.ends_with("[]") && !path.ends_with("{}") {
            errors.push(format!("{path}: no description"));
        }
    }
}

#[test]
fn schemas_are_structural_and_documented() {
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap();
        assert_eq!(crd.spec.versions.len(), 1);
        let version = &crd.spec.versions[0];
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name}: status subresource"
        );
        let schema = serde_json::to_value(
            version
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        let mut errors = Vec::new();
        check_structural(&name, &schema, false, &mut errors);
        // Only apiVersion, kind, metadata, spec and status at the top; metadata left to the API server.
        for key in schema["properties"].as_object().unwrap().keys() {
            assert!(
                ["apiVersion", "kind", "metadata", "spec", "status"].contains(&key.as_str()),
                "{name}: top-level {key}"
            );
        }
        assert!(
            schema["properties"]
                .get("metadata")
                .is_none_or(|m| m == &json!({"type": "object"})),
            "{name}: metadata must not be constrained"
        );
        assert_eq!(schema["required"], json!(["spec"]), "{name}: spec required");
        assert!(
            errors.is_empty(),
            "{name} is not structural:\n{}",
            errors.join("\n")
        );
    }
}

#[test]
fn names_categories_and_columns() {
    let p = LLMProvider::crd();
    assert_eq!(p.spec.group, "llm-mcp-hub.dev");
    assert_eq!(p.spec.scope, "Namespaced");
    assert_eq!(p.spec.names.short_names, Some(vec!["llmp".to_owned()]));
    assert_eq!(
        p.spec.names.categories,
        Some(vec!["llm-mcp-hub".to_owned()])
    );
    let cols: Vec<String> = p.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(cols, ["Kind", "Models", "Ready", "Pods", "Reason", "Age"]);
    let g = HubGateway::crd();
    assert_eq!(g.spec.names.short_names, Some(vec!["hgw".to_owned()]));
    let cols: Vec<String> = g.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(cols, ["URL", "Providers", "Ready", "Reason", "Age"]);
}

fn provider(kind: ProviderKind) -> LLMProvider {
    let spec: LLMProviderSpec = serde_json::from_value(json!({
        "kind": kind,
        "credentials": {"accounts": [{"name": "main", "secretRef": {"name": "s"}}]},
    }))
    .unwrap();
    LLMProvider::new("claude", spec)
}

#[test]
fn defaults_apply_when_fields_are_omitted() {
    let p = provider(ProviderKind::Claude);
    assert_eq!(p.spec.replicas, 1);
    assert_eq!(p.spec.concurrency, 4);
    assert_eq!(p.spec.timeouts.request_secs, 300);
    assert_eq!(p.spec.secret_key(&p.spec.credentials.accounts[0]), "token");
    let g: HubGatewaySpec =
        serde_json::from_value(json!({"apiKeysSecretRef": {"name": "keys"}})).unwrap();
    assert_eq!(g.replicas, 2);
    assert_eq!(g.session_ttl_secs, 3600);
    assert_eq!(g.session_store.mode, SessionStoreMode::Managed);
    assert_eq!(g.service.port, 80);
    assert_eq!(g.api_keys_key(), "keys");
}

#[test]
fn cel_kind_is_immutable() {
    let old = provider(ProviderKind::Claude);
    let same = old.clone();
    assert!(kube::core::cel::validate_cel_update(&same, &old).is_ok());
    let mut changed = old.clone();
    changed.spec.kind = ProviderKind::Gemini;
    let err = kube::core::cel::validate_cel_update(&changed, &old).unwrap_err();
    assert!(format!("{err:?}").contains("kind is immutable"), "{err:?}");
}

#[test]
fn cel_default_model_must_be_allowed() {
    let mut p = provider(ProviderKind::Claude);
    p.spec.models = ModelsSpec {
        allowed: vec!["sonnet".into(), "opus".into()],
        default: Some("haiku".into()),
    };
    let err = kube::core::cel::validate_cel(&p).unwrap_err();
    assert!(
        format!("{err:?}").contains("models.default must be one of"),
        "{err:?}"
    );
    p.spec.models.default = Some("opus".into());
    assert!(kube::core::cel::validate_cel(&p).is_ok());
    p.spec.models.allowed.clear();
    p.spec.models.default = Some("haiku".into());
    assert!(kube::core::cel::validate_cel(&p).is_ok());
}

#[test]
fn cel_names_must_be_dns_labels() {
    let mut p = provider(ProviderKind::Claude);
    assert!(kube::core::cel::validate_cel(&p).is_ok());
    p.metadata.name = Some("Not.A.Label".into());
    assert!(kube::core::cel::validate_cel(&p).is_err());
    p.metadata.name = Some("a".repeat(41));
    assert!(kube::core::cel::validate_cel(&p).is_err());
}

#[test]
fn cel_external_session_store_needs_a_url() {
    let spec: HubGatewaySpec = serde_json::from_value(json!({
        "apiKeysSecretRef": {"name": "keys"},
        "sessionStore": {"mode": "External"},
    }))
    .unwrap();
    let g = HubGateway::new("gw", spec);
    let err = kube::core::cel::validate_cel(&g).unwrap_err();
    assert!(
        format!("{err:?}").contains("sessionStore.external is required"),
        "{err:?}"
    );
    let mut ok = g.clone();
    ok.spec.session_store.external = Some(llm_mcp_hub_crds::ExternalRedisSpec {
        url_secret_ref: SecretKeyRef {
            name: "redis".into(),
            key: None,
        },
    });
    assert!(kube::core::cel::validate_cel(&ok).is_ok());
}

#[test]
fn several_accounts_round_trip() {
    let mut p = provider(ProviderKind::Gemini);
    p.spec.credentials = CredentialsSpec {
        accounts: vec![
            AccountSpec {
                name: "alice".into(),
                secret_ref: SecretKeyRef {
                    name: "a".into(),
                    key: None,
                },
            },
            AccountSpec {
                name: "bob".into(),
                secret_ref: SecretKeyRef {
                    name: "b".into(),
                    key: Some("creds".into()),
                },
            },
        ],
    };
    let back: LLMProvider = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    assert_eq!(
        p.spec.secret_key(&p.spec.credentials.accounts[0]),
        "oauth_creds.json"
    );
    assert_eq!(p.spec.secret_key(&p.spec.credentials.accounts[1]), "creds");
}

/// The API server refuses a kind the worker binary cannot run (codex is planned, not accepted yet).
#[test]
fn provider_kinds_are_the_ones_the_binary_runs() {
    let crd = serde_json::to_value(LLMProvider::crd()).unwrap();
    let kind = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["kind"];
    assert_eq!(kind["enum"], json!(["claude", "gemini"]), "{kind}");
    let codex = serde_json::from_value::<LLMProviderSpec>(json!({
        "kind": "codex",
        "credentials": {"accounts": [{"name": "main", "secretRef": {"name": "s"}}]},
    }));
    assert!(codex.is_err());
}
