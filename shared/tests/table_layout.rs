//! The tracking table's layout is defined once, in `shared::table`; this test checks every other
//! place that describes it and cannot import Rust:
//!
//! * the Terraform module `terraform/modules/dynamodb/main.tf` (key schema, attribute
//!   definitions, global secondary indexes, TTL) and its `outputs.tf` (index ARNs);
//! * the state machine's `MarkFailed` task in
//!   `terraform/modules/step_functions/definition.asl.json` (a DynamoDB `UpdateItem`: its key,
//!   update and condition);
//! * the local pipeline (`tools/local_aws/pipeline.py`, `tools/local_aws/__main__.py`), which
//!   reads the table's items to tell when the pipeline has settled.
//!
//! A rename on either side fails here. The parsers are deliberately small: when a file changes
//! shape so that they find nothing, the test fails too, and should be updated with the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use regex::Regex;
use serde_json::Value;
use shared::table::{
    attr, Index, INDEXES, ITEM_TYPE_FILE, ITEM_TYPE_MANIFEST, KEY_ATTRIBUTES, MANIFEST_KEY_PREFIX,
    OPEN_SHARD_VALUE, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE, WORKFLOW_FAILED_FROM,
    WORKFLOW_FAILED_TO,
};
use shared::types::{FileStatus, ManifestId, ManifestStatus};

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
        "attribute definitions: every key attribute of the table and its indexes, all strings"
    );

    let indexes: BTreeSet<(String, String, String, String)> = table
        .children("global_secondary_index")
        .map(|i| {
            (
                i.attribute("name").into(),
                i.attribute("hash_key").into(),
                i.attribute("range_key").into(),
                i.attribute("projection_type").into(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String, String)> = INDEXES
        .iter()
        .map(|i: &Index| {
            (
                i.name.into(),
                i.partition_key.into(),
                i.sort_key.into(),
                i.projection.as_str().into(),
            )
        })
        .collect();
    assert_eq!(indexes, expected, "global secondary indexes");
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
fn terraform_outputs_name_every_index() {
    let outputs = repo_file("terraform/modules/dynamodb/outputs.tf");
    let named: BTreeSet<&str> = Regex::new(r"/index/([A-Za-z0-9_.-]+)")
        .expect("regex")
        .captures_iter(&outputs)
        .map(|c| c.get(1).expect("group").as_str())
        .collect();
    let expected: BTreeSet<&str> = INDEXES.iter().map(|i| i.name).collect();
    assert_eq!(named, expected, "index ARNs in outputs.tf");
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
            attr::ALL.contains(&name.as_str()),
            "`{name}` is not an attribute of the table (shared::table::attr)"
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

    // Key: exactly the table's partition and sort key, both strings.
    let key = parameters["Key"].as_object().expect("Parameters.Key");
    let key_names: BTreeSet<&str> = key.keys().map(String::as_str).collect();
    assert_eq!(key_names, BTreeSet::from([PARTITION_KEY, SORT_KEY]), "Key");
    assert!(
        matches!(asl_string(&key[PARTITION_KEY], PARTITION_KEY), AslString::Path(p) if p.starts_with("$.")),
        "the partition key comes from the execution input"
    );
    check_manifest_sort_key(&asl_string(&key[SORT_KEY], SORT_KEY));

    let expressions = Expressions {
        names: parameters["ExpressionAttributeNames"]
            .as_object()
            .expect("ExpressionAttributeNames"),
        values: parameters["ExpressionAttributeValues"]
            .as_object()
            .expect("ExpressionAttributeValues"),
    };

    // Update: SET status = failed, open_shard = open (back on the sweep's index), the error and
    // the time; nothing else.
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
        BTreeSet::from([
            attr::STATUS,
            attr::OPEN_SHARD,
            attr::ERROR,
            attr::UPDATED_AT
        ]),
        "MarkFailed sets"
    );
    assert_eq!(
        assigned[attr::STATUS],
        AslString::Literal(WORKFLOW_FAILED_TO.as_str().into()),
        "MarkFailed's new status"
    );
    assert_eq!(
        assigned[attr::OPEN_SHARD],
        AslString::Literal(OPEN_SHARD_VALUE.into()),
        "MarkFailed puts the manifest on the open-manifests index"
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

/// The sort key of a manifest item is `MANIFEST#<id>`. The state machine gets it one of two
/// ways: the execution input carries it whole (`$.file_key`, written by the manifest-builder
/// as `ManifestId::file_key`), or carries the id and the state builds it with
/// `States.Format('MANIFEST#{}', $.manifest_id)`.
fn check_manifest_sort_key(value: &AslString) {
    let format = Regex::new(r"^States\.Format\('([^']*)',\s*\$\.manifest_id\)$").expect("regex");
    match value {
        AslString::Path(path) if path == "$.file_key" => {
            let id = ManifestId::parse("m").expect("an id");
            assert_eq!(id.file_key(), format!("{MANIFEST_KEY_PREFIX}m"));
        }
        AslString::Path(path) => {
            let template = format
                .captures(path)
                .unwrap_or_else(|| {
                    panic!(
                        "MarkFailed's sort key `{path}` is neither `$.file_key` nor \
                         `States.Format('{MANIFEST_KEY_PREFIX}{{}}', $.manifest_id)`"
                    )
                })
                .get(1)
                .expect("template")
                .as_str();
            assert_eq!(
                template,
                format!("{MANIFEST_KEY_PREFIX}{{}}"),
                "MarkFailed builds the manifest sort key"
            );
        }
        AslString::Literal(literal) => panic!("MarkFailed's sort key is a literal `{literal}`"),
    }
}

// Local pipeline ------------------------------------------------------------------------------

/// Table attributes the Python reads from an item (`i`, `f`, `m` are the item variables), and
/// the values it compares them with.
fn check_python_item_reads(path: &str) -> usize {
    let source = repo_file(path);
    let read = Regex::new(r#"\b[ifm](?:\[|\.get\()['"](\w+)['"]"#).expect("regex");
    let mut count = 0;
    for c in read.captures_iter(&source) {
        let name = &c[1];
        assert!(
            attr::ALL.contains(&name),
            "{path} reads `{name}`, which is not an attribute of the table (shared::table::attr)"
        );
        count += 1;
    }
    let compared = Regex::new(r#"\b[ifm](?:\[|\.get\()['"](\w+)['"][\])]\s*==\s*['"](\w+)['"]"#)
        .expect("regex");
    for c in compared.captures_iter(&source) {
        let (name, value) = (&c[1], &c[2]);
        match name {
            attr::ITEM_TYPE => assert!(
                [ITEM_TYPE_FILE, ITEM_TYPE_MANIFEST].contains(&value),
                "{path}: `{value}` is not an item type"
            ),
            attr::STATUS => assert!(
                FileStatus::parse(value).is_some() || ManifestStatus::parse(value).is_some(),
                "{path}: `{value}` is not a status"
            ),
            _ => {}
        }
    }
    count
}

/// The values of a Python set constant `NAME = {"a", "b"}`.
fn python_set<'a>(source: &'a str, name: &str) -> Vec<&'a str> {
    let set = Regex::new(&format!(r"(?m)^{name}\s*=\s*\{{([^}}]*)\}}")).expect("regex");
    let body = set
        .captures(source)
        .unwrap_or_else(|| panic!("no `{name} = {{…}}` in tools/local_aws/pipeline.py"))
        .get(1)
        .expect("body")
        .as_str();
    Regex::new(r#"['"]([^'"]*)['"]"#)
        .expect("regex")
        .captures_iter(body)
        .map(|c| c.get(1).expect("value").as_str())
        .collect()
}

#[test]
fn local_pipeline_reads_the_layout() {
    let pipeline = "tools/local_aws/pipeline.py";
    let source = repo_file(pipeline);
    assert!(
        check_python_item_reads(pipeline) > 0,
        "{pipeline} no longer reads table items: update this test"
    );
    for item_type in [ITEM_TYPE_FILE, ITEM_TYPE_MANIFEST] {
        assert!(
            source.contains(&format!(r#".get("{}") == "{item_type}""#, attr::ITEM_TYPE)),
            "{pipeline} tells {item_type} items apart by `{}`",
            attr::ITEM_TYPE
        );
    }
    // What "settled" means: every file in one of these statuses, no manifest in those.
    for status in python_set(&source, "FILE_TERMINAL") {
        assert!(
            FileStatus::parse(status).is_some(),
            "{pipeline}: FILE_TERMINAL has `{status}`, not a file status"
        );
    }
    for status in python_set(&source, "MANIFEST_OPEN") {
        assert!(
            ManifestStatus::parse(status).is_some(),
            "{pipeline}: MANIFEST_OPEN has `{status}`, not a manifest status"
        );
    }
    for set in ["FILE_TERMINAL", "MANIFEST_OPEN"] {
        assert!(
            Regex::new(&format!(
                r#"\b[ifm]\[['"]{}['"]\]\s+(?:not\s+)?in\s+{set}\b"#,
                attr::STATUS
            ))
            .expect("regex")
            .is_match(&source),
            "{pipeline} compares `{}` with {set}",
            attr::STATUS
        );
    }
    check_python_item_reads("tools/local_aws/__main__.py");
}
