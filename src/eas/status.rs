//! The common status codes any command may answer with (MS-ASCMD 2.2.2), and what the
//! client should do about each. Command-specific codes (Sync 3, Ping 5 ...) live with their
//! command; values 101 and above are common to all.

/// What the caller should do about a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing went wrong.
    Proceed,
    /// Run Provision again, then repeat the request (142, 143, 144).
    Reprovision,
    /// Wait and repeat the same request (transient server trouble).
    RetryLater,
    /// Start the folder or collection over (its sync state is gone).
    ResyncState,
    /// The request itself was wrong: a bug or unsupported input; do not repeat it unchanged.
    FixRequest,
    /// Send DeviceInformation (Settings, or inside Provision on 14.1+) and repeat (165).
    SendDeviceInformation,
    /// The server has asked for a remote wipe (140): run Provision to receive the directive.
    RemoteWipe,
    /// The account or device is blocked or unprovisionable: stop and tell the user.
    Blocked,
    /// The item or folder the request named is gone: drop it locally.
    ItemGone,
    /// The folder hierarchy changed: run FolderSync, then repeat (Sync 12, Ping 7).
    SyncFolders,
}

macro_rules! common_statuses {
    ($( $code:literal => $name:ident, $action:ident, $text:literal; )*) => {
        /// A common status code (MS-ASCMD 2.2.2).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum CommonStatus {
            $( $name, )*
        }

        impl CommonStatus {
            /// The status for a code of 101 and above, `None` for one the spec does not list.
            pub const fn from_code(code: u32) -> Option<CommonStatus> {
                match code {
                    $( $code => Some(CommonStatus::$name), )*
                    _ => None,
                }
            }

            pub const fn code(self) -> u32 {
                match self {
                    $( CommonStatus::$name => $code, )*
                }
            }

            /// What to do about it.
            pub const fn action(self) -> Action {
                match self {
                    $( CommonStatus::$name => Action::$action, )*
                }
            }

            /// A sentence for logs and D-Bus.
            pub const fn description(self) -> &'static str {
                match self {
                    $( CommonStatus::$name => $text, )*
                }
            }
        }
    };
}

