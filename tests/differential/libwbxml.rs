//! libwbxml 0.11.8 (Debian's `libwbxml2-utils`) as an oracle: running its two tools, its
//! names for the EAS tags, reading the XML it prints and writing the XML it reads.
//!
//! Its quirks, and what the test does about each (none is a reason to skip a case):
//!
//! - 67 tags have other names in its tables (same page and token): `tests/data/
//!   libwbxml_names.tsv`, a copy of the table found by probing it token by token. It gets
//!   its own spelling and its output is mapped back. An unknown name is not an error for it:
//!   it silently takes a same-named tag of another page, so a wrong name would show up as
//!   wrong bytes, never as a skip.
//! - The GAL namespace is `Gal:`.
//! - It lacks the 16.1 additions (the Find page, MeetingResponse ProposedStartTime and
//!   ProposedEndTime, Provision AccountOnlyRemoteWipe): it decodes them as `<unknown>` and
//!   cannot encode them at all. Below an `<unknown>` element it declares no namespace, so
//!   its children land in whatever default namespace is in scope (the root `<unknown>` gets
//!   a meaningless `FolderHierarchy:`); such elements are resolved on the page the corpus
//!   put them on, by name.
//! - Opaque data prints as escaped raw bytes, except in the eight [`BINARY`] tags, where
//!   content (opaque or inline string alike) prints as base64 and base64 text encodes as
//!   OPAQUE. Elsewhere it encodes a CDATA section as OPAQUE, which is how opaque values in
//!   other tags are given to it.
//! - Every element without text or children prints as `<X/>`: without content, with empty
//!   content, with an empty string, with an empty opaque value. Reading, it encodes `<X/>`
//!   and `<X></X>` without the content bit and `<X><![CDATA[]]></X>` with the content bit
//!   and nothing inside; it never writes an empty inline string or an empty opaque value.
//!   Reading its output, the corpus says which form was meant; what it is given to encode
//!   and the bytes expected back are normalised alike (`Libwbxml::encodable`).
//! - Without `-k` it trims text; with `-k` the XML given to it must be compact. A literal
//!   CR in its input is lost (expat normalises line ends), so CR goes in as `&#13;`; it
//!   prints CR raw.
//! - Its output declares the default namespace again at every page change, never prefixes.
//! - `xml2wbxml` exits 0 even when it fails: the output file is what counts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use easync::wbxml::tags::{self, PAGES};
use easync::wbxml::{ProtocolVersion, Tag, Versions};

use crate::tree::{Content, Node};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const NAMES_TSV: &str = include_str!("../data/libwbxml_names.tsv");

pub const DOCTYPE: &str = "<!DOCTYPE ActiveSync PUBLIC \"-//MICROSOFT//DTD ActiveSync//EN\" \
                       \"http://www.microsoft.com/\">";

/// The tags whose content libwbxml treats as binary (base64 in XML), found by probing every
/// token: as namespace and spec name.
pub const BINARY: [(&str, &str); 8] = [
    ("ResolveRecipients", "Data"),
    ("Search", "ConversationId"),
    ("GAL", "Data"),
    ("AirSyncBase", "Content"),
    ("ItemOperations", "ConversationId"),
    ("ComposeMail", "Mime"),
    ("Email2", "ConversationId"),
    ("Email2", "ConversationIndex"),
];

pub struct Libwbxml {
    xml2wbxml: PathBuf,
    wbxml2xml: PathBuf,
    dir: PathBuf,
    /// Spec name → libwbxml name, for the tags it spells differently.
    renamed: HashMap<Tag, &'static str>,
    binary: Vec<Tag>,
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Libwbxml {
    /// The oracle, with its scratch files under `dir`. Fails the test when the tools are
    /// missing: they are part of the test setup, not optional.
    pub fn new(dir: &Path) -> Libwbxml {
        let (Some(xml2wbxml), Some(wbxml2xml)) =
            (find_program("xml2wbxml"), find_program("wbxml2xml"))
        else {
            panic!(
                "libwbxml's xml2wbxml and wbxml2xml are not on PATH: run tests/run.sh, which \
                 installs them (Debian package libwbxml2-utils)"
            );
        };
        std::fs::create_dir_all(dir).expect("scratch directory");
        let mut renamed = HashMap::new();
        for line in NAMES_TSV.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let [ns, spec, theirs] = cols[..] else {
                panic!("bad line in libwbxml_names.tsv: {line:?}");
            };
            let tag = Tag::by_name(ns, spec)
                .unwrap_or_else(|| panic!("libwbxml_names.tsv names no tag: {ns}:{spec}"));
            assert!(renamed.insert(tag, theirs).is_none(), "{ns}:{spec} twice");
        }
        let binary = BINARY
            .iter()
            .map(|&(ns, name)| Tag::by_name(ns, name).expect("binary tag"))
            .collect();
        Libwbxml {
            xml2wbxml,
            wbxml2xml,
            dir: dir.to_owned(),
            renamed,
            binary,
        }
    }

