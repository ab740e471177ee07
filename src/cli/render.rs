//! rustc-style rendering of diagnostics with `annotate-snippets` (the
//! renderer rustc itself uses): a title line `warning[code]: FILE:LINE:COL:
//! message`, the source line with a caret, and a `help:` line.

use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};
use mailpolicy::{Diagnostic, Severity};
use std::io::IsTerminal;

pub fn diagnostic(file: &str, d: &Diagnostic) -> String {
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
        _ => Level::NOTE,
    };
    let title = format!("{file}:{}:{}: {}", d.line, d.column, d.message);
    let line = d.source_line();
    // The caret, in bytes within the shown line.
    let start: usize = line
        .chars()
        .take(d.snippet_column().saturating_sub(1))
        .map(char::len_utf8)
        .sum();
    let width = d.span.end.saturating_sub(d.span.start).max(1);
    let mut end = (start + width).min(line.len());
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let end = if end <= start {
        (start + line[start..].chars().next().map_or(0, char::len_utf8)).min(line.len())
    } else {
        end
    };
    let mut snippet = Snippet::source(line)
        .line_start(d.line)
        .annotation(AnnotationKind::Primary.span(start..end));
    // A cut line's columns are not the file's: name the file only for whole lines.
    if d.snippet_column() == d.column {
        snippet = snippet.path(file);
    }
    let mut group = level
        .primary_title(title)
        .id(d.code.as_str())
        .element(snippet);
    if let Some(help) = &d.help {
        group = group.element(Level::HELP.message(help.as_str()));
    }
    if let Some(example) = &d.example {
        group = group.element(Level::NOTE.message(format!("for example: {example}")));
    }
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    renderer.render(&[group])
}
