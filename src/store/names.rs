//! Server-provided strings made into safe path components. Nothing the server sends
//! (folder display names, ServerIds, UIDs, attachment file names) becomes part of a path
//! without passing through here.
//!
//! Two schemes:
//!
//! - [`sanitize`] — for names people read (folder display names, attachment file names):
//!   `/`, `\`, NUL, control and bidi-override characters become `_`; leading dots and
//!   surrounding white space are dropped (no hidden files, no `.` or `..`); the result is
//!   at most [`MAX_NAME_BYTES`] bytes, cut on a character boundary and keeping a short
//!   extension; an empty result becomes [`PLACEHOLDER`]. [`NameSet`] then makes names
//!   unique within one folder by appending `~2`, `~3`, … (compared case-insensitively, so
//!   the result also holds on FAT file systems).
//!
//! - [`item_file_stem`] — for identifiers (ServerIds, UIDs) that must map to one file name
//!   each: ASCII letters, digits and `-_.@+=` are kept, every other byte is written `%XX`
//!   (so `%` itself is `%25` and the mapping is reversible with [`decode_item_file_stem`]);
//!   a leading `.` is written `%2E`. If the encoded form is longer than [`MAX_NAME_BYTES`],
//!   it is cut to a prefix and `~` plus 32 hex digits of the identifier's SHA-256 is
//!   appended: still one name per identifier (barring a hash collision), but not reversible;
//!   the state's item map is the authority for the ServerId in any case.

use std::collections::HashSet;

/// Upper bound of a name made here, in bytes (file systems allow 255; suffixes and
/// temporary-file decorations need room).
pub const MAX_NAME_BYTES: usize = 100;

/// The name given to something whose name sanitizes to nothing.
pub const PLACEHOLDER: &str = "unnamed";

/// Longest extension [`sanitize`] keeps when it has to shorten a name.
const MAX_KEPT_EXTENSION: usize = 16;

/// Whether `c` may not appear in a sanitized name.
fn is_unsafe_char(c: char) -> bool {
    c == '/'
        || c == '\\'
        || c.is_control()
        // Zero-width and direction-override characters: names must look like what they are.
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Makes a server-provided name a safe single path component (see the module docs).
/// Deterministic: the same input always gives the same output.
pub fn sanitize(raw: &str) -> String {
    let replaced: String = raw
        .chars()
        .map(|c| if is_unsafe_char(c) { '_' } else { c })
        .collect();
    // Dots and white space together: dropping one then the other left ". .x" as ".x".
    let trimmed = replaced
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end();
    shorten(trimmed, MAX_NAME_BYTES)
}

/// Cuts `name` to `max` bytes, keeping a short extension when there is one.
fn shorten(name: &str, max: usize) -> String {
    let name = if name.len() <= max {
        name.to_string()
    } else {
        match name.rfind('.') {
            Some(dot) if dot > 0 && name.len() - dot <= MAX_KEPT_EXTENSION => {
                let extension = &name[dot..];
                let stem = truncate_at_char(&name[..dot], max - extension.len());
                format!("{}{extension}", stem.trim_end())
            }
            _ => truncate_at_char(name, max).trim_end().to_string(),
        }
    };
    if name.is_empty() || name.chars().all(|c| c == '.') {
        PLACEHOLDER.to_string()
    } else {
        name
    }
}

/// Names already used in one folder; hands out unique sanitized names.
///
/// Uniqueness is case-insensitive. The suffix depends only on which names are already
/// taken, so replaying the same sequence of names gives the same result; callers record
/// the name they got (the state keeps each folder's directory name) so it never changes
/// afterwards.
#[derive(Debug, Default, Clone)]
pub struct NameSet {
    taken: HashSet<String>,
}

impl NameSet {
    /// An empty set.
    pub fn new() -> NameSet {
        NameSet::default()
    }

    /// A set holding names already in use (e.g. folders found on disk, reserved names).
    pub fn with_taken<'a>(names: impl IntoIterator<Item = &'a str>) -> NameSet {
        let mut set = NameSet::new();
        for n in names {
            set.reserve(n);
        }
        set
    }

    /// Marks `name` (as is) as used.
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_lowercase());
    }

    /// Whether `name` is used.
    pub fn contains(&self, name: &str) -> bool {
        self.taken.contains(&name.to_lowercase())
    }

    /// Gives up `name`, e.g. after its folder was deleted.
    pub fn release(&mut self, name: &str) {
        self.taken.remove(&name.to_lowercase());
    }

    /// Sanitizes `raw`, makes it unique (`name`, `name~2`, `name~3`, …), reserves it and
    /// returns it.
    pub fn unique(&mut self, raw: &str) -> String {
        let base = sanitize(raw);
        if !self.contains(&base) {
            self.reserve(&base);
            return base;
        }
        let mut n: u64 = 2;
        loop {
            let suffix = format!("~{n}");
            let candidate = format!(
                "{}{suffix}",
                truncate_at_char(&base, MAX_NAME_BYTES - suffix.len())
            );
            if !self.contains(&candidate) {
                self.reserve(&candidate);
                return candidate;
            }
            n += 1;
        }
    }
}

