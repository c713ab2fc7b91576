//! The tracking table's layout (version 2) is defined once, in `shared::ledger::item`, and
//! summed up for the places that cannot import Rust in `shared::table`; this test checks each
//! of them:
//!
//! * the Terraform module `terraform/modules/dynamodb/main.tf` (key schema, attribute
//!   definitions, no secondary index, TTL) and its `outputs.tf` (no index ARNs);
//! * the state machine's `MarkFailed` task in
//!   `terraform/modules/step_functions/definition.asl.json` (a DynamoDB `UpdateItem` of the
//!   manifest item: its key, update and condition);
//! * the local pipeline (`tools/local_aws/pipeline.py`, `tools/local_aws/__main__.py`) and the
//!   end-to-end suite (`tests/e2e/run.py`), which read the table's items to tell when the
//!   pipeline has settled and whether every version was converted once.
//!
//! A rename on either side fails here. The parsers are deliberately small: when a file changes
//! shape so that they find nothing, the test fails too, and should be updated with the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use regex::Regex;
use serde_json::Value;
use shared::ledger::item;
use shared::ledger::{ManifestState, Shard, Version, VersionRef};
use shared::table::{
    attr, ALL_ATTRIBUTES, KEY_ATTRIBUTES, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE,
    WORKFLOW_FAILED_FROM, WORKFLOW_FAILED_SETS, WORKFLOW_FAILED_TO,
};
use shared::types::{DatePrefix, ManifestId};

/// A file of the repository; `TABLE_LAYOUT_REPO` points the test at a copy (to show that a
/// changed copy fails it).
fn repo_file(path: &str) -> String {
    let root = std::env::var_os("TABLE_LAYOUT_REPO").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
        PathBuf::from,
    );
    let full = root.join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

// Terraform -----------------------------------------------------------------------------------

/// A block of HCL: `kind "label" … { key = value … nested blocks }`.
#[derive(Debug, Default)]
struct Block {
    kind: String,
    labels: Vec<String>,
    attributes: BTreeMap<String, String>,
    blocks: Vec<Block>,
}

impl Block {
    fn attribute(&self, key: &str) -> &str {
        self.attributes
            .get(key)
            .unwrap_or_else(|| panic!("`{}` block has no `{key}`", self.kind))
    }

    fn children<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks.iter().filter(move |b| b.kind == kind)
    }
}

fn unquote(value: &str) -> String {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
        .to_string()
}

/// Parses the subset of HCL the module uses: one block header or `}` or `key = value` per
/// line, `#` comments. Values are kept as written, without the quotes of a plain string.
fn parse_hcl(text: &str) -> Block {
    let mut stack = vec![Block::default()];
    for (number, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        if line == "}" {
            let block = stack.pop().expect("balanced braces");
            stack
                .last_mut()
                .unwrap_or_else(|| panic!("line {}: unbalanced `}}`", number + 1))
                .blocks
                .push(block);
        } else if let Some(header) = line.strip_suffix('{') {
            let mut words = header.split_whitespace();
            stack.push(Block {
                kind: words.next().expect("a block kind").to_string(),
                labels: words.map(unquote).collect(),
                ..Block::default()
            });
        } else if let Some((key, value)) = line.split_once('=') {
            stack
                .last_mut()
                .expect("inside the file")
                .attributes
                .insert(key.trim().to_string(), unquote(value.trim()));
        } else {
            panic!("line {}: not understood: {raw}", number + 1);
        }
    }
    assert_eq!(stack.len(), 1, "unbalanced braces");
    stack.pop().expect("the file")
}

#[test]
fn terraform_table_matches_the_layout() {
    let file = parse_hcl(&repo_file("terraform/modules/dynamodb/main.tf"));
    let tables: Vec<&Block> = file
        .children("resource")
        .filter(|b| b.labels.first().map(String::as_str) == Some("aws_dynamodb_table"))
        .collect();
    assert_eq!(tables.len(), 1, "one aws_dynamodb_table in the module");
    let table = tables[0];

    assert_eq!(table.attribute("hash_key"), PARTITION_KEY, "hash_key");
    assert_eq!(table.attribute("range_key"), SORT_KEY, "range_key");

    let defined: BTreeSet<(String, String)> = table
        .children("attribute")
        .map(|a| (a.attribute("name").into(), a.attribute("type").into()))
        .collect();
    let expected: BTreeSet<(String, String)> = KEY_ATTRIBUTES
        .iter()
        .map(|name| (name.to_string(), "S".to_string()))
        .collect();
    assert_eq!(
        defined, expected,
        "attribute definitions: the table's two keys, both strings"
    );

    assert_eq!(
        table.children("global_secondary_index").count(),
        0,
        "the layout has no global secondary index"
    );
    assert_eq!(
        table.children("local_secondary_index").count(),
        0,
        "the layout has no local secondary index"
    );

    let ttl: Vec<&Block> = table.children("ttl").collect();
    assert_eq!(ttl.len(), 1, "one ttl block");
    assert_eq!(ttl[0].attribute("attribute_name"), TTL_ATTRIBUTE, "TTL");
    assert_eq!(ttl[0].attribute("enabled"), "true", "TTL enabled");
}