common_statuses! {
    101 => InvalidContent, FixRequest, "the request body was not valid for this command";
    102 => InvalidWbxml, FixRequest, "the request was not valid WBXML";
    103 => InvalidXml, FixRequest, "the request XML did not match the schema";
    104 => InvalidDateTime, FixRequest, "a date/time in the request was invalid";
    105 => InvalidCombinationOfIds, FixRequest, "the request combined ids that do not go together";
    106 => InvalidIds, FixRequest, "an id in the request was invalid";
    107 => InvalidMime, FixRequest, "the message's MIME was invalid";
    108 => DeviceIdMissingOrInvalid, FixRequest, "the DeviceId is missing or invalid";
    109 => DeviceTypeMissingOrInvalid, FixRequest, "the DeviceType is missing or invalid";
    110 => ServerError, RetryLater, "the server failed; retry later";
    111 => ServerErrorRetryLater, RetryLater, "the server failed temporarily; retry later";
    112 => ActiveDirectoryAccessDenied, Blocked, "the server's directory denied access to the mailbox";
    113 => MailboxQuotaExceeded, Blocked, "the mailbox is over its quota";
    114 => MailboxServerOffline, RetryLater, "the mailbox server is offline";
    115 => SendQuotaExceeded, Blocked, "the send quota is exceeded";
    116 => MessageRecipientUnresolved, FixRequest, "a recipient could not be resolved";
    117 => MessageReplyNotAllowed, FixRequest, "the server does not allow replies to this message";
    118 => MessagePreviouslySent, Proceed, "the message was sent before (duplicate ClientId)";
    119 => MessageHasNoRecipient, FixRequest, "the message has no recipient";
    120 => MailSubmissionFailed, RetryLater, "the server could not submit the message";
    121 => MessageReplyFailed, RetryLater, "the reply could not be sent";
    122 => AttachmentIsTooLarge, FixRequest, "an attachment is too large";
    123 => UserHasNoMailbox, Blocked, "the user has no mailbox";
    124 => UserCannotBeAnonymous, Blocked, "the user cannot be anonymous";
    125 => UserPrincipalCouldNotBeFound, Blocked, "the user was not found in the directory";
    126 => UserDisabledForSync, Blocked, "the user is not allowed to use ActiveSync";
    127 => UserOnNewMailboxCannotSync, Blocked, "the mailbox is on a newer server version that cannot sync";
    128 => UserOnLegacyMailboxCannotSync, Blocked, "the mailbox is on a legacy server that cannot sync";
    129 => DeviceIsBlockedForThisUser, Blocked, "this device is blocked for this user";
    130 => AccessDenied, Blocked, "access denied";
    131 => AccountDisabled, Blocked, "the account is disabled";
    132 => SyncStateNotFound, ResyncState, "the server lost this device's sync state";
    133 => SyncStateLocked, RetryLater, "the sync state is locked by another request";
    134 => SyncStateCorrupt, ResyncState, "the sync state is corrupt";
    135 => SyncStateAlreadyExists, ResyncState, "the sync state already exists";
    136 => SyncStateVersionInvalid, ResyncState, "the sync state version is invalid";
    137 => CommandNotSupported, FixRequest, "the server does not support this command";
    138 => VersionNotSupported, FixRequest, "the server does not support this protocol version for the command";
    139 => DeviceNotFullyProvisionable, Blocked, "the device cannot apply the whole security policy and the server requires it";
    140 => RemoteWipeRequested, RemoteWipe, "the administrator requested a remote wipe";
    141 => LegacyDeviceOnStrictPolicy, Blocked, "the device is not provisionable: the server's policy requires what this device or protocol version cannot do (or a policy key it did not send)";
    142 => DeviceNotProvisioned, Reprovision, "the device is not provisioned";
    143 => PolicyRefresh, Reprovision, "the security policy changed";
    144 => InvalidPolicyKey, Reprovision, "the policy key is not valid";
    145 => ExternallyManagedDevicesNotAllowed, Blocked, "externally managed devices are not allowed";
    146 => NoRecurrenceInCalendar, FixRequest, "the meeting has no recurrence";
    147 => UnexpectedItemClass, FixRequest, "the item class is not allowed here";
    148 => RemoteServerHasNoSsl, FixRequest, "the remote server has no TLS";
    149 => InvalidStoredRequest, FixRequest, "the stored request is invalid";
    150 => ItemNotFound, ItemGone, "the item was not found";
    151 => TooManyFolders, FixRequest, "the mailbox has too many folders";
    152 => NoFoldersFound, FixRequest, "no folders were found";
    153 => ItemsLostAfterMove, ResyncState, "items were lost after a move";
    154 => FailureInMoveOperation, RetryLater, "the move failed";
    155 => MoveCommandDisallowedForNonPersistentMoveAction, FixRequest, "this move is not allowed";
    156 => MoveCommandInvalidDestinationFolder, FixRequest, "the move's destination folder is invalid";
    160 => AvailabilityTooManyRecipients, FixRequest, "too many recipients for availability";
    161 => AvailabilityDlLimitReached, FixRequest, "distribution list too large for availability";
    162 => AvailabilityTransientFailure, RetryLater, "availability failed temporarily";
    163 => AvailabilityFailure, FixRequest, "availability failed";
    164 => BodyPartPreferenceTypeNotSupported, FixRequest, "the body part preference is not supported";
    165 => DeviceInformationRequired, SendDeviceInformation, "the server requires DeviceInformation first";
    166 => InvalidAccountId, FixRequest, "the AccountId is invalid";
    167 => AccountSendDisabled, Blocked, "sending is disabled for this account";
    168 => IrmFeatureDisabled, FixRequest, "rights management is disabled";
    169 => IrmTransientError, RetryLater, "rights management failed temporarily";
    170 => IrmPermanentError, FixRequest, "rights management failed";
    171 => IrmInvalidTemplateId, FixRequest, "the rights management template is invalid";
    172 => IrmOperationNotPermitted, FixRequest, "rights management does not permit this";
    173 => NoPicture, Proceed, "the contact has no picture";
    174 => PictureTooLarge, Proceed, "the picture is too large";
    175 => PictureLimitReached, Proceed, "the picture limit was reached";
    176 => BodyPartConversationTooLarge, FixRequest, "the conversation is too large";
    177 => MaximumDevicesReached, Blocked, "the user has too many devices partnered: remove one on the server";
    178 => InvalidMimeBodyCombination, FixRequest, "the request combines a MIME message with body elements that do not go with it";
    179 => InvalidSmartForwardParameters, FixRequest, "the SmartForward parameters are invalid";
}

