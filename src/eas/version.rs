//! Protocol version negotiation (MS-ASHTTP OPTIONS): the server lists its versions and
//! commands in two headers; the client takes the highest version both sides speak.

use crate::wbxml::ProtocolVersion;

/// The versions easync speaks, best first. 16.1 is what Exchange Online requires; 14.1, 14.0
/// and 12.1 are for on-premises servers. 16.0 is accepted when a server offers nothing newer.
pub const SUPPORTED: [ProtocolVersion; 5] = [
    ProtocolVersion::V16_1,
    ProtocolVersion::V16_0,
    ProtocolVersion::V14_1,
    ProtocolVersion::V14_0,
    ProtocolVersion::V12_1,
];

/// What an OPTIONS response told us about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Every version the server listed that easync knows (any order the server used).
    pub versions: Vec<ProtocolVersion>,
    /// The server's command names (MS-ASProtocolCommands), as sent.
    pub commands: Vec<String>,
}

/// Why negotiation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error(
        "the server sent no MS-ASProtocolVersions header: check the URL points at the \
         Microsoft-Server-ActiveSync endpoint"
    )]
    NoVersions,
    #[error(
        "the server speaks only {offered}, none of which easync supports (16.1, 16.0, 14.1, \
         14.0, 12.1): ask the administrator to enable a newer ActiveSync version"
    )]
    NoCommonVersion { offered: String },
}

impl ServerInfo {
    /// Parses the two OPTIONS headers (either may be missing; values are comma-separated).
    /// Unknown version strings are skipped.
    pub fn from_headers(versions: Option<&str>, commands: Option<&str>) -> ServerInfo {
        let split = |s: Option<&str>| -> Vec<String> {
            s.unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect()
        };
        ServerInfo {
            versions: split(versions)
                .iter()
                .filter_map(|v| ProtocolVersion::parse(v))
                .collect(),
            commands: split(commands),
        }
    }

    /// Whether the server announced `command` (case-insensitive, as servers vary).
    pub fn supports_command(&self, command: &str) -> bool {
        self.commands
            .iter()
            .any(|c| c.eq_ignore_ascii_case(command))
    }

    /// The highest version both sides speak, optionally no higher than `cap` (a
    /// configuration may pin an older version for a misbehaving server).
    pub fn negotiate(
        &self,
        cap: Option<ProtocolVersion>,
    ) -> Result<ProtocolVersion, NegotiationError> {
        if self.versions.is_empty() {
            return Err(NegotiationError::NoVersions);
        }
        SUPPORTED
            .iter()
            .copied()
            .filter(|v| cap.is_none_or(|c| *v <= c))
            .find(|v| self.versions.contains(v))
            .ok_or_else(|| NegotiationError::NoCommonVersion {
                offered: self
                    .versions
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_highest_common_version() {
        let info = ServerInfo::from_headers(
            Some("2.0,2.1,2.5,12.0,12.1,14.0,14.1,16.0,16.1"),
            Some("Sync,FolderSync,Ping"),
        );
        assert_eq!(info.negotiate(None), Ok(ProtocolVersion::V16_1));
        assert_eq!(
            info.negotiate(Some(ProtocolVersion::V14_0)),
            Ok(ProtocolVersion::V14_0)
        );
        assert!(info.supports_command("ping"));
        assert!(!info.supports_command("Find"));
    }

    #[test]
    fn sogo_style_list_gives_14_1() {
        let info = ServerInfo::from_headers(Some("2.5, 12.0, 12.1, 14.0, 14.1"), None);
        assert_eq!(info.negotiate(None), Ok(ProtocolVersion::V14_1));
    }

    #[test]
    fn no_common_version_names_what_was_offered() {
        let info = ServerInfo::from_headers(Some("2.5,12.0"), None);
        let err = info.negotiate(None).unwrap_err();
        assert!(err.to_string().contains("2.5, 12.0"), "{err}");
        assert_eq!(
            ServerInfo::from_headers(None, None).negotiate(None),
            Err(NegotiationError::NoVersions)
        );
    }
}
