use crate::{FORMAT_UNTYPED, FORMAT_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The parser's own message, made one line: it carries no source, so an
    /// error chain prints it once.
    #[error("profile is not valid TOML for this format: {0}")]
    Parse(String),
    #[error(
        "profile format {found} is not supported (this nobtf reads formats {FORMAT_UNTYPED} and {FORMAT_VERSION}); regenerate it with `offsets gen`"
    )]
    Format { found: u32 },
    #[error("profile has no field `{0}`; regenerate it with `offsets gen`")]
    MissingField(String),
    #[error("profile has no function `{0}`; regenerate it with `offsets gen`")]
    MissingFunction(String),
    #[error("profile value is impossible: {0}")]
    Invalid(String),
}

impl From<toml::de::Error> for ProfileError {
    fn from(err: toml::de::Error) -> ProfileError {
        ProfileError::Parse(one_line(&err.to_string()))
    }
}

/// The TOML parser draws the input over several lines; keep the first line
/// (where) and the last (what).
fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.as_slice() {
        [] => String::new(),
        [only] => (*only).to_string(),
        [first, .., last] => format!("{first}: {last}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parse_errors_are_one_line() {
        let err = crate::Profile::from_toml_str("root:x:0:0:root:/root:/bin/bash\n").unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("line 1, column 5"), "{text}");
        assert!(std::error::Error::source(&err).is_none());
    }
}