#[test]
fn terraform_outputs_name_no_index() {
    let outputs = repo_file("terraform/modules/dynamodb/outputs.tf");
    assert!(
        !outputs.contains("/index/"),
        "outputs.tf names an index ARN, and the table has none"
    );
}

// Step Functions ------------------------------------------------------------------------------

/// The definition is a Terraform template: drop the `%{ … }` directive lines (keeping every
/// optional state, which is valid JSON) and put placeholders for the `${ … }` interpolations.
fn render_asl(template: &str) -> Value {
    let without_directives: String = template
        .lines()
        .filter(|l| !l.trim_start().starts_with("%{"))
        .map(|l| format!("{l}\n"))
        .collect();
    let quoted = Regex::new(r#""\$\{[^}]*\}""#).expect("regex");
    let bare = Regex::new(r"\$\{[^}]*\}").expect("regex");
    let text = quoted.replace_all(&without_directives, "\"template\"");
    let text = bare.replace_all(&text, "0");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("definition.asl.json: {e}"))
}

/// An `ExpressionAttributeValues` entry: a literal string, or a path evaluated at run time.
#[derive(Debug, PartialEq, Eq)]
enum AslString {
    Literal(String),
    Path(String),
}

fn asl_string(value: &Value, what: &str) -> AslString {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an attribute value: {value}"));
    assert_eq!(object.len(), 1, "{what}: one type key: {value}");
    match (object.get("S"), object.get("S.$")) {
        (Some(Value::String(s)), None) => AslString::Literal(s.clone()),
        (None, Some(Value::String(p))) => AslString::Path(p.clone()),
        _ => panic!("{what}: not a string (S) attribute value: {value}"),
    }
}

struct Expressions<'a> {
    names: &'a serde_json::Map<String, Value>,
    values: &'a serde_json::Map<String, Value>,
}

impl Expressions<'_> {
    /// The attribute a name in an expression stands for; it must be one of the table's.
    fn name(&self, token: &str) -> String {
        let name = match token.strip_prefix('#') {
            Some(_) => self
                .names
                .get(token)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{token} is not in ExpressionAttributeNames"))
                .to_string(),
            None => token.to_string(),
        };
        assert!(
            ALL_ATTRIBUTES.contains(&name.as_str()),
            "`{name}` is not an attribute of the table (shared::table::ALL_ATTRIBUTES)"
        );
        name
    }

    fn value(&self, token: &str) -> AslString {
        asl_string(
            self.values
                .get(token)
                .unwrap_or_else(|| panic!("{token} is not in ExpressionAttributeValues")),
            token,
        )
    }
}

