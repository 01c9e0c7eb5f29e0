//! The EAS code pages (MS-ASWBXML section 2.1.2.1): which tag each page/token pair names, in
//! which namespace, and in which protocol versions it exists.
//!
//! The tables themselves live in `tags/table.rs`; this module holds their types and the
//! look-ups the reader and writer use. Everything here is `static`: no allocation.

mod table;

pub use table::PAGES;

/// An ActiveSync protocol version, as named in MS-ASHTTP's MS-ASProtocolVersions header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ProtocolVersion {
    V2_5 = 0,
    V12_0 = 1,
    V12_1 = 2,
    V14_0 = 3,
    V14_1 = 4,
    V16_0 = 5,
    V16_1 = 6,
}

impl ProtocolVersion {
    /// Every version, oldest first.
    pub const ALL: [ProtocolVersion; 7] = [
        ProtocolVersion::V2_5,
        ProtocolVersion::V12_0,
        ProtocolVersion::V12_1,
        ProtocolVersion::V14_0,
        ProtocolVersion::V14_1,
        ProtocolVersion::V16_0,
        ProtocolVersion::V16_1,
    ];

    /// The version as it is written on the wire ("16.1").
    pub const fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2_5 => "2.5",
            ProtocolVersion::V12_0 => "12.0",
            ProtocolVersion::V12_1 => "12.1",
            ProtocolVersion::V14_0 => "14.0",
            ProtocolVersion::V14_1 => "14.1",
            ProtocolVersion::V16_0 => "16.0",
            ProtocolVersion::V16_1 => "16.1",
        }
    }

    /// Parses the wire form ("14.1"); `None` for a version this table does not know.
    pub fn parse(s: &str) -> Option<ProtocolVersion> {
        ProtocolVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s.trim())
    }
}

impl core::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of protocol versions (bit `v as u8` set when version `v` is in it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Versions(u8);

impl Versions {
    /// Every version ("All" in the spec tables).
    pub const ALL: Versions = Versions(0x7f);

    /// Exactly the versions listed.
    pub const fn of(list: &[ProtocolVersion]) -> Versions {
        let mut bits = 0u8;
        let mut i = 0;
        while i < list.len() {
            bits |= 1 << list[i] as u8;
            i += 1;
        }
        Versions(bits)
    }

    /// `first` and every later version.
    pub const fn since(first: ProtocolVersion) -> Versions {
        Versions(0x7f & !((1u8 << first as u8) - 1))
    }

    /// Whether `v` is in the set.
    pub const fn contains(self, v: ProtocolVersion) -> bool {
        self.0 & (1 << v as u8) != 0
    }

    /// The raw bit mask (bit `v as u8` for version `v`).
    pub const fn bits(self) -> u8 {
        self.0
    }
}

/// One tag of a code page.
#[derive(Debug, PartialEq, Eq)]
pub struct TagDef {
    /// The token, 0x05..=0x3F (the low six bits of a WBXML tag byte).
    pub token: u8,
    /// The tag's name as MS-ASWBXML spells it.
    pub name: &'static str,
    /// The protocol versions in which the tag exists.
    pub versions: Versions,
}

/// One code page: a namespace and its tags, sorted by token.
#[derive(Debug)]
pub struct CodePage {
    /// The page number, 0..=25.
    pub number: u8,
    /// The namespace name as MS-ASWBXML spells it ("AirSyncBase").
    pub name: &'static str,
    /// The XML namespace URI EAS uses for it (the name plus a colon: "AirSyncBase:").
    pub xmlns: &'static str,
    /// A short lowercase prefix for XML output ("airsyncbase").
    pub prefix: &'static str,
    /// The tags, sorted by token.
    pub tags: &'static [TagDef],
    /// For each token 0..64, its position in `tags` plus one (0: no such tag), so that the
    /// reader's look-up per element is one load.
    pub index: [u8; 64],
}

impl CodePage {
    /// Builds the token index for `tags` (at compile time, for the static tables).
    pub const fn index_of(tags: &[TagDef]) -> [u8; 64] {
        let mut index = [0u8; 64];
        let mut i = 0;
        while i < tags.len() {
            index[(tags[i].token & 0x3f) as usize] = (i + 1) as u8;
            i += 1;
        }
        index
    }

    /// The tag with this token, if the page has one.
    #[inline]
    pub fn tag(&self, token: u8) -> Option<&'static TagDef> {
        let tags: &'static [TagDef] = self.tags;
        let slot = *self.index.get(token as usize)?;
        tags.get(usize::from(slot).checked_sub(1)?)
    }

    /// The tag with this spec name, if the page has one.
    pub fn tag_by_name(&self, name: &str) -> Option<&'static TagDef> {
        let tags: &'static [TagDef] = self.tags;
        tags.iter().find(|t| t.name == name)
    }
}

/// The code page with this number, if EAS defines it.
pub fn page(number: u8) -> Option<&'static CodePage> {
    PAGES.get(number as usize)
}

/// The code page whose namespace is `ns`. Accepts the URI form ("AirSync:") and the bare
/// name ("AirSync"), in any letter case ("Gal:" for "GAL"), as all occur in the wild.
pub fn page_by_namespace(ns: &str) -> Option<&'static CodePage> {
    let name = ns.strip_suffix(':').unwrap_or(ns);
    PAGES.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The code page numbers of MS-ASWBXML, for [`Tag::named`].