impl core::fmt::Display for CommonStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "status {}: {}", self.code(), self.description())
    }
}

/// Declares a command's status enum: the spec's codes for the command (each with what to do
/// and a sentence for logs), `Common` for the common codes (101 and above), `Unknown` for
/// anything else; with `from_code`, `code`, `action`, `description`, `common`, `read` and
/// `Display`. A variant's extra doc comments go before its line. The optional trailing
/// `unknown => Action` says what to do about an unknown code (default: `FixRequest`, as
/// repeating a request the server refused unchanged would not help).
///
/// ```ignore
/// command_status! {
///     /// Ping status (MS-ASCMD 2.2.3.177.11).
///     pub enum Status {
///         1 => Expired, Proceed, "the interval ran out with no changes";
///     }
///     unknown => RetryLater
/// }
/// ```
macro_rules! command_status {
    (
        $(#[$meta:meta])* $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $code:literal => $variant:ident, $action:ident, $text:literal; )*
        }
    ) => {
        $crate::eas::status::command_status! {
            $(#[$meta])* $vis enum $name {
                $( $(#[$vmeta])* $code => $variant, $action, $text; )*
            }
            unknown => FixRequest
        }
    };
    (
        $(#[$meta:meta])* $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $code:literal => $variant:ident, $action:ident, $text:literal; )*
        }
        unknown => $unknown_action:ident
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(
                #[doc = concat!($code, ": ", $text)]
                $(#[$vmeta])*
                $variant,
            )*
            /// A common status (101 and above, MS-ASCMD 2.2.2).
            Common($crate::eas::status::CommonStatus),
            /// A code the spec does not define for this element.
            Unknown(u32),
        }

        impl $name {
            pub const fn from_code(code: u32) -> $name {
                match code {
                    $( $code => $name::$variant, )*
                    _ => match $crate::eas::status::CommonStatus::from_code(code) {
                        Some(common) => $name::Common(common),
                        None => $name::Unknown(code),
                    },
                }
            }

            pub const fn code(self) -> u32 {
                match self {
                    $( $name::$variant => $code, )*
                    $name::Common(common) => common.code(),
                    $name::Unknown(code) => code,
                }
            }

            /// What the caller should do about it.
            pub const fn action(self) -> $crate::eas::status::Action {
                match self {
                    $( $name::$variant => $crate::eas::status::Action::$action, )*
                    $name::Common(common) => common.action(),
                    $name::Unknown(_) => $crate::eas::status::Action::$unknown_action,
                }
            }

            /// A sentence for logs and D-Bus.
            pub const fn description(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                    $name::Common(common) => common.description(),
                    $name::Unknown(_) => "a status code the protocol does not define",
                }
            }

            /// The common status, when it is one.
            pub const fn common(self) -> Option<$crate::eas::status::CommonStatus> {
                match self {
                    $name::Common(common) => Some(common),
                    _ => None,
                }
            }

            /// Reads a status element's number.
            pub fn read<R: embedded_io::Read>(
                p: &mut $crate::eas::parse::Parser<R>,
                child: $crate::eas::parse::Child,
            ) -> $crate::eas::error::Result<$name> {
                Ok($name::from_code(p.number(child)?))
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "status {}: {}", self.code(), self.description())
            }
        }
    };
}
pub(crate) use command_status;

