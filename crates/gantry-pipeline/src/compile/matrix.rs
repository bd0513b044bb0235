//! Expanding `matrix:` into its combinations.

use std::collections::BTreeMap;

use crate::ast::Matrix;

/// Every combination, in order: the product of the axes (first axis slowest), without
/// the excluded ones, then the `include` entries not already present.
pub fn combinations(matrix: &Matrix) -> Vec<BTreeMap<String, String>> {
    let mut out: Vec<BTreeMap<String, String>> = Vec::new();
    if !matrix.axes.is_empty() {
        out.push(BTreeMap::new());
        for (name, values) in &matrix.axes {
            out = out
                .into_iter()
                .flat_map(|combo| {
                    values.iter().map(move |value| {
                        let mut next = combo.clone();
                        next.insert(name.value.clone(), value.clone());
                        next
                    })
                })
                .collect();
        }
    }
    out.retain(|combo| !matrix.exclude.iter().any(|ex| is_subset(ex, combo)));
    for extra in &matrix.include {
        if !out.contains(extra) {
            out.push(extra.clone());
        }
    }
    out
}

fn is_subset(part: &BTreeMap<String, String>, whole: &BTreeMap<String, String>) -> bool {
    part.iter().all(|(k, v)| whole.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{At, Sp};

    fn axis(name: &str, values: &[&str]) -> (Sp<String>, Vec<String>) {
        let name = Sp {
            value: name.to_owned(),
            at: At::default(),
        };
        (name, values.iter().map(|v| (*v).to_owned()).collect())
    }

    fn combo(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn product_exclude_include() {
        let matrix = Matrix {
            axes: vec![
                axis("RUST", &["stable", "beta"]),
                axis("DB", &["pg", "sqlite"]),
            ],
            include: vec![
                combo(&[("RUST", "nightly"), ("DB", "pg")]),
                combo(&[("RUST", "stable"), ("DB", "pg")]),
            ],
            exclude: vec![combo(&[("RUST", "beta"), ("DB", "sqlite")])],
        };
        let all = combinations(&matrix);
        assert_eq!(
            all,
            vec![
                combo(&[("RUST", "stable"), ("DB", "pg")]),
                combo(&[("RUST", "stable"), ("DB", "sqlite")]),
                combo(&[("RUST", "beta"), ("DB", "pg")]),
                combo(&[("RUST", "nightly"), ("DB", "pg")]),
            ]
        );
    }

    #[test]
    fn include_only() {
        let matrix = Matrix {
            axes: Vec::new(),
            include: vec![combo(&[("GO", "1.22")])],
            exclude: Vec::new(),
        };
        assert_eq!(combinations(&matrix), vec![combo(&[("GO", "1.22")])]);
    }
}
