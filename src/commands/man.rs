//! `svcacct man`: the man page, as roff, generated from the clap types (so it is as current
//! as `--help`). One page documents every subcommand, since `man svcacct` is what people type.

use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;

use super::exit;
use crate::cli::Cli;

/// Prints `svcacct.1` to standard output.
pub fn man() -> Result<u8> {
    let cmd = Cli::command();
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    render_subcommands(&mut page, &cmd, "")?;
    man.render_version_section(&mut page)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&page)?;
    stdout.flush()?;
    Ok(exit::OK)
}

/// One `.SS` per command as the user types it (`svcacct secrets prune`), with its usage and
/// options: clap_mangen's own subcommand section lists only names, as references to
/// `svcacct-plan(1)` pages that a single page does not have.
fn render_subcommands(page: &mut Vec<u8>, cmd: &clap::Command, prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        writeln!(page, ".SH COMMANDS")?;
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{prefix}{}", sub.get_name());
        if sub.has_subcommands() {
            render_subcommands(page, sub, &format!("{name} "))?;
            continue;
        }
        writeln!(page, ".SS \"svcacct {name}\"")?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(page, "{}", roff_escape(&about.to_string()))?;
        }
        let mut usage_cmd = sub.clone().bin_name(format!("svcacct {name}"));
        let usage = usage_cmd.render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ").trim();
        writeln!(page, ".PP\n.nf\n{}\n.fi", roff_escape(usage))?;
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            writeln!(page, ".TP\n{}", roff_escape(&arg_label(arg)))?;
            if let Some(help) = arg.get_long_help().or(arg.get_help()) {
                writeln!(page, "{}", roff_escape(&help.to_string()))?;
            }
        }
    }
    Ok(())
}

/// How an argument is written: `-c, --config <CONFIG>`, or `<PLAN>` for a positional one.
fn arg_label(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .and_then(|v| v.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
    if arg.is_positional() {
        return format!("<{value}>");
    }
    let mut names = Vec::new();
    if let Some(s) = arg.get_short() {
        names.push(format!("-{s}"));
    }
    if let Some(l) = arg.get_long() {
        names.push(format!("--{l}"));
    }
    if !arg.get_action().takes_values() {
        return names.join(", ");
    }
    let default: Vec<_> = arg
        .get_default_values()
        .iter()
        .map(|d| d.to_string_lossy())
        .collect();
    if default.is_empty() {
        format!("{} <{value}>", names.join(", "))
    } else {
        format!(
            "{} <{value}> [default: {}]",
            names.join(", "),
            default.join(",")
        )
    }
}

/// Text as roff reads it literally: a leading `.` or `'` would be a request, `\` an escape.
fn roff_escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            let escaped = line.replace('\\', "\\e").replace('-', "\\-");
            if escaped.starts_with('.') || escaped.starts_with('\'') {
                format!("\\&{escaped}")
            } else {
                escaped
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
