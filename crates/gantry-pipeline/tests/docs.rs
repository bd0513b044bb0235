//! docs/pipeline.md stays complete: every diagnostic code and every field is documented.

use std::path::Path;

use gantry_pipeline::Code;

fn reference() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/pipeline.md");
    std::fs::read_to_string(path).expect("docs/pipeline.md exists")
}

#[test]
fn every_diagnostic_code_is_in_the_reference() {
    let docs = reference();
    for code in Code::ALL {
        let row = format!("| {} | `{}` |", code.id(), code.name());
        assert!(
            docs.contains(&row),
            "docs/pipeline.md lacks the row `{row}`"
        );
    }
}

#[test]
fn every_pipeline_and_step_field_is_in_the_reference() {
    let docs = reference();
    let schema = gantry_pipeline::json_schema();
    for pointer in ["/properties", "/$defs/StepDoc/properties"] {
        let fields = schema
            .pointer(pointer)
            .and_then(|p| p.as_object())
            .expect("schema properties");
        for field in fields.keys() {
            let row = format!("| `{field}` |");
            assert!(
                docs.contains(&row),
                "docs/pipeline.md has no table row for `{field}`"
            );
        }
    }
}
