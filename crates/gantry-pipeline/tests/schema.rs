//! The JSON schema describes what the parser accepts: every example validates against it,
//! and a wrong document does not.

mod common;

use serde_json::Value;

/// A small structural JSON-schema checker: `$ref`, `type`, `properties`, `required`,
/// `additionalProperties`, `patternProperties` (prefix patterns), `items`, `anyOf`,
/// `oneOf`, `const`, `enum`, `minimum`/`maximum`, `minItems`/`maxItems`. String
/// `pattern`s are not checked (the parser checks names itself).
struct Checker<'a> {
    root: &'a Value,
}

impl Checker<'_> {
    fn check(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let Some(schema) = schema.as_object() else {
            return;
        };
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target = self
                .root
                .pointer(reference.trim_start_matches('#'))
                .unwrap_or(&Value::Null);
            self.check(target, value, path, errors);
        }
        if let Some(types) = schema.get("type") {
            let allowed: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !allowed.iter().any(|t| type_matches(t, value)) {
                errors.push(format!("{path}: expected {allowed:?}, found {value}"));
                return;
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array) {
                let ok = options.iter().any(|option| {
                    let mut inner = Vec::new();
                    self.check(option, value, path, &mut inner);
                    inner.is_empty()
                });
                if !ok {
                    errors.push(format!("{path}: {value} matches none of the allowed forms"));
                }
            }
        }
        if let Some(expected) = schema.get("const")
            && expected != value
        {
            errors.push(format!("{path}: expected {expected}, found {value}"));
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            errors.push(format!("{path}: {value} is not one of {options:?}"));
        }
        self.check_number(schema, value, path, errors);
        self.check_array(schema, value, path, errors);
        self.check_object(schema, value, path, errors);
    }

    fn check_number(
        &self,
        schema: &serde_json::Map<String, Value>,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        let Some(number) = value.as_f64() else { return };
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| number < m)
            || schema
                .get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| number > m)
        {
            errors.push(format!("{path}: {number} is out of range"));
        }
    }

    fn check_array(
        &self,
        schema: &serde_json::Map<String, Value>,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        let Some(items) = value.as_array() else {
            return;
        };
        let len = items.len() as u64;
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
            || schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
        {
            errors.push(format!("{path}: {len} items is out of range"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.check(item_schema, item, &format!("{path}[{i}]"), errors);
            }
        }
    }

    fn check_object(
        &self,
        schema: &serde_json::Map<String, Value>,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        let Some(object) = value.as_object() else {
            return;
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = required.as_str()
                && !object.contains_key(name)
            {
                errors.push(format!("{path}: `{name}` is required"));
            }
        }
        for (key, item) in object {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if let Some(property) = properties.and_then(|p| p.get(key)) {
                self.check(property, item, &child, errors);
                continue;
            }
            let by_pattern = schema
                .get("patternProperties")
                .and_then(Value::as_object)
                .and_then(|patterns| {
                    patterns
                        .iter()
                        .find(|(p, _)| key.starts_with(p.trim_start_matches('^')))
                });
            if let Some((_, pattern_schema)) = by_pattern {
                self.check(pattern_schema, item, &child, errors);
                continue;
            }
            match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => errors.push(format!("{child}: unknown field")),
                Some(extra) => self.check(extra, item, &child, errors),
                None => {}
            }
        }
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => false,
    }
}

fn problems(document: &Value) -> Vec<String> {
    let schema = gantry_pipeline::json_schema();
    let checker = Checker { root: &schema };
    let mut errors = Vec::new();
    checker.check(&schema, document, "", &mut errors);
    errors
}

fn documents(source: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(source).expect("valid YAML")
}

#[test]
fn every_pipeline_example_validates_against_the_schema() {
    let mut checked = 0;
    for (name, path) in common::example_files() {
        if name.ends_with(".drone.yml") {
            continue; // the schema describes `.pipeline.yml`; Drone files have their own
        }
        let source = std::fs::read_to_string(&path).expect("readable");
        for document in documents(&source) {
            assert_eq!(problems(&document), Vec::<String>::new(), "{name}");
            checked += 1;
        }
    }
    assert!(checked >= 9, "only {checked} documents checked");
}

#[test]
fn documents_the_parser_rejects_do_not_validate() {
    for (source, expected) in [
        (
            "steps:\n  - name: a\n    image: alpine\n    comands: [make]\n",
            "steps[0].comands: unknown field",
        ),
        ("stepz: []\n", "stepz: unknown field"),
        (
            "steps:\n  - name: a\n    image: alpine\n    retries: 11\n",
            "steps[0].retries: 11 is out of range",
        ),
        (
            "steps:\n  - name: a\n    image: alpine\n    when:\n      event: pushh\n",
            "steps[0].when: ",
        ),
        (
            "steps:\n  - name: a\n    image: alpine\n    commands: ~\n",
            "steps[0].commands: ",
        ),
        ("when:\n  branch: main\n", "`steps` is required"),
    ] {
        let errors = problems(&documents(source)[0]).join("\n");
        assert!(
            errors.contains(expected),
            "{source:?}: expected {expected:?} in:\n{errors}"
        );
    }
}

#[test]
fn x_keys_are_allowed_for_anchors() {
    let source = "x-base: &base\n  image: alpine\nsteps:\n  - <<: *base\n    name: a\n    commands: [\"true\"]\n";
    assert_eq!(problems(&documents(source)[0]), Vec::<String>::new());
}

#[test]
fn the_schema_is_stable() {
    insta::assert_json_snapshot!("pipeline_schema", gantry_pipeline::json_schema());
}
