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