    pub fn renamed_count(&self) -> usize {
        self.renamed.len()
    }

    /// libwbxml's name for a tag.
    pub fn name(&self, tag: Tag) -> &'static str {
        self.renamed
            .get(&tag)
            .copied()
            .unwrap_or_else(|| tag.name().expect("a known tag"))
    }

    /// libwbxml's namespace URI for a page.
    pub fn xmlns(&self, page: u8) -> &'static str {
        match tags::page(page).expect("a known page") {
            p if p.name == "GAL" => "Gal:",
            p => p.xmlns,
        }
    }

    /// The tag libwbxml means by `name` on `page`.
    pub fn tag_by_name(&self, page: u8, name: &str) -> Option<Tag> {
        let p = tags::page(page)?;
        p.tags
            .iter()
            .map(|d| Tag::new(page, d.token))
            .find(|&t| self.name(t) == name)
    }

    pub fn is_binary(&self, tag: Tag) -> bool {
        self.binary.contains(&tag)
    }

    /// Whether libwbxml's tables lack the tag (the 16.1 additions).
    pub fn lacks(tag: Tag) -> bool {
        tag.page == 25
            || (tag.page == 8 && matches!(tag.token, 0x10 | 0x11))
            || tag == Tag::new(14, 0x3B)
    }

    /// libwbxml's decoder: WBXML → its XML (compact, whitespace kept).
    pub fn decode(&self, wbxml: &[u8], stem: &str) -> Result<Vec<u8>, String> {
        let input = self.dir.join(format!("{stem}.wbxml"));
        let output = self.dir.join(format!("{stem}.libwbxml.xml"));
        std::fs::write(&input, wbxml).expect("write scratch file");
        let _ = std::fs::remove_file(&output);
        let run = Command::new(&self.wbxml2xml)
            .args(["-k", "-m", "0", "-l", "ACTIVESYNC", "-o"])
            .arg(&output)
            .arg(&input)
            .output()
            .expect("run wbxml2xml");
        let stderr = String::from_utf8_lossy(&run.stderr);
        if !run.status.success() || stderr.contains("failed") {
            return Err(format!("wbxml2xml {}: {stderr}", input.display()));
        }
        std::fs::read(&output).map_err(|e| format!("wbxml2xml wrote no output ({e}): {stderr}"))
    }

    /// libwbxml's encoder: its XML → WBXML (EAS header, no string table, whitespace kept).
    pub fn encode(&self, xml: &str, stem: &str) -> Result<Vec<u8>, String> {
        let input = self.dir.join(format!("{stem}.to-libwbxml.xml"));
        let output = self.dir.join(format!("{stem}.libwbxml.wbxml"));
        std::fs::write(&input, xml).expect("write scratch file");
        let _ = std::fs::remove_file(&output);
        let run = Command::new(&self.xml2wbxml)
            .args(["-a", "-n", "-k", "-o"])
            .arg(&output)
            .arg(&input)
            .output()
            .expect("run xml2wbxml");
        let stderr = String::from_utf8_lossy(&run.stderr);
        // It exits 0 on failure too; it says so on stderr and writes no file.
        if !run.status.success() || stderr.contains("failed") {
            return Err(format!("xml2wbxml {}: {stderr}", input.display()));
        }
        std::fs::read(&output).map_err(|e| format!("xml2wbxml wrote no output ({e}): {stderr}"))
    }

    /// The tree as libwbxml can encode it, which is what its bytes are compared with in
    /// check 2: 16.1 subtrees removed (`None` when the root is one); an inline string in a
    /// binary tag becomes the opaque value of its bytes (it reads the base64 it is given
    /// there as OPAQUE, the same octets); an empty inline string and an empty opaque value
    /// become empty content (it has no way to write `STR_I ""` or `OPAQUE 0`: `<X></X>` and
    /// `<X/>` give no content bit, `<X><![CDATA[]]></X>` gives the content bit alone).
    pub fn encodable(&self, n: &Node, pruned: &mut usize) -> Option<Node> {
        if Self::lacks(n.tag) {
            *pruned += n.count();
            return None;
        }
        let content = match &n.content {
            Content::Children(c) => Content::Children(
                c.iter()
                    .filter_map(|child| self.encodable(child, pruned))
                    .collect(),
            ),
            Content::Text(t) if t.is_empty() => Content::Children(Vec::new()),
            Content::Opaque(d) if d.is_empty() => Content::Children(Vec::new()),
            Content::Text(t) if self.is_binary(n.tag) => Content::Opaque(t.as_bytes().to_vec()),
            other => other.clone(),
        };
        Some(Node {
            tag: n.tag,
            content,
        })
    }
}