#[test]
fn state_machine_marks_failed_with_the_layout() {
    let definition = render_asl(&repo_file(
        "terraform/modules/step_functions/definition.asl.json",
    ));
    let state = &definition["States"]["MarkFailed"];
    assert_eq!(state["Type"], "Task", "MarkFailed is a task");
    assert_eq!(
        state["Resource"], "arn:aws:states:::dynamodb:updateItem",
        "MarkFailed is a DynamoDB UpdateItem"
    );
    let parameters = &state["Parameters"];

    // Key: exactly the table's partition and sort key, both strings: the manifest item's.
    let key = parameters["Key"].as_object().expect("Parameters.Key");
    let key_names: BTreeSet<&str> = key.keys().map(String::as_str).collect();
    assert_eq!(key_names, BTreeSet::from([PARTITION_KEY, SORT_KEY]), "Key");
    check_manifest_key(
        &asl_string(&key[PARTITION_KEY], PARTITION_KEY),
        &asl_string(&key[SORT_KEY], SORT_KEY),
    );

    let expressions = Expressions {
        names: parameters["ExpressionAttributeNames"]
            .as_object()
            .expect("ExpressionAttributeNames"),
        values: parameters["ExpressionAttributeValues"]
            .as_object()
            .expect("ExpressionAttributeValues"),
    };

    // Update: SET exactly what `Ledger::fail` sets on the manifest: the state, the time and
    // the error; nothing else (no open entry, no marker: the sweep releases the manifest).
    let update = parameters["UpdateExpression"]
        .as_str()
        .expect("UpdateExpression");
    let sets = update
        .strip_prefix("SET ")
        .unwrap_or_else(|| panic!("UpdateExpression is one SET clause: {update}"));
    let assignment = Regex::new(r"^\s*(#?\w+)\s*=\s*(:\w+)\s*$").expect("regex");
    let mut assigned = BTreeMap::new();
    for part in sets.split(',') {
        let parts = assignment
            .captures(part)
            .unwrap_or_else(|| panic!("UpdateExpression: `{part}` is not `name = :value`"));
        assigned.insert(expressions.name(&parts[1]), expressions.value(&parts[2]));
    }
    let names: BTreeSet<&str> = assigned.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from(WORKFLOW_FAILED_SETS),
        "MarkFailed sets"
    );
    assert_eq!(
        assigned[attr::STATUS],
        AslString::Literal(WORKFLOW_FAILED_TO.as_str().into()),
        "MarkFailed's new status"
    );
    assert!(matches!(assigned[attr::ERROR], AslString::Path(_)));
    assert!(matches!(assigned[attr::UPDATED_AT], AslString::Path(_)));

    // Condition: status is one of WORKFLOW_FAILED_FROM (`IN (…)` or `= … OR = …`).
    let condition = parameters["ConditionExpression"]
        .as_str()
        .expect("ConditionExpression");
    let (name, tokens): (&str, Vec<&str>) = match Regex::new(r"^\s*(#?\w+)\s+IN\s*\(([^)]*)\)\s*$")
        .expect("regex")
        .captures(condition)
    {
        Some(c) => (
            c.get(1).expect("name").as_str(),
            c.get(2)
                .expect("list")
                .as_str()
                .split(',')
                .map(str::trim)
                .collect(),
        ),
        None => {
            let equal = Regex::new(r"^\s*(#?\w+)\s*=\s*(:\w+)\s*$").expect("regex");
            let pairs: Vec<(&str, &str)> = condition
                .split(" OR ")
                .map(|p| {
                    let c = equal.captures(p).unwrap_or_else(|| {
                        panic!("ConditionExpression: `{condition}` is not `name IN (…)`")
                    });
                    (
                        c.get(1).expect("name").as_str(),
                        c.get(2).expect("value").as_str(),
                    )
                })
                .collect();
            assert!(pairs.iter().all(|(n, _)| *n == pairs[0].0), "{condition}");
            (pairs[0].0, pairs.iter().map(|(_, v)| *v).collect())
        }
    };
    assert_eq!(
        expressions.name(name),
        attr::STATUS,
        "MarkFailed's condition"
    );
    let from: BTreeSet<String> = tokens
        .iter()
        .map(|t| match expressions.value(t) {
            AslString::Literal(s) => s,
            other => panic!("{t}: the condition compares with literals, not {other:?}"),
        })
        .collect();
    let expected: BTreeSet<String> = WORKFLOW_FAILED_FROM
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(from, expected, "statuses MarkFailed moves a manifest from");
}

/// The manifest item's key is `(M#<id>, M)` ([`item::manifest_key`]): the state builds the
/// partition key from the execution input's id with `States.Format('M#{}', $.manifest_id)`,
/// and the sort key is a literal.
fn check_manifest_key(pk: &AslString, sk: &AslString) {
    let id = ManifestId::parse("the-id").expect("an id");
    let (expected_pk, expected_sk) = item::manifest_key(&id);
    let prefix = expected_pk
        .strip_suffix(id.as_str())
        .expect("the partition key ends with the id");
    let format = Regex::new(r"^States\.Format\('([^']*)',\s*\$\.manifest_id\)$").expect("regex");
    match pk {
        AslString::Path(path) => {
            let template = format
                .captures(path)
                .unwrap_or_else(|| {
                    panic!(
                        "MarkFailed's partition key `{path}` is not \
                         `States.Format('{prefix}{{}}', $.manifest_id)`"
                    )
                })
                .get(1)
                .expect("template")
                .as_str();
            assert_eq!(
                template,
                format!("{prefix}{{}}"),
                "MarkFailed builds the manifest's partition key"
            );
        }
        AslString::Literal(literal) => {
            panic!("MarkFailed's partition key is a literal `{literal}`")
        }
    }
    assert_eq!(
        sk,
        &AslString::Literal(expected_sk),
        "MarkFailed's sort key is the manifest item's"
    );
}

// Local pipeline ------------------------------------------------------------------------------

