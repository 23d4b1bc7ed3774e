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

use std::sync::Mutex;

use super::raw::{NamedMap, RawConfig, RawServiceAccount};

/// Below this size a file is parsed whole: threads would cost more than they save.
const MIN_BYTES: usize = 256 * 1024;

/// Pieces per thread: small pieces keep the parsed-but-not-yet-converted YAML of only a few
/// at a time in memory, and even out the threads' work.
const PIECES_PER_THREAD: usize = 8;

/// A run of whole entries of the section, and the file's line number of its first line.
struct Piece<'a> {
    text: &'a str,
    first_line: usize,
}

/// The section's shape, as the full parser needs it to read a piece with the file's places.
struct Section {
    /// The 0-based line of `service_accounts:`.
    head: usize,
}

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
    let (rest, section, pieces) = split(text, threads * PIECES_PER_THREAD)?;
    let full = |doc: &str| serde_saphyr::from_str_with_options::<RawConfig>(doc, options()).ok();
    // Most pieces are plain block YAML, read fast; the full parser reads any other.
    let parse_piece = |piece: &Piece| {
        super::block_yaml::from_str_at::<NamedMap<RawServiceAccount>>(piece.text, piece.first_line)
            .ok()
            .or_else(|| {
                let parsed = full(&padded(&section, piece))?;
                // A piece holds service accounts only; anything else means the cut was wrong.
                let only_accounts = parsed.organization.is_none()
                    && parsed.roles.0.is_empty()
                    && parsed.teams.0.is_empty();
                only_accounts.then_some(parsed.service_accounts)
            })
    };
    // Each piece with the place its result goes.
    let slots: Vec<(Piece, Mutex<Option<NamedMap<RawServiceAccount>>>)> =
        pieces.into_iter().map(|p| (p, Mutex::new(None))).collect();
    let rest = std::thread::scope(|s| {
        let rest = s.spawn(|| {
            super::block_yaml::from_str::<RawConfig>(&rest)
                .ok()
                .or_else(|| full(&rest))
        });
        crate::parallel::on_threads(threads, &slots, |(piece, slot)| {
            *slot.lock().expect("no panics while held") = parse_piece(piece);
        });
        rest.join().ok().flatten()
    });
    let mut config = rest?;
    if !config.service_accounts.0.is_empty() {
        return None;
    }
    for (_, slot) in slots {
        let piece = slot.into_inner().expect("no panics while held")?;
        config.service_accounts.0.extend(piece.0);
    }
    Some(config)
}

/// A piece as a document of its own for the full parser: padded with blank lines before its
/// section's key, and between that and its first line, so every place is the file's own.
fn padded(section: &Section, piece: &Piece) -> String {
    let mut doc = String::with_capacity(piece.first_line + piece.text.len() + 32);
    doc.extend(std::iter::repeat_n('\n', section.head));
    doc.push_str("service_accounts:\n");
    doc.extend(std::iter::repeat_n(
        '\n',
        piece.first_line - section.head - 2,
    ));
    doc.push_str(piece.text);
    doc
}

/// How many spaces `line` starts with. (Bytes, not characters: this runs for every line of the
/// file before any thread starts.)
fn indent(line: &str) -> usize {
    line.bytes().position(|b| b != b' ').unwrap_or(line.len())
}

/// Whether a line indented by `indent` holds more than spaces or a comment.
fn is_content(line: &str, indent: usize) -> bool {
    // Spaces only: a file with tabs or carriage returns is not split.
    line.as_bytes().get(indent).is_some_and(|&b| b != b'#')
}

/// Whether `line` is exactly the top-level key `service_accounts:` (a comment may follow).
fn is_section_start(line: &str) -> bool {
    line.strip_prefix("service_accounts:")
        .is_some_and(|after| after.trim().is_empty() || after.starts_with(" #"))
}

