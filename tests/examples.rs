//! Every manifest in examples/ is valid against the generated CRDs (structural schema and CEL
//! rules) and deserializes into the typed resources; every manifest in examples/invalid/ is
//! rejected with the message its `# expect:` line names.

use std::path::{Path, PathBuf};

use mcp_droplet_operator::api::{self, validation::validate_manifest};
use serde::Deserialize;
use serde_json::Value;

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn valid_examples_pass_schema_and_cel() {
    let mut ours = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for file in yaml_files(&examples_dir()) {
        for doc in documents(&file) {
            match validate_manifest(&doc, None) {
                Ok(true) => {
                    ours += 1;
                    kinds.insert(doc["kind"].as_str().unwrap().to_string());
                    typed_round_trip(&doc, &file);
                }
                Ok(false) => {}
                Err(errors) => panic!("{} is invalid: {errors:?}", file.display()),
            }
        }
    }
    assert!(ours >= 4, "expected examples of every kind, found {ours}");
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec!["Droplet", "DropletPool", "MCPDeployment", "MCPTemplate"]
    );
}

fn typed_round_trip(doc: &Value, file: &Path) {
    let kind = doc["kind"].as_str().unwrap();
    let ok = match kind {
        "MCPTemplate" => serde_json::from_value::<api::MCPTemplate>(doc.clone()).map(|_| ()),
        "DropletPool" => serde_json::from_value::<api::DropletPool>(doc.clone()).map(|_| ()),
        "Droplet" => serde_json::from_value::<api::Droplet>(doc.clone()).map(|_| ()),
        "MCPDeployment" => serde_json::from_value::<api::MCPDeployment>(doc.clone()).map(|_| ()),
        other => panic!("unexpected kind {other}"),
    };
    ok.unwrap_or_else(|e| panic!("{}: {kind} does not deserialize: {e}", file.display()));
}

#[test]
fn invalid_examples_are_rejected_with_their_message() {
    let files = yaml_files(&examples_dir().join("invalid"));
    assert!(files.len() >= 10, "the invalid examples are missing");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no '# expect:' line", file.display()))
            .trim()
            .to_string();
        let docs = documents(&file);
        assert_eq!(docs.len(), 1, "{}", file.display());
        let errors = validate_manifest(&docs[0], None)
            .err()
            .unwrap_or_else(|| panic!("{} was accepted", file.display()));
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            rendered
                .iter()
                .any(|e| e.starts_with(&expect) || e.contains(&expect)),
            "{}: expected an error like {expect:?}, got {rendered:?}",
            file.display()
        );
    }
}
