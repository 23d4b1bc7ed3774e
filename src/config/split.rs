//! Large config files are parsed on several threads. The YAML parser reads about 15 MB/s, so
//! an organization of 10,000 accounts in one 4 MB file would spend most of a plan parsing.
//!
//! Such a file is a block mapping whose `service_accounts:` section is a long run of entries
//! at one indentation. We cut that section at entry boundaries and parse each piece, and the
//! rest of the file, as a document of its own on its own thread. Every document is padded with
//! blank lines so that each line and column the parser records is the file's own. This is an
//! optimisation only: when the file has another shape, or any piece fails to parse (an alias
//! to an anchor in another piece, say), the caller parses the file whole, so every error
//! still comes from the whole-file parse. Duplicate account names across pieces are caught
//! by the merge, which names both places, as for names defined in two files.

use super::raw::RawConfig;

/// Below this size a file is parsed whole: threads would cost more than they save.
const MIN_BYTES: usize = 256 * 1024;

/// The file parsed in pieces on up to `threads` threads, or `None` when it cannot be split
/// or a piece does not parse.
pub fn parse_in_pieces(
    text: &str,
    threads: usize,
    options: impl Fn() -> serde_saphyr::Options + Sync,
) -> Option<RawConfig> {
    if threads < 2 || text.len() < MIN_BYTES {
        return None;
    }
    let (rest, pieces) = split(text, threads)?;
    // Most pieces are plain block YAML, read fast; the full parser reads any other.
    let parse = |doc: &str| {
        super::block_yaml::from_str::<RawConfig>(doc)
            .ok()
            .or_else(|| serde_saphyr::from_str_with_options::<RawConfig>(doc, options()).ok())
    };
    let (rest, pieces) = std::thread::scope(|s| {
        let handles: Vec<_> = pieces.iter().map(|p| s.spawn(|| parse(p))).collect();
        let rest = parse(&rest);
        let pieces: Vec<Option<RawConfig>> = handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect();
        (rest, pieces)
    });
    let mut config = rest?;
    if !config.service_accounts.0.is_empty() {
        return None;
    }
    for piece in pieces {
        let piece = piece?;
        // A piece holds service accounts only; anything else means the cut was wrong.
        if piece.organization.is_some() || !piece.roles.0.is_empty() || !piece.teams.0.is_empty() {
            return None;
        }
        config.service_accounts.0.extend(piece.service_accounts.0);
    }
    Some(config)
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

/// Whether `line` is exactly the top-level key `service_accounts:` (a comment may follow).
fn is_section_start(line: &str) -> bool {
    line.strip_prefix("service_accounts:")
        .is_some_and(|after| after.trim().is_empty() || after.starts_with(" #"))
}

/// The rest of the file with the section's entries blanked, and the section cut into up to
/// `count` documents, every one as long (in lines) as the file up to its last line.
fn split(text: &str, count: usize) -> Option<(String, Vec<String>)> {
    if text.contains('\t') || text.contains('\r') {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    // One block document: no directives or document markers.
    if lines
        .iter()
        .any(|l| l.starts_with("---") || l.starts_with("...") || l.starts_with('%'))
    {
        return None;
    }
    let mut starts = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| is_section_start(l));
    let (head, _) = starts.next()?;
    if starts.next().is_some() {
        return None;
    }
    // The section runs until the next line of content at column 0.
    let end = (head + 1..lines.len())
        .find(|&i| is_content(lines[i]) && indent(lines[i]) == 0)
        .unwrap_or(lines.len());
    let body = head + 1..end;
    let entry_indent = body
        .clone()
        .map(|i| lines[i])
        .find(|l| is_content(l))
        .map(indent)?;
    if entry_indent == 0 {
        return None;
    }
    let mut entries = Vec::new();
    for i in body.clone() {
        let l = lines[i];
        if !is_content(l) {
            continue;
        }
        match indent(l) {
            n if n == entry_indent => entries.push(i),
            n if n < entry_indent => return None,
            _ => {}
        }
    }
    if entries.len() < 2 * count {
        return None;
    }
    let per_piece = entries.len().div_ceil(count);
    let mut pieces = Vec::with_capacity(count);
    for group in entries.chunks(per_piece) {
        let from = group[0];
        let to = entries
            .get(entries.partition_point(|&e| e <= *group.last().unwrap()))
            .copied()
            .unwrap_or(end);
        let mut doc = String::with_capacity(from + text.len() / count + 32);
        doc.extend(std::iter::repeat_n('\n', head));
        doc.push_str("service_accounts:\n");
        doc.extend(std::iter::repeat_n('\n', from - head - 1));
        for l in &lines[from..to] {
            doc.push_str(l);
            doc.push('\n');
        }
        pieces.push(doc);
    }
    let mut rest = String::with_capacity(text.len() / count);
    for (i, l) in lines.iter().enumerate() {
        if !body.contains(&i) {
            rest.push_str(l);
        }
        if i + 1 < lines.len() {
            rest.push('\n');
        }
    }
    Some((rest, pieces))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(accounts: usize) -> String {
        let mut y = String::from(
            "# a comment\norganization: acme\nteams:\n  crew: {}\nservice_accounts:\n",
        );
        for a in 0..accounts {
            y.push_str(&format!(
                "  acct-{a}:\n    description: |\n      line one\n\n      line two\n    teams:\n      crew: viewer\n    keys:\n      k: {{ rotate_every: 30d }}\n\n"
            ));
        }
        y.push_str("roles:\n  r:\n    permissions: [\"*:read\"]\n");
        y
    }

    fn whole(text: &str) -> RawConfig {
        serde_saphyr::from_str(text).unwrap()
    }

    fn summary(c: &RawConfig) -> Vec<(String, u64, u64, String, usize)> {
        c.service_accounts
            .0
            .iter()
            .map(|(n, a)| {
                (
                    n.value.clone(),
                    n.line,
                    n.column,
                    a.description.clone(),
                    a.keys.0.len(),
                )
            })
            .collect()
    }

    #[test]
    fn pieces_parse_to_what_the_whole_file_parses_to() {
        let text = config(40);
        let (rest, pieces) = split(&text, 3).expect("splits");
        assert_eq!(pieces.len(), 3);
        // Every document keeps the file's line numbers.
        assert_eq!(rest.lines().count(), text.lines().count());
        let parse = |d: &str| serde_saphyr::from_str::<RawConfig>(d).unwrap();
        let mut joined = parse(&rest);
        for p in &pieces {
            joined
                .service_accounts
                .0
                .extend(parse(p).service_accounts.0);
        }
        let expected = whole(&text);
        assert_eq!(summary(&joined), summary(&expected));
        assert_eq!(joined.roles.0.len(), 1);
        assert_eq!(joined.teams.0.len(), 1);
        let first_team = &expected.service_accounts.0[39].1.teams.0[0].0;
        assert_eq!(&joined.service_accounts.0[39].1.teams.0[0].0, first_team);
    }

    #[test]
    fn big_files_parse_in_pieces_with_their_own_places() {
        let mut text = config(4000);
        assert!(text.len() > MIN_BYTES);
        let parsed = parse_in_pieces(&text, 2, serde_saphyr::Options::default).expect("split");
        assert_eq!(summary(&parsed), summary(&whole(&text)));
        // Plain block YAML, which the pieces read fast, reads the same, place for place.
        let plain = text.replace(
            "description: |\n      line one\n\n      line two",
            "description: one",
        );
        let parsed = parse_in_pieces(&plain, 2, serde_saphyr::Options::default).expect("split");
        assert_eq!(format!("{parsed:?}"), format!("{:?}", whole(&plain)));
        assert!(super::super::block_yaml::from_str::<RawConfig>(&plain).is_ok());
        // An error in a piece makes the caller parse the whole file, which reports it.
        text = text.replace(
            "  acct-3000:\n    description: |",
            "  acct-3000:\n    descripton: |",
        );
        assert!(parse_in_pieces(&text, 2, serde_saphyr::Options::default).is_none());
    }

    #[test]
    fn unusual_shapes_are_not_split() {
        assert!(split("service_accounts: {}\n", 2).is_none());
        assert!(split(&config(40).replace("organization", "---\norganization"), 2).is_none());
        assert!(
            split(&format!("{}service_accounts:\n", config(40)), 2).is_none(),
            "two sections"
        );
        assert!(
            split(&config(40).replace("  acct-7:", " acct-7:"), 2).is_none(),
            "odd indent"
        );
        assert!(
            split(&config(3), 2).is_none(),
            "too few entries to be worth it"
        );
    }

    #[test]
    fn a_piece_that_fails_falls_back() {
        // An alias in one piece to an anchor in another: that piece fails on its own.
        let mut text = config(40).replacen(
            "    teams:\n      crew: viewer",
            "    teams: &t\n      crew: viewer",
            1,
        );
        text = text.replace("  acct-39:\n    description: |\n      line one\n\n      line two\n    teams:\n      crew: viewer", "  acct-39:\n    teams: *t");
        while text.len() < MIN_BYTES {
            text.push_str("# padding to make the file big enough to split\n");
        }
        assert!(split(&text, 2).is_some(), "the file splits");
        assert!(parse_in_pieces(&text, 2, serde_saphyr::Options::default).is_none());
        assert_eq!(whole(&text).service_accounts.0.len(), 40);
    }
}