/// The rest of the file with the section's entries blanked, the section's head, and the
/// section cut into up to `count` pieces of whole entries.
///
/// One pass over the lines: it runs before any thread starts, so at 100,000 accounts every
/// extra pass over 46 MB is time the whole parse waits for.
fn split(text: &str, count: usize) -> Option<(String, Section, Vec<Piece<'_>>)> {
    // Spaces only: a file with tabs or carriage returns is not split.
    if memchr::memchr2(b'\t', b'\r', text.as_bytes()).is_some() {
        return None;
    }
    let mut head = None;
    // The body's end: the first line of content at column 0 after the head, as its line
    // number and offset.
    let mut end = None;
    let mut entry_indent = 0;
    // The line number and offset of every entry of the section.
    let mut entries = Vec::new();
    let mut lines = 0;
    for (i, (offset, line)) in super::block_yaml::lines_of(text).enumerate() {
        lines = i + 1;
        // One block document: no directives or document markers.
        if line.starts_with("---") || line.starts_with("...") || line.starts_with('%') {
            return None;
        }
        if is_section_start(line) {
            if head.is_some() {
                return None;
            }
            head = Some((i, offset, offset + line.len() + 1));
            continue;
        }
        if head.is_none() || end.is_some() {
            continue;
        }
        let indent = indent(line);
        if !is_content(line, indent) {
            continue;
        }
        match indent {
            0 => end = Some((i, offset)),
            n if entry_indent == 0 || n == entry_indent => {
                entry_indent = n;
                entries.push((i, offset));
            }
            n if n < entry_indent => return None,
            _ => {}
        }
    }
    // The body starts on the line after the head.
    let (head, head_start, body_start) = head?;
    let (end, end_offset) = end.unwrap_or((lines, text.len()));
    let body_start = body_start.min(text.len());
    if entries.len() < 2 * count.min(8) {
        return None;
    }
    let per_piece = entries.len().div_ceil(count);
    let pieces = entries
        .chunks(per_piece)
        .enumerate()
        .map(|(n, group)| {
            let to = entries.get((n + 1) * per_piece).map_or(end_offset, |e| e.1);
            Piece {
                text: &text[group[0].1..to],
                first_line: group[0].0 + 1,
            }
        })
        .collect();
    let body_lines = end - (head + 1);
    let mut rest = String::with_capacity(text.len() - (end_offset - body_start) + body_lines);
    rest.push_str(&text[..head_start]);
    // An empty mapping rather than an empty value: the fast reader takes it, where the
    // empty value sent the rest, and its million blank lines, to the full parser.
    rest.push_str("service_accounts: {}\n");
    rest.extend(std::iter::repeat_n('\n', body_lines));
    rest.push_str(&text[end_offset..]);
    Some((rest, Section { head }, pieces))
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

    #[test]
    fn pieces_parse_to_what_the_whole_file_parses_to() {
        let text = config(40);
        let (rest, section, pieces) = split(&text, 3).expect("splits");
        assert_eq!(pieces.len(), 3);
        // Every document keeps the file's line numbers.
        assert_eq!(rest.lines().count(), text.lines().count());
        // The rest is plain block YAML, for the fast reader (not the full parser) to read.
        let fast = super::super::block_yaml::from_str::<RawConfig>(&rest).expect("read fast");
        assert!(fast.service_accounts.0.is_empty());
        assert_eq!(fast.roles.0.len(), 1);
        let parse = |d: &str| serde_saphyr::from_str::<RawConfig>(d).unwrap();
        let mut joined = parse(&rest);
        for p in &pieces {
            joined
                .service_accounts
                .0
                .extend(parse(&padded(&section, p)).service_accounts.0);
        }
        let expected = whole(&text);
        assert_eq!(format!("{joined:?}"), format!("{expected:?}"));
        assert_eq!(joined.roles.0.len(), 1);
        assert_eq!(joined.teams.0.len(), 1);
        let first_team = &expected.service_accounts.0[39].1.teams.0[0].0;
        assert_eq!(&joined.service_accounts.0[39].1.teams.0[0].0, first_team);
    }

    #[test]
    fn big_files_parse_in_pieces_with_their_own_places() {
        let mut text = config(4000);
        assert!(text.len() > MIN_BYTES);
        // Block scalars: every piece is read by the full parser.
        let parsed = parse_in_pieces(&text, 2, serde_saphyr::Options::default).expect("split");
        assert_eq!(format!("{parsed:?}"), format!("{:?}", whole(&text)));
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