/// Whether `name` is a single, visible path component as this module makes them: no `/`,
/// no NUL or control characters, not `.`/`..`, no leading dot, at most 255 bytes. For
/// checking names read back from the state before joining them to a path.
pub fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.chars().any(is_unsafe_char)
}

/// Whether `b` stays as is in an item file stem.
fn is_plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+' | b'=')
}

/// Length of the prefix kept in front of the hash of an identifier too long to encode.
const HASHED_PREFIX_BYTES: usize = MAX_NAME_BYTES - 1 - 32;

/// The file name stem (no extension) for an item identified by `id` (a ServerId or UID).
/// See the module docs for the scheme.
pub fn item_file_stem(id: &str) -> String {
    let mut out = String::with_capacity(id.len().min(MAX_NAME_BYTES));
    for (i, &b) in id.as_bytes().iter().enumerate() {
        if is_plain_byte(b) && !(i == 0 && b == b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        if out.len() > MAX_NAME_BYTES {
            break;
        }
    }
    if out.is_empty() {
        return "%".into(); // `%` alone never results from encoding, so no clash.
    }
    if out.len() <= MAX_NAME_BYTES {
        return out;
    }
    // Too long: a prefix (not ending inside a %XX) and the hash.
    let mut cut = HASHED_PREFIX_BYTES;
    if let Some(pct) = out[..cut].rfind('%') {
        if pct + 3 > cut {
            cut = pct;
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let mut name = out[..cut].to_string();
    name.push('~');
    for b in &digest.as_ref()[..16] {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// The identifier an [`item_file_stem`] was made from, or `None` if the stem is hashed or
/// not one of ours.
pub fn decode_item_file_stem(stem: &str) -> Option<String> {
    if stem == "%" {
        return Some(String::new());
    }
    let bytes = stem.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = stem.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if is_plain_byte(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_safe(name: &str) {
        assert!(!name.is_empty());
        assert!(name.len() <= MAX_NAME_BYTES, "{} bytes", name.len());
        assert!(!name.contains('/') && !name.contains('\0'), "{name:?}");
        assert!(!name.starts_with('.'), "{name:?}");
        assert!(name != "." && name != "..");
        assert!(!name.chars().any(char::is_control), "{name:?}");
    }

    #[test]
    fn hostile_display_names() {
        let cases = [
            ("Inbox", "Inbox"),
            ("a/b", "a_b"),
            ("..", PLACEHOLDER),
            (".", PLACEHOLDER),
            ("", PLACEHOLDER),
            ("   ", PLACEHOLDER),
            ("../../etc/passwd", "_.._etc_passwd"),
            ("nul\0byte", "nul_byte"),
            ("line\nbreak\r", "line_break_"),
            (".hidden", "hidden"),
            ("...dots", "dots"),
            ("back\\slash", "back_slash"),
            ("tab\there", "tab_here"),
            ("evil\u{202E}txt.exe", "evil_txt.exe"),
            ("Posteingang ✉", "Posteingang ✉"),
        ];
        for (raw, want) in cases {
            let got = sanitize(raw);
            assert_eq!(got, want, "sanitize({raw:?})");
            assert_safe(&got);
        }
    }

    #[test]
    fn dots_and_spaces_mixed_at_the_start_never_make_a_hidden_name() {
        // Found by fuzz/fuzz_targets/local_files.rs: the leading dots were dropped once and
        // the white space after them, so ". .x" became the hidden ".x".
        for (raw, want) in [
            (". .x", "x"),
            (" . . .ssh", "ssh"),
            (".\t.bashrc", "_.bashrc"),
            (". ..", PLACEHOLDER),
        ] {
            let got = sanitize(raw);
            assert_eq!(got, want, "sanitize({raw:?})");
            assert_safe(&got);
        }
    }

    #[test]
    fn long_names_are_cut_on_char_boundary() {
        let long = "é".repeat(2048); // 4 KiB
        let got = sanitize(&long);
        assert_safe(&got);
        assert_eq!(got.len(), 100);
        let long = format!("{}.pdf", "ü".repeat(3000));
        let got = sanitize(&long);
        assert_safe(&got);
        assert!(got.ends_with(".pdf"), "{got}");
        assert!(got.len() <= MAX_NAME_BYTES);
        let odd = format!("a{}", "€".repeat(1500)); // 3-byte chars, misaligned cut
        assert_safe(&sanitize(&odd));
    }

    #[test]
    fn unique_names_get_stable_suffixes() {
        let mut set = NameSet::new();
        assert_eq!(set.unique("Inbox"), "Inbox");
        assert_eq!(set.unique("Inbox"), "Inbox~2");
        assert_eq!(set.unique("inbox"), "inbox~3");
        assert_eq!(set.unique("a/b"), "a_b");
        assert_eq!(set.unique("a_b"), "a_b~2");
        assert_eq!(set.unique("a\nb"), "a_b~3");
        // Same sequence, same answers.
        let mut again = NameSet::new();
        let seq: Vec<String> = ["Inbox", "Inbox", "inbox", "a/b", "a_b", "a\nb"]
            .iter()
            .map(|n| again.unique(n))
            .collect();
        assert_eq!(
            seq,
            ["Inbox", "Inbox~2", "inbox~3", "a_b", "a_b~2", "a_b~3"]
        );
        // Reserved names are avoided.
        let mut set = NameSet::with_taken(["outbox"]);
        assert_eq!(set.unique("Outbox"), "Outbox~2");
        set.release("Outbox~2");
        assert_eq!(set.unique("Outbox"), "Outbox~2");
    }

    #[test]
    fn unique_long_names_stay_bounded() {
        let mut set = NameSet::new();
        let long = "x".repeat(4096);
        let a = set.unique(&long);
        let b = set.unique(&long);
        assert_ne!(a, b);
        assert_safe(&a);
        assert_safe(&b);
        assert!(b.ends_with("~2"));
    }

    #[test]
    fn item_stems_are_safe_and_reversible() {
        for id in [
            "1:23",
            "../../etc/passwd",
            ".",
            "..",
            "",
            "a/b\0c\n",
            "%41",
            "040000008200E00074C5B7101A82E008",
            "ünïcödé",
        ] {
            let stem = item_file_stem(id);
            assert_safe(&stem);
            assert_eq!(decode_item_file_stem(&stem).as_deref(), Some(id), "{stem}");
        }
        assert_eq!(item_file_stem("1:23"), "1%3A23");
        assert_eq!(item_file_stem("..").as_str(), "%2E.");
        // Distinct ids, distinct stems (no case of `%41` vs `A` clashing).
        assert_ne!(item_file_stem("%41"), item_file_stem("A"));
    }

    #[test]
    fn long_item_ids_are_hashed() {
        let a = "A".repeat(4096);
        let b = format!("{}B", "A".repeat(4095));
        let (sa, sb) = (item_file_stem(&a), item_file_stem(&b));
        assert_safe(&sa);
        assert_safe(&sb);
        assert_ne!(sa, sb);
        assert_eq!(sa, item_file_stem(&a));
        assert_eq!(decode_item_file_stem(&sa), None);
        // A long id of bytes that all need escaping: no %XX cut in half.
        let slashes = "/".repeat(200);
        let s = item_file_stem(&slashes);
        assert_safe(&s);
        let prefix = s.split('~').next().unwrap();
        assert_eq!(prefix.len() % 3, 0, "{s}");
    }

    #[test]
    fn safe_component_check() {
        for good in ["Inbox", "Inbox~2", "1%3A23.vcf", "unnamed"] {
            assert!(is_safe_component(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\0b",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(!is_safe_component(bad), "{bad:?}");
        }
        assert!(is_safe_component(&sanitize("../../etc/passwd")));
    }

    #[test]
    fn decode_rejects_foreign_names() {
        assert_eq!(decode_item_file_stem("a b"), None);
        assert_eq!(decode_item_file_stem("%zz"), None);
        assert_eq!(decode_item_file_stem("%4"), None);
        assert_eq!(decode_item_file_stem("%FF"), None); // not UTF-8
    }
}