/// Checks, once, that the list of tags libwbxml lacks is exactly the tags new in 16.1.
pub fn lacks_is_exactly_16_1() {
    for page in PAGES.iter() {
        for def in page.tags {
            let tag = Tag::new(page.number, def.token);
            let new_in_16_1 = def.versions == Versions::since(ProtocolVersion::V16_1);
            assert_eq!(Libwbxml::lacks(tag), new_in_16_1, "{tag}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// libwbxml's XML output, read leniently: raw opaque bytes need not be UTF-8 or even legal
// XML characters, so no XML parser would take it.

/// An element as libwbxml printed it.
#[derive(Debug)]
pub struct LibNode {
    pub name: String,
    /// Its `xmlns` attribute, if it has one.
    pub xmlns: Option<String>,
    pub children: Vec<LibNode>,
    /// Its character data, references resolved, as bytes.
    pub text: Vec<u8>,
}

pub fn parse(xml: &[u8]) -> Result<LibNode, String> {
    let mut p = Parser { s: xml, i: 0 };
    p.prolog()?;
    let root = p.element()?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(p.err("data after the root element"));
    }
    Ok(root)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        let from = self.i.saturating_sub(40);
        let to = (self.i + 40).min(self.s.len());
        format!(
            "libwbxml's XML at byte {}: {what} (near {:?})",
            self.i,
            String::from_utf8_lossy(&self.s[from..to])
        )
    }

    fn rest(&self) -> &[u8] {
        &self.s[self.i..]
    }

    fn skip_ws(&mut self) {
        while self.rest().first().is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn skip_past(&mut self, end: &[u8]) -> Result<(), String> {
        match self.rest().windows(end.len()).position(|w| w == end) {
            Some(at) => {
                self.i += at + end.len();
                Ok(())
            }
            None => Err(self.err("unterminated markup")),
        }
    }

    fn prolog(&mut self) -> Result<(), String> {
        loop {
            self.skip_ws();
            if self.rest().starts_with(b"<?") {
                self.skip_past(b"?>")?;
            } else if self.rest().starts_with(b"<!DOCTYPE") {
                self.skip_past(b">")?;
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.i;
        while self
            .rest()
            .first()
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
        {
            self.i += 1;
        }
        if start == self.i {
            return Err(self.err("expected a name"));
        }
        Ok(String::from_utf8(self.s[start..self.i].to_vec()).expect("ASCII"))
    }

    fn expect(&mut self, what: &[u8]) -> Result<(), String> {
        if self.rest().starts_with(what) {
            self.i += what.len();
            Ok(())
        } else {
            Err(self.err(&format!("expected {:?}", String::from_utf8_lossy(what))))
        }
    }

    fn element(&mut self) -> Result<LibNode, String> {
        self.expect(b"<")?;
        let name = self.name()?;
        let mut node = LibNode {
            name,
            xmlns: None,
            children: Vec::new(),
            text: Vec::new(),
        };
        loop {
            self.skip_ws();
            if self.rest().starts_with(b"/>") {
                self.i += 2;
                return Ok(node);
            }
            if self.rest().starts_with(b">") {
                self.i += 1;
                break;
            }
            let attr = self.name()?;
            self.expect(b"=\"")?;
            let start = self.i;
            self.skip_past(b"\"")?;
            let value = String::from_utf8_lossy(&self.s[start..self.i - 1]).into_owned();
            if attr != "xmlns" {
                return Err(self.err(&format!("unexpected attribute {attr}")));
            }
            node.xmlns = Some(value);
        }
        loop {
            match self.rest().first() {
                None => return Err(self.err("unclosed element")),
                Some(b'<') if self.rest().starts_with(b"</") => {
                    self.i += 2;
                    let end = self.name()?;
                    if end != node.name {
                        return Err(self.err(&format!("</{end}> closes <{}>", node.name)));
                    }
                    self.expect(b">")?;
                    return Ok(node);
                }
                Some(b'<') => node.children.push(self.element()?),
                Some(b'&') => {
                    let start = self.i + 1;
                    self.skip_past(b";")?;
                    let reference = String::from_utf8_lossy(&self.s[start..self.i - 1]);
                    let ch = match &*reference {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "quot" => '"',
                        "apos" => '\'',
                        r => r
                            .strip_prefix("#x")
                            .map(|h| u32::from_str_radix(h, 16))
                            .or_else(|| r.strip_prefix('#').map(str::parse))
                            .and_then(Result::ok)
                            .and_then(char::from_u32)
                            .ok_or_else(|| self.err(&format!("bad reference &{r};")))?,
                    };
                    node.text
                        .extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                }
                Some(&b) => {
                    node.text.push(b);
                    self.i += 1;
                }
            }
        }
    }
}

/// Where an element of libwbxml's output sits, for resolving its namespace as libwbxml
/// means it.
#[derive(Clone, Copy)]
pub struct Scope {
    /// The page of the parent element (the root: none).
    pub parent_page: Option<u8>,
    /// The parent printed as `<unknown>`: then no namespace declaration comes.
    pub parent_unknown: bool,
}

impl Scope {
    pub const ROOT: Scope = Scope {
        parent_page: None,
        parent_unknown: false,
    };
}

/// What a libwbxml element names. `expected` is the tag the corpus has at this place; it is
/// used only where libwbxml's output does not say (an `<unknown>` element, which must be
/// one of the tags it lacks, and the namespace of a child of `<unknown>`).
pub fn resolve(
    lib: &Libwbxml,
    node: &LibNode,
    scope: Scope,
    expected: Tag,
) -> Result<(Tag, bool), String> {
    if node.name == "unknown" {
        if Libwbxml::lacks(expected) {
            return Ok((expected, true));
        }
        return Err(format!(
            "libwbxml printed <unknown> where {expected} is (it knows that tag)"
        ));
    }
    let page = match (&node.xmlns, scope.parent_page) {
        (Some(ns), _) => {
            tags::page_by_namespace(ns)
                .ok_or_else(|| format!("libwbxml printed an unknown namespace {ns:?}"))?
                .number
        }
        // libwbxml declares nothing below <unknown>: take the page the corpus has here.
        (None, _) if scope.parent_unknown => expected.page,
        (None, Some(parent)) => parent,
        (None, None) => return Err("libwbxml's root element has no namespace".into()),
    };
    let tag = lib.tag_by_name(page, &node.name).ok_or_else(|| {
        format!(
            "libwbxml printed <{}> in {}, which has no such tag in its tables",
            node.name,
            lib.xmlns(page)
        )
    })?;
    Ok((tag, false))
}

/// The content of a libwbxml element as bytes: base64-decoded in its binary tags.
pub fn content_bytes(lib: &Libwbxml, tag: Tag, node: &LibNode) -> Result<Vec<u8>, String> {
    if lib.is_binary(tag) {
        B64.decode(&node.text)
            .map_err(|e| format!("libwbxml's base64 in {tag} does not decode: {e}"))
    } else {
        Ok(node.text.clone())
    }
}

/// Check 1's normalisation: libwbxml's decoded tree → our tree. Names are mapped back to the
/// spec's per page; what libwbxml's XML cannot tell apart is taken from `expected` (the
/// corpus): which of the four empty forms a `<X/>` is, whether text is an opaque value or an
/// inline string, and the tag behind `<unknown>`. Counts the `<unknown>` elements in `one_way`.
pub fn normalise(
    lib: &Libwbxml,
    node: &LibNode,
    scope: Scope,
    expected: &Node,
    one_way: &mut usize,
) -> Result<Node, String> {
    let (tag, unknown) =
        resolve(lib, node, scope, expected.tag).map_err(|e| format!("{}: {e}", expected.tag))?;
    if unknown {
        *one_way += 1;
    }
    // Errors from below get this element's tag in front, to make a path.
    let here = |e: String| format!("{}/{e}", expected.tag);
    let content = if !node.children.is_empty() {
        if !node.text.is_empty() {
            return Err(here(format!("libwbxml printed mixed content in {tag}")));
        }
        let expected_children = expected.children();
        if expected_children.len() != node.children.len() {
            return Err(here(format!(
                "libwbxml printed {} children in {tag}, the document has {}",
                node.children.len(),
                expected_children.len()
            )));
        }
        let inner = Scope {
            parent_page: Some(tag.page),
            parent_unknown: unknown,
        };
        let mut children = Vec::new();
        for (lc, ec) in node.children.iter().zip(expected_children) {
            children.push(normalise(lib, lc, inner, ec, one_way).map_err(here)?);
        }
        Content::Children(children)
    } else if node.text.is_empty() {
        // `<X/>`: all four empty forms print alike.
        match &expected.content {
            Content::Children(c) if c.is_empty() => Content::Children(Vec::new()),
            Content::Text(t) if t.is_empty() => Content::Text(String::new()),
            Content::Opaque(d) if d.is_empty() => Content::Opaque(Vec::new()),
            _ => Content::Empty,
        }
    } else {
        let bytes = content_bytes(lib, tag, node).map_err(here)?;
        match &expected.content {
            Content::Opaque(_) => Content::Opaque(bytes),
            _ => Content::Text(
                String::from_utf8(bytes)
                    .map_err(|_| here(format!("libwbxml's text in {tag} is not UTF-8")))?,
            ),
        }
    };
    Ok(Node { tag, content })
}

/// Check 3: our reader's tree against libwbxml's, element by element (namespace, name,
/// content). Returns the number of elements compared.
pub fn compare(
    lib: &Libwbxml,
    ours: &Node,
    theirs: &LibNode,
    scope: Scope,
    path: &str,
) -> Result<usize, String> {
    let path = format!("{path}/{}", ours.tag);
    let (tag, unknown) =
        resolve(lib, theirs, scope, ours.tag).map_err(|e| format!("{path}: {e}"))?;
    if tag != ours.tag {
        return Err(format!(
            "{path}: libwbxml decoded <{}> ({tag}) where our reader has {}",
            theirs.name, ours.tag
        ));
    }
    let mismatch = |what: String| Err(format!("{path}: {what}"));
    match &ours.content {
        Content::Children(c) => {
            if !theirs.text.is_empty() {
                return mismatch(format!(
                    "libwbxml has text {:?}, our reader child elements",
                    String::from_utf8_lossy(&theirs.text)
                ));
            }
            if c.len() != theirs.children.len() {
                return mismatch(format!(
                    "our reader has {} children, libwbxml {}",
                    c.len(),
                    theirs.children.len()
                ));
            }
            let inner = Scope {
                parent_page: Some(tag.page),
                parent_unknown: unknown,
            };
            let mut n = 1;
            for (o, t) in c.iter().zip(&theirs.children) {
                n += compare(lib, o, t, inner, &path)?;
            }
            Ok(n)
        }
        Content::Empty | Content::Text(_) | Content::Opaque(_) => {
            if !theirs.children.is_empty() {
                return mismatch("libwbxml has child elements, our reader none".into());
            }
            let ours_bytes: &[u8] = match &ours.content {
                Content::Text(t) => t.as_bytes(),
                Content::Opaque(d) => d,
                _ => &[],
            };
            let theirs_bytes =
                content_bytes(lib, tag, theirs).map_err(|e| format!("{path}: {e}"))?;
            if ours_bytes != theirs_bytes {
                return mismatch(format!(
                    "content differs: ours {:?}, libwbxml's {:?}",
                    String::from_utf8_lossy(ours_bytes),
                    String::from_utf8_lossy(&theirs_bytes)
                ));
            }
            Ok(1)
        }
    }
}