pub mod cp {
    pub const AIRSYNC: u8 = 0;
    pub const CONTACTS: u8 = 1;
    pub const EMAIL: u8 = 2;
    pub const AIRNOTIFY: u8 = 3;
    pub const CALENDAR: u8 = 4;
    pub const MOVE: u8 = 5;
    pub const GET_ITEM_ESTIMATE: u8 = 6;
    pub const FOLDER_HIERARCHY: u8 = 7;
    pub const MEETING_RESPONSE: u8 = 8;
    pub const TASKS: u8 = 9;
    pub const RESOLVE_RECIPIENTS: u8 = 10;
    pub const VALIDATE_CERT: u8 = 11;
    pub const CONTACTS2: u8 = 12;
    pub const PING: u8 = 13;
    pub const PROVISION: u8 = 14;
    pub const SEARCH: u8 = 15;
    pub const GAL: u8 = 16;
    pub const AIRSYNCBASE: u8 = 17;
    pub const SETTINGS: u8 = 18;
    pub const DOCUMENT_LIBRARY: u8 = 19;
    pub const ITEM_OPERATIONS: u8 = 20;
    pub const COMPOSE_MAIL: u8 = 21;
    pub const EMAIL2: u8 = 22;
    pub const NOTES: u8 = 23;
    pub const RIGHTS_MANAGEMENT: u8 = 24;
    pub const FIND: u8 = 25;
}

/// A tag as it appears on the wire: a code page and a token (the content bit stripped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    pub page: u8,
    pub token: u8,
}

impl Tag {
    pub const fn new(page: u8, token: u8) -> Tag {
        Tag { page, token }
    }

    /// The tag called `name` on code page `page`, resolved at compile time when used in a
    /// `const`: a misspelt name is a build error, never a wrong token on the wire.
    ///
    /// # Panics
    /// When the page has no such tag (at compile time in a `const` context).
    pub const fn named(page: u8, name: &str) -> Tag {
        assert!((page as usize) < PAGES.len(), "no such code page");
        let tags = PAGES[page as usize].tags;
        let mut i = 0;
        while i < tags.len() {
            if const_str_eq(tags[i].name, name) {
                return Tag::new(page, tags[i].token);
            }
            i += 1;
        }
        panic!("no tag of that name on this code page")
    }

    /// Looks a tag up by namespace (URI or bare name) and spec name.
    pub fn by_name(namespace: &str, name: &str) -> Option<Tag> {
        let p = page_by_namespace(namespace)?;
        let t = p.tag_by_name(name)?;
        Some(Tag::new(p.number, t.token))
    }

    /// The code page, if EAS defines it.
    pub fn code_page(self) -> Option<&'static CodePage> {
        page(self.page)
    }

    /// The table entry, if EAS defines this tag.
    pub fn def(self) -> Option<&'static TagDef> {
        self.code_page()?.tag(self.token)
    }

    /// The spec name, or `None` for a tag EAS does not define.
    pub fn name(self) -> Option<&'static str> {
        self.def().map(|d| d.name)
    }

    /// The namespace name ("AirSync"), or `None` for an unknown page.
    pub fn namespace(self) -> Option<&'static str> {
        self.code_page().map(|p| p.name)
    }

    /// Whether the tag exists in protocol version `v` (false for an unknown tag).
    pub fn in_version(self, v: ProtocolVersion) -> bool {
        self.def().is_some_and(|d| d.versions.contains(v))
    }
}

impl core::fmt::Display for Tag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match (self.namespace(), self.name()) {
            (Some(ns), Some(name)) => write!(f, "{ns}:{name}"),
            (Some(ns), None) => write!(f, "{ns}:0x{:02X}", self.token),
            _ => write!(f, "page {}:0x{:02X}", self.page, self.token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_numbered_in_order_and_sorted() {
        assert_eq!(PAGES.len(), 26);
        for (i, p) in PAGES.iter().enumerate() {
            assert_eq!(p.number as usize, i, "page {} out of place", p.name);
            assert_eq!(p.xmlns.strip_suffix(':'), Some(p.name));
            assert_eq!(p.prefix, p.name.to_ascii_lowercase());
            assert!(!p.tags.is_empty(), "page {} has no tags", p.name);
            for w in p.tags.windows(2) {
                assert!(
                    w[0].token < w[1].token,
                    "{}: tokens not strictly sorted at {}",
                    p.name,
                    w[1].name
                );
            }
            for t in p.tags {
                assert!(
                    (0x05..=0x3f).contains(&t.token),
                    "{}:{} token out of range",
                    p.name,
                    t.name
                );
                assert!(
                    t.versions.bits() != 0,
                    "{}:{} in no version",
                    p.name,
                    t.name
                );
                assert_eq!(
                    p.tag_by_name(t.name).map(|d| d.token),
                    Some(t.token),
                    "{}:{} name not unique",
                    p.name,
                    t.name
                );
            }
        }
    }

    #[test]
    fn tokens_without_a_tag_are_not_found() {
        for p in PAGES.iter() {
            for token in 0..=255u8 {
                if let Some(t) = p.tag(token) {
                    assert_eq!(t.token, token);
                } else {
                    assert!(p.tags.iter().all(|t| t.token != token));
                }
            }
        }
    }

    #[test]
    fn version_sets() {
        let v = Versions::since(ProtocolVersion::V14_0);
        assert!(!v.contains(ProtocolVersion::V12_1));
        assert!(v.contains(ProtocolVersion::V14_0));
        assert!(v.contains(ProtocolVersion::V16_1));
        let o = Versions::of(&[ProtocolVersion::V16_1]);
        assert!(o.contains(ProtocolVersion::V16_1) && !o.contains(ProtocolVersion::V16_0));
        assert_eq!(ProtocolVersion::parse("14.1"), Some(ProtocolVersion::V14_1));
        assert_eq!(ProtocolVersion::parse("15.0"), None);
    }
}