/// Implemented by every command's response: the common status (101 and above) the server
/// answered with at the top level, if any, so the transport can react to 142–144 (provision
/// again) and 165 (send DeviceInformation) the same way for every command.
pub trait HasStatus {
    fn common_status(&self) -> Option<CommonStatus>;
}

#[cfg(test)]
// `read` is exercised only with the `xml` feature (its fixtures are written as XML).
#[cfg_attr(not(feature = "xml"), allow(dead_code))]
mod tests {
    use super::*;

    command_status! {
        /// A test enum with the default action for unknown codes.
        enum Plain {
            1 => Ok, Proceed, "fine";
            3 => Busy, RetryLater, "busy";
        }
    }

    command_status! {
        /// A test enum that retries on unknown codes.
        enum Retrying {
            2 => Gone, ItemGone, "gone";
        }
        unknown => RetryLater
    }

    #[test]
    fn command_status_macro_maps_codes_actions_and_text() {
        assert_eq!(Plain::from_code(1), Plain::Ok);
        assert_eq!(Plain::from_code(3).code(), 3);
        assert_eq!(Plain::Busy.action(), Action::RetryLater);
        assert_eq!(Plain::from_code(2), Plain::Unknown(2));
        assert_eq!(Plain::Unknown(2).action(), Action::FixRequest);
        assert_eq!(Retrying::Unknown(9).action(), Action::RetryLater);
        assert_eq!(Retrying::from_code(2).action(), Action::ItemGone);
        assert_eq!(Retrying::Gone.common(), None);
        let common = Plain::from_code(142);
        assert_eq!(common, Plain::Common(CommonStatus::DeviceNotProvisioned));
        assert_eq!(common.common(), Some(CommonStatus::DeviceNotProvisioned));
        assert_eq!(common.action(), Action::Reprovision);
        assert_eq!(common.code(), 142);
        assert_eq!(Plain::Ok.common(), None);
        assert_eq!(Plain::Busy.to_string(), "status 3: busy");
        assert_eq!(
            Plain::Unknown(7).description(),
            "a status code the protocol does not define"
        );
    }

    #[cfg(feature = "xml")]
    #[test]
    fn command_status_macro_reads_a_status_element() {
        use crate::eas::testutil::{parser, wbxml_from_xml};
        use crate::wbxml::{Tag, tags::cp};
        let bytes = wbxml_from_xml("<Ping xmlns=\"Ping:\">\n  <Status>3</Status>\n</Ping>");
        let mut p = parser(&bytes);
        p.root(Tag::named(cp::PING, "Ping")).unwrap().unwrap();
        let child = p.next_child().unwrap().unwrap();
        assert_eq!(Plain::read(&mut p, child).unwrap(), Plain::Busy);
        assert!(p.next_child().unwrap().is_none());
        p.finish().unwrap();
        let bytes = wbxml_from_xml("<Ping xmlns=\"Ping:\">\n  <Status>7</Status>\n</Ping>");
        let mut p = parser(&bytes);
        p.root(Tag::named(cp::PING, "Ping")).unwrap().unwrap();
        let child = p.next_child().unwrap().unwrap();
        assert_eq!(Retrying::read(&mut p, child).unwrap(), Retrying::Unknown(7));
    }

    #[test]
    fn codes_round_trip_and_map_to_actions() {
        for code in 101..=179 {
            if let Some(s) = CommonStatus::from_code(code) {
                assert_eq!(s.code(), code);
            }
        }
        assert_eq!(
            CommonStatus::from_code(142).unwrap().action(),
            Action::Reprovision
        );
        assert_eq!(
            CommonStatus::from_code(144).unwrap().action(),
            Action::Reprovision
        );
        assert_eq!(
            CommonStatus::from_code(165).unwrap().action(),
            Action::SendDeviceInformation
        );
        assert_eq!(CommonStatus::from_code(157), None);
        assert_eq!(
            CommonStatus::from_code(178),
            Some(CommonStatus::InvalidMimeBodyCombination)
        );
        assert_eq!(
            CommonStatus::from_code(179),
            Some(CommonStatus::InvalidSmartForwardParameters)
        );
        assert_eq!(CommonStatus::from_code(1), None);
    }
}
