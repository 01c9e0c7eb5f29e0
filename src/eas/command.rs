//! The EAS commands and what the transport must know about each: its name on the request
//! line, whether it carries the policy key, and how its body is framed.

use crate::wbxml::{self, ProtocolVersion};

/// Every command easync sends (MS-ASCMD), as named in the `Cmd=` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Provision,
    FolderSync,
    FolderCreate,
    FolderUpdate,
    FolderDelete,
    Sync,
    Ping,
    GetItemEstimate,
    ItemOperations,
    SendMail,
    SmartReply,
    SmartForward,
    MoveItems,
    MeetingResponse,
    Search,
    ResolveRecipients,
    Settings,
    Find,
}

impl Command {
    pub const ALL: [Command; 18] = [
        Command::Provision,
        Command::FolderSync,
        Command::FolderCreate,
        Command::FolderUpdate,
        Command::FolderDelete,
        Command::Sync,
        Command::Ping,
        Command::GetItemEstimate,
        Command::ItemOperations,
        Command::SendMail,
        Command::SmartReply,
        Command::SmartForward,
        Command::MoveItems,
        Command::MeetingResponse,
        Command::Search,
        Command::ResolveRecipients,
        Command::Settings,
        Command::Find,
    ];

    /// The name on the request line (`Cmd=...`) and in MS-ASProtocolCommands.
    pub const fn name(self) -> &'static str {
        match self {
            Command::Provision => "Provision",
            Command::FolderSync => "FolderSync",
            Command::FolderCreate => "FolderCreate",
            Command::FolderUpdate => "FolderUpdate",
            Command::FolderDelete => "FolderDelete",
            Command::Sync => "Sync",
            Command::Ping => "Ping",
            Command::GetItemEstimate => "GetItemEstimate",
            Command::ItemOperations => "ItemOperations",
            Command::SendMail => "SendMail",
            Command::SmartReply => "SmartReply",
            Command::SmartForward => "SmartForward",
            Command::MoveItems => "MoveItems",
            Command::MeetingResponse => "MeetingResponse",
            Command::Search => "Search",
            Command::ResolveRecipients => "ResolveRecipients",
            Command::Settings => "Settings",
            Command::Find => "Find",
        }
    }

    /// The command with this request-line name (exact spelling, as servers compare it).
    pub fn from_name(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The numeric code of the base64-encoded query form (MS-ASHTTP 2.2.1.1.1.1.2).
    pub const fn code(self) -> u8 {
        match self {
            Command::Sync => 0,
            Command::SendMail => 1,
            Command::SmartForward => 2,
            Command::SmartReply => 3,
            Command::FolderSync => 9,
            Command::FolderCreate => 10,
            Command::FolderDelete => 11,
            Command::FolderUpdate => 12,
            Command::MoveItems => 13,
            Command::GetItemEstimate => 14,
            Command::MeetingResponse => 15,
            Command::Search => 16,
            Command::Settings => 17,
            Command::Ping => 18,
            Command::ItemOperations => 19,
            Command::Provision => 20,
            Command::ResolveRecipients => 21,
            Command::Find => 23,
        }
    }

    /// The command with this base64-query code.
    pub fn from_code(code: u8) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Whether the request carries X-MS-PolicyKey. Ping does not (MS-ASHTTP: the key is
    /// not checked on Ping); Provision carries its key in the body instead.
    pub const fn sends_policy_key(self) -> bool {
        !matches!(self, Command::Ping | Command::Provision)
    }

    /// The first protocol version that has the command.
    pub const fn since(self) -> ProtocolVersion {
        match self {
            Command::Find => ProtocolVersion::V16_1,
            _ => ProtocolVersion::V12_1,
        }
    }
}

impl core::fmt::Display for Command {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A request body as the transport sends it. Bodies that carry a message are framed so that
/// the message streams from a reader: WBXML `head`, then `len` bytes of MIME, then `tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body (SmartReply etc. never; kept for GET-like uses such as attachment fetches).
    Empty,
    /// A complete WBXML document.
    Wbxml(Vec<u8>),
    /// WBXML around a streamed MIME message: `head`, then exactly `len` bytes from the
    /// caller's reader, then `tail`.
    WbxmlAroundMime {
        head: Vec<u8>,
        len: u64,
        tail: Vec<u8>,
    },
    /// A bare MIME message of `len` bytes (12.1 SendMail/SmartReply/SmartForward, sent as
    /// `message/rfc822`).
    Mime { len: u64 },
}

impl Body {
    /// The Content-Type for this body.
    pub const fn content_type(&self) -> Option<&'static str> {
        match self {
            Body::Empty => None,
            Body::Wbxml(_) | Body::WbxmlAroundMime { .. } => Some("application/vnd.ms-sync.wbxml"),
            Body::Mime { .. } => Some("message/rfc822"),
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Wbxml(b) => b.len() as u64,
            Body::WbxmlAroundMime { head, len, tail } => {
                head.len() as u64 + len + tail.len() as u64
            }
            Body::Mime { len } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One request: the command, extra request-line parameters (12.1 SmartReply's ItemId and
/// CollectionId, SaveInSent ...), and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub command: Command,
    /// Extra query parameters beyond Cmd, User, DeviceId and DeviceType.
    pub params: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Request {
    pub fn wbxml(command: Command, body: Vec<u8>) -> Request {
        Request {
            command,
            params: Vec::new(),
            body: Body::Wbxml(body),
        }
    }
}

/// Writes a complete WBXML request document for `version` with `f` and returns its bytes.
/// Writing into memory cannot fail at the I/O level; a codec misuse (unbalanced elements,
/// a tag not in `version`) is reported.
pub fn write_wbxml(
    version: ProtocolVersion,
    f: impl FnOnce(&mut wbxml::Writer<Vec<u8>>) -> Result<(), wbxml::Error<core::convert::Infallible>>,
) -> super::Result<Vec<u8>> {
    let mut w = wbxml::Writer::new(Vec::new()).for_version(version);
    w.header().map_err(write_error)?;
    f(&mut w).map_err(write_error)?;
    w.finish().map_err(write_error)
}

fn write_error(e: wbxml::Error<core::convert::Infallible>) -> super::Error {
    super::Error::Write(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for c in Command::ALL {
            assert_eq!(Command::from_name(c.name()), Some(c));
            assert_eq!(Command::from_code(c.code()), Some(c));
        }
        assert!(!Command::Ping.sends_policy_key());
        assert!(Command::Sync.sends_policy_key());
    }
}
