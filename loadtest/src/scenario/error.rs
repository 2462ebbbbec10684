//! Why a scenario file was refused: always the file, the field path and what is wrong.

use std::fmt;

/// One rule a scenario breaks: `field` is a path such as `load.rate_per_s` or `faults[2].at_s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("{origin}: cannot read the scenario file: {cause}")]
    Read { origin: String, cause: String },

    /// Not TOML, or TOML that does not fit the schema (unknown field, wrong type, unknown value).
    #[error("{origin}: {}{message}{}", field_prefix(field), location(*line, *column))]
    Syntax { origin: String, field: String, line: Option<usize>, column: Option<usize>, message: String },

    /// Fits the schema but breaks its rules; every broken rule is listed, one per line.
    #[error("{}", list(origin, problems))]
    Invalid { origin: String, problems: Vec<Problem> },
}

impl ScenarioError {
    pub(super) fn from_toml(origin: &str, text: &str, field: String, error: toml::de::Error) -> Self {
        let (line, column) = match error.span() {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        ScenarioError::Syntax {
            origin: origin.to_string(),
            // serde_path_to_error says `.` for the document itself: nothing to name.
            field: if field == "." { String::new() } else { field },
            line,
            column,
            message: error.message().trim_end().replace('\n', "; "),
        }
    }

    /// The broken rules, for tests and for tools that show them one by one.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ScenarioError::Invalid { problems, .. } => problems.clone(),
            ScenarioError::Syntax { field, message, .. } => vec![Problem::new(field.clone(), message.clone())],
            ScenarioError::Read { .. } => Vec::new(),
        }
    }
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() { String::new() } else { format!("{field}: ") }
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(" (line {line}, column {column})"),
        _ => String::new(),
    }
}

fn list(origin: &str, problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("{origin}: {p}")).collect::<Vec<_>>().join("\n")
}

/// 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_and_column(text: &str, at: usize) -> (usize, usize) {
    let mut end = at.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_and_column;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 6), (2, 1));
        assert_eq!(line_and_column(text, 9), (2, 3));
        assert_eq!(line_and_column(text, 999), (3, 1));
    }
}
