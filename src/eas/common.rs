//! Response shapes that several commands share, read the same way.

use embedded_io::Read;

use super::error::Result;
use super::parse::{Child, Parser};
use crate::wbxml::Tag;

/// Reads a response made of an optional Status for the whole request and a list of `entry`
/// elements, one per item of the request (MoveItems Response, MeetingResponse Result).
/// `read_entry` reads an entry's children once it has started; the list is bounded by
/// [`Limits::max_entries`](super::Limits), `what` naming it in the error. Other children are
/// skipped; an empty body is an error.
pub(crate) fn read_status_and_entries<R: Read, S, T>(
    p: &mut Parser<R>,
    root: Tag,
    status: Tag,
    read_status: fn(&mut Parser<R>, Child) -> Result<S>,
    entry: Tag,
    what: &'static str,
    mut read_entry: impl FnMut(&mut Parser<R>) -> Result<T>,
) -> Result<(Option<S>, Vec<T>)> {
    if p.root(root)?.is_none() {
        let command = root.name().unwrap_or("command");
        return Err(p.error(format!("the {command} response is empty")));
    }
    let mut top_status = None;
    let mut entries = Vec::new();
    while let Some(child) = p.next_child()? {
        if child.tag == status {
            top_status = Some(read_status(p, child)?);
        } else if child.tag == entry {
            p.check_entries(entries.len(), what, child.offset)?;
            entries.push(read_entry(p)?);
        } else {
            p.skip(child)?;
        }
    }
    p.finish()?;
    Ok((top_status, entries))
}

/// The tags of a page of search results, which Search (`Store`) and Find (`Response`) shape
/// alike on their own code pages.
pub(crate) struct ResultPageTags {
    pub status: Tag,
    pub result: Tag,
    pub range: Tag,
    pub total: Tag,
}

/// A page of search results: its Status (if sent), the results, the Range returned ("0-9")
/// and how many results there are in all.
pub(crate) struct ResultPage<S, T> {
    pub status: Option<S>,
    pub results: Vec<T>,
    pub range: Option<String>,
    pub total: Option<u64>,
}

/// Reads the children of a page of search results once its element has started. The results
/// are bounded by [`Limits::max_entries`](super::Limits), `what` naming them in the error;
/// `read_result` reads a Result (`None`: an empty one, not listed), `read_other` gets every
/// other child (to read or skip).
pub(crate) fn read_result_page<R: Read, S, T>(
    p: &mut Parser<R>,
    tags: &ResultPageTags,
    read_status: fn(&mut Parser<R>, Child) -> Result<S>,
    what: &'static str,
    mut read_result: impl FnMut(&mut Parser<R>, Child) -> Result<Option<T>>,
    mut read_other: impl FnMut(&mut Parser<R>, Child) -> Result<()>,
) -> Result<ResultPage<S, T>> {
    let mut page = ResultPage {
        status: None,
        results: Vec::new(),
        range: None,
        total: None,
    };
    while let Some(child) = p.next_child()? {
        if child.tag == tags.status {
            page.status = Some(read_status(p, child)?);
        } else if child.tag == tags.result {
            p.check_entries(page.results.len(), what, child.offset)?;
            if let Some(result) = read_result(p, child)? {
                page.results.push(result);
            }
        } else if child.tag == tags.range {
            page.range = Some(p.text(child)?);
        } else if child.tag == tags.total {
            page.total = Some(p.number(child)?);
        } else {
            read_other(p, child)?;
        }
    }
    Ok(page)
}