/// Table attributes the Python reads from an item (`i`, `m`, `v` are the item variables:
/// any item, a manifest, a version marker), and the states it compares them with.
fn check_python_item_reads(path: &str) -> usize {
    let source = repo_file(path);
    let read = Regex::new(r#"\b[imv](?:\[|\.get\()['"](\w+)['"]"#).expect("regex");
    let mut count = 0;
    for c in read.captures_iter(&source) {
        let name = &c[1];
        assert!(
            ALL_ATTRIBUTES.contains(&name),
            "{path} reads `{name}`, which is not an attribute of the table (shared::table::ALL_ATTRIBUTES)"
        );
        count += 1;
    }
    let compared = Regex::new(r#"\b[imv](?:\[|\.get\()['"](\w+)['"][\])]\s*[!=]=\s*['"](\w+)['"]"#)
        .expect("regex");
    for c in compared.captures_iter(&source) {
        let (name, value) = (&c[1], &c[2]);
        if name == attr::STATUS {
            assert!(
                ManifestState::parse(value).is_some(),
                "{path}: `{value}` is not a manifest state"
            );
        }
    }
    count
}

/// The values of a Python set constant `NAME = {"a", "b"}`.
fn python_set<'a>(source: &'a str, path: &str, name: &str) -> Vec<&'a str> {
    let set = Regex::new(&format!(r"(?m)^{name}\s*=\s*\{{([^}}]*)\}}")).expect("regex");
    let body = set
        .captures(source)
        .unwrap_or_else(|| panic!("no `{name} = {{…}}` in {path}"))
        .get(1)
        .expect("body")
        .as_str();
    Regex::new(r#"['"]([^'"]*)['"]"#)
        .expect("regex")
        .captures_iter(body)
        .map(|c| c.get(1).expect("value").as_str())
        .collect()
}

/// The value of a Python string constant `NAME = "text"`.
fn python_string<'a>(source: &'a str, path: &str, name: &str) -> &'a str {
    Regex::new(&format!(r#"(?m)^{name}\s*=\s*['"]([^'"]*)['"]"#))
        .expect("regex")
        .captures(source)
        .unwrap_or_else(|| panic!("no `{name} = \"…\"` in {path}"))
        .get(1)
        .expect("value")
        .as_str()
}

/// The key prefixes the Python tells item kinds apart by, from the layout's key functions.
fn key_prefixes() -> BTreeMap<&'static str, String> {
    let id = ManifestId::parse("the-id").expect("an id");
    let shard = Shard {
        date: DatePrefix::parse("2026-11-30").expect("date"),
        number: 7,
    };
    let version = VersionRef {
        bucket: "b".into(),
        key: "k".into(),
        version: Version::Id("v".into()),
    };
    let strip = |pk: String, rest: &str| -> String {
        pk.strip_suffix(rest)
            .unwrap_or_else(|| panic!("{pk} does not end with {rest}"))
            .to_string()
    };
    BTreeMap::from([
        ("MARKER_PK", strip(item::marker_key(&version).0, "b/k")),
        (
            "BATCH_PK",
            strip(item::batch_partition(&shard), "2026-11-30#07"),
        ),
        ("MANIFEST_PK", strip(item::manifest_key(&id).0, "the-id")),
        ("OPEN_PK", strip(item::open_pk(3), "03")),
    ])
}

#[test]
fn local_pipeline_reads_the_layout() {
    let pipeline = "tools/local_aws/pipeline.py";
    let source = repo_file(pipeline);
    assert!(
        check_python_item_reads(pipeline) > 0,
        "{pipeline} no longer reads table items: update this test"
    );
    // Item kinds are told apart by the partition key's prefix.
    for (name, prefix) in key_prefixes() {
        assert_eq!(
            python_string(&source, pipeline, name),
            prefix,
            "{pipeline}: {name}"
        );
    }
    // What "settled" means: every manifest in one of these (final) states.
    let finals = python_set(&source, pipeline, "MANIFEST_FINAL");
    for state in &finals {
        let parsed = ManifestState::parse(state)
            .unwrap_or_else(|| panic!("{pipeline}: MANIFEST_FINAL has `{state}`, not a state"));
        assert!(
            parsed.is_final(),
            "{pipeline}: MANIFEST_FINAL has `{state}`, which is not final"
        );
    }
    let expected = [ManifestState::Completed, ManifestState::Released];
    assert_eq!(
        finals.iter().copied().collect::<BTreeSet<_>>(),
        expected.iter().map(|s| s.as_str()).collect::<BTreeSet<_>>(),
        "{pipeline}: MANIFEST_FINAL"
    );
    assert!(
        Regex::new(&format!(
            r#"\bm\[['"]{}['"]\]\s+(?:not\s+)?in\s+MANIFEST_FINAL\b"#,
            attr::STATUS
        ))
        .expect("regex")
        .is_match(&source),
        "{pipeline} compares `{}` with MANIFEST_FINAL",
        attr::STATUS
    );
    check_python_item_reads("tools/local_aws/__main__.py");
    assert!(
        check_python_item_reads("tests/e2e/run.py") > 0,
        "tests/e2e/run.py no longer reads table items: update this test"
    );
}
