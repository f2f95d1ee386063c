//! Reading server.json objects in either naming style: the current camelCase schema
//! (`isRequired`, `environmentVariables`) and the mid-2025 snake_case one (`is_required`,
//! `environment_variables`). Wrong types become issues naming the field, never panics.

use serde_json::{Map, Value};

use super::Issue;

/// One JSON object of a document, with the dotted path it sits at (for issues).
#[derive(Clone, Copy)]
pub(crate) struct Object<'a> {
    /// Dotted path, e.g. `packages[0].transport`.
    pub path: &'a str,
    /// The object's members.
    pub members: &'a Map<String, Value>,
}

impl<'a> Object<'a> {
    /// Wraps `value` when it is an object; anything else gives an issue at `path`.
    pub fn of(path: &'a str, value: &'a Value, issues: &mut Vec<Issue>) -> Option<Self> {
        match value {
            Value::Object(members) => Some(Object { path, members }),
            other => {
                issues.push(Issue::new(
                    path,
                    format!("expected an object, found {}", type_name(other)),
                ));
                None
            }
        }
    }

    /// The first of `names` present (names are the spellings of one field in both styles),
    /// with the spelling found.
    pub fn get(&self, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
        names
            .iter()
            .find_map(|n| self.members.get(*n).map(|v| (*n, v)))
    }

    /// The dotted path of member `name`.
    pub fn field(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// A string member; a value of another type is an issue.
    pub fn string(&self, names: &[&'static str], issues: &mut Vec<Issue>) -> Option<&'a str> {
        let (name, value) = self.get(names)?;
        match value {
            Value::String(s) => Some(s.as_str()),
            Value::Null => None,
            other => {
                issues.push(Issue::new(
                    self.field(name),
                    format!("expected a string, found {}", type_name(other)),
                ));
                None
            }
        }
    }

    /// A boolean member (absent: `false`, the schema's default); another type is an issue.
    pub fn flag(&self, names: &[&'static str], issues: &mut Vec<Issue>) -> bool {
        match self.get(names) {
            None | Some((_, Value::Null)) => false,
            Some((_, Value::Bool(b))) => *b,
            Some((name, other)) => {
                issues.push(Issue::new(
                    self.field(name),
                    format!(
                        "expected true or false, found {}; treated as false",
                        type_name(other)
                    ),
                ));
                false
            }
        }
    }

    /// An array member with the path of each item; another type is an issue.
    pub fn array(
        &self,
        names: &[&'static str],
        issues: &mut Vec<Issue>,
    ) -> Vec<(String, &'a Value)> {
        match self.get(names) {
            None | Some((_, Value::Null)) => Vec::new(),
            Some((name, Value::Array(items))) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{}[{i}]", self.field(name)), v))
                .collect(),
            Some((name, other)) => {
                issues.push(Issue::new(
                    self.field(name),
                    format!("expected an array, found {}", type_name(other)),
                ));
                Vec::new()
            }
        }
    }

    /// A list of strings (e.g. `choices`); items of another type are issues and left out.
    pub fn strings(&self, names: &[&'static str], issues: &mut Vec<Issue>) -> Vec<String> {
        self.array(names, issues)
            .into_iter()
            .filter_map(|(path, v)| match v {
                Value::String(s) => Some(s.clone()),
                other => {
                    issues.push(Issue::new(
                        path,
                        format!("expected a string, found {}", type_name(other)),
                    ));
                    None
                }
            })
            .collect()
    }
}

/// The JSON type of a value, for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
