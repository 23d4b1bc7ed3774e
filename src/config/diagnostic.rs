//! Config errors and warnings that point at a file, line and column with a snippet, in the
//! style of rustc, so a mistake in a large inventory is found at a glance.

use std::fmt;
use std::path::PathBuf;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding in a config file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub message: String,
    /// The source line the finding is on, for the snippet.
    pub source_line: String,
    /// A hint, such as the closest defined name.
    pub help: Option<String>,
    /// Another place involved, such as the first definition of a duplicate.
    pub note: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let gutter = self.line.to_string().len();
        let pad = " ".repeat(gutter);
        writeln!(f, "{label}: {}", self.message)?;
        writeln!(
            f,
            "{pad}--> {}:{}:{}",
            self.file.display(),
            self.line,
            self.column
        )?;
        if !self.source_line.is_empty() {
            let caret = " ".repeat(self.column.saturating_sub(1) as usize);
            writeln!(f, "{pad} |")?;
            writeln!(f, "{} | {}", self.line, self.source_line)?;
            writeln!(f, "{pad} | {caret}^")?;
        }
        if let Some(note) = &self.note {
            writeln!(f, "{pad} = note: {note}")?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// One parsed file: its path and text, to point into.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    /// A diagnostic at a line and column of this file.
    pub fn diagnostic(
        &self,
        severity: Severity,
        line: u64,
        column: u64,
        message: String,
    ) -> Diagnostic {
        let source_line = self
            .text
            .lines()
            .nth(line.saturating_sub(1) as usize)
            .unwrap_or("")
            .to_string();
        Diagnostic {
            severity,
            file: self.path.clone(),
            line,
            column,
            message,
            source_line,
            help: None,
            note: None,
        }
    }

    /// `path:line:column`, for notes that name a second place.
    pub fn place(&self, line: u64, column: u64) -> String {
        format!("{}:{line}:{column}", self.path.display())
    }
}
