//! The security policy document (EASProvisionDoc, MS-ASPROV 2.2.2.28) as a typed value.
//!
//! Every element of the Provision code page that belongs to EASProvisionDoc is a field of
//! [`Policy`], each `Option`: an element that is absent, or present but empty, is unset (the
//! spec's "no limit"). Values the spec enumerates are small enums keeping unknown codes as
//! `Unknown(u32)`; a value that is not valid at all ("abc" for a number) is an error naming
//! the element, never a panic.
//!
//! The same type serves three users: the Provision reader ([`Policy::read`]), the lab server
//! that sends policies ([`Policy::write`]), and the device hooks that enforce them, which see
//! the policy as (element name, value) pairs ([`Policy::elements`], [`Policy::set_by_name`]).

use embedded_io::{Read, Write};

use super::error::{Error, Result};
use super::parse::{Child, Parser};
use crate::wbxml::tags::cp;
use crate::wbxml::{self, Tag};

const EAS_PROVISION_DOC: Tag = Tag::named(cp::PROVISION, "EASProvisionDoc");
const UNAPPROVED_IN_ROM_APPLICATION_LIST: Tag =
    Tag::named(cp::PROVISION, "UnapprovedInROMApplicationList");
const APPLICATION_NAME: Tag = Tag::named(cp::PROVISION, "ApplicationName");
const APPROVED_APPLICATION_LIST: Tag = Tag::named(cp::PROVISION, "ApprovedApplicationList");
const HASH: Tag = Tag::named(cp::PROVISION, "Hash");

/// Separates the entries of a list element in [`Policy::elements`] and
/// [`Policy::set_by_name`] (application names may contain commas, never line breaks).
pub const LIST_SEPARATOR: char = '\n';

/// Longest value quoted back in an error message.
const MAX_QUOTED: usize = 64;

/// Why a policy value could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy element {element} has the value {value:?}, but it must be {expected}")]
    InvalidValue {
        element: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "{0:?} is not an EASProvisionDoc element (names are spelt as in MS-ASPROV, e.g. AllowCamera)"
    )]
    UnknownElement(String),
}

/// A value type of a policy element: how it is parsed from and written to the wire.
pub trait PolicyValue: Sized {
    /// What a valid value looks like, for error messages.
    const EXPECTED: &'static str;
    fn parse(text: &str) -> Option<Self>;
    fn wire(&self) -> String;
}

impl PolicyValue for bool {
    const EXPECTED: &'static str = "0 or 1";
    fn parse(text: &str) -> Option<bool> {
        match text {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        }
    }
    fn wire(&self) -> String {
        String::from(if *self { "1" } else { "0" })
    }
}

impl PolicyValue for u32 {
    const EXPECTED: &'static str = "a whole number from 0 to 4294967295";
    fn parse(text: &str) -> Option<u32> {
        text.parse().ok()
    }
    fn wire(&self) -> String {
        self.to_string()
    }
}

/// Defines a small enum of numeric codes with `Unknown(u32)` for codes the spec does not list,
/// `from_code`/`code`, and its [`PolicyValue`] form.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $code:literal, )* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code the spec does not define (kept, so it can be reported and passed on).
            Unknown(u32),
        }

        impl $name {
            pub const fn from_code(code: u32) -> $name {
                match code {
                    $( $code => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }

            pub const fn code(self) -> u32 {
                match self {
                    $( $name::$variant => $code, )*
                    $name::Unknown(other) => other,
                }
            }
        }

        impl PolicyValue for $name {
            const EXPECTED: &'static str = "a whole number";
            fn parse(text: &str) -> Option<$name> {
                text.parse().ok().map($name::from_code)
            }
            fn wire(&self) -> String {
                self.code().to_string()
            }
        }
    };
}

code_enum! {
    /// AllowBluetooth (MS-ASPROV 2.2.2.2).
    Bluetooth {
        Disabled = 0,
        /// Disabled, except for configuring hands-free profiles.
        HandsFreeOnly = 1,
        Allowed = 2,
    }
}

code_enum! {
    /// MaxCalendarAgeFilter and MaxEmailAgeFilter: how far back items may be synchronised
    /// (the spec allows 0 and 4–7 for calendar, 0–5 for email; the codes are those of
    /// AirSync FilterType).
    AgeFilter {
        All = 0,
        OneDay = 1,
        ThreeDays = 2,
        OneWeek = 3,
        TwoWeeks = 4,
        OneMonth = 5,
        ThreeMonths = 6,
        SixMonths = 7,
    }
}

code_enum! {
    /// RequireSignedSMIMEAlgorithm (MS-ASPROV 2.2.2.50).
    SigningAlgorithm {
        Sha1 = 0,
        Md5 = 1,
    }
}

code_enum! {
    /// RequireEncryptionSMIMEAlgorithm (MS-ASPROV 2.2.2.48).
    EncryptionAlgorithm {
        TripleDes = 0,
        Des = 1,
        Rc2_128 = 2,
        Rc2_64 = 3,
        Rc2_40 = 4,
    }
}

code_enum! {
    /// AllowSMIMEEncryptionAlgorithmNegotiation (MS-ASPROV 2.2.2.13).
    AlgorithmNegotiation {
        DoNotNegotiate = 0,
        StrongAlgorithm = 1,
        AnyAlgorithm = 2,
    }
}

/// MaxEmailBodyTruncationSize and MaxEmailHTMLBodyTruncationSize (MS-ASPROV 2.2.2.34/35).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Truncation {
    /// -1: no truncation.
    None,
    /// 0: only the header is kept.
    HeaderOnly,
    /// Truncate the body to this many bytes.
    Bytes(u32),
}

impl PolicyValue for Truncation {
    const EXPECTED: &'static str = "-1, 0 or a size in bytes";
    fn parse(text: &str) -> Option<Truncation> {
        match text.parse::<i64>().ok()? {
            -1 => Some(Truncation::None),
            0 => Some(Truncation::HeaderOnly),
            n => u32::try_from(n).ok().map(Truncation::Bytes),
        }
    }
    fn wire(&self) -> String {
        match self {
            Truncation::None => String::from("-1"),
            Truncation::HeaderOnly => String::from("0"),
            Truncation::Bytes(n) => n.to_string(),
        }
    }
}

/// Parses `text` into `slot`; empty (or whitespace) text unsets it.
fn set_value<T: PolicyValue>(
    slot: &mut Option<T>,
    element: &'static str,
    text: &str,
) -> core::result::Result<(), PolicyError> {
    let text = text.trim();
    if text.is_empty() {
        *slot = None;
        return Ok(());
    }
    match T::parse(text) {
        Some(v) => {
            *slot = Some(v);
            Ok(())
        }
        None => Err(PolicyError::InvalidValue {
            element,
            value: text.chars().take(MAX_QUOTED).collect(),
            expected: T::EXPECTED,
        }),
    }
}

macro_rules! policy {
    ($( $(#[$meta:meta])* $field:ident : $ty:ty = $name:literal, )*) => {
        /// The EASProvisionDoc: every policy setting the server may send, each `None` when
        /// the server leaves it unset.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Policy {
            $(
                $(#[$meta])*
                #[doc = concat!("\n\nElement `", $name, "`.")]
                pub $field: Option<$ty>,
            )*
            /// UnapprovedInROMApplicationList: ApplicationName of each built-in application
            /// that must not run.
            pub unapproved_in_rom_applications: Option<Vec<String>>,
            /// ApprovedApplicationList: the Hash of each application that may run.
            pub approved_applications: Option<Vec<String>>,
        }

        impl Policy {
            /// Every element name [`Policy::set_by_name`] accepts, in code page order.
            pub const ELEMENT_NAMES: &'static [&'static str] = &[
                $( $name, )*
                "UnapprovedInROMApplicationList",
                "ApprovedApplicationList",
            ];

            /// Sets a single-valued element; `None` when `name` is not one.
            fn set_scalar(
                &mut self,
                name: &str,
                text: &str,
            ) -> Option<core::result::Result<(), PolicyError>> {
                match name {
                    $( $name => Some(set_value(&mut self.$field, $name, text)), )*
                    _ => None,
                }
            }

            fn scalar_elements(&self, out: &mut Vec<(&'static str, String)>) {
                $(
                    if let Some(v) = &self.$field {
                        out.push(($name, v.wire()));
                    }
                )*
            }

            fn write_scalars<W: Write>(
                &self,
                w: &mut wbxml::Writer<W>,
            ) -> core::result::Result<(), wbxml::Error<W::Error>> {
                $(
                    if let Some(v) = &self.$field {
                        w.text_element(const { Tag::named(cp::PROVISION, $name) }, &v.wire())?;
                    }
                )*
                Ok(())
            }
        }
    };
}

policy! {
    /// A device password is required.
    device_password_enabled: bool = "DevicePasswordEnabled",
    /// The password must contain letters and digits.
    alphanumeric_device_password_required: bool = "AlphanumericDevicePasswordRequired",
    /// The storage card must be encrypted.
    require_storage_card_encryption: bool = "RequireStorageCardEncryption",
    /// The server may keep a recovery password for the device.
    password_recovery_enabled: bool = "PasswordRecoveryEnabled",
    /// Attachments may be downloaded.
    attachments_enabled: bool = "AttachmentsEnabled",
    /// Shortest device password.
    min_device_password_length: u32 = "MinDevicePasswordLength",
    /// Seconds of inactivity before the device locks.
    max_inactivity_time_device_lock: u32 = "MaxInactivityTimeDeviceLock",
    /// Failed unlock attempts before the device wipes itself.
    max_device_password_failed_attempts: u32 = "MaxDevicePasswordFailedAttempts",
    /// Largest attachment, in bytes, that may be downloaded.
    max_attachment_size: u32 = "MaxAttachmentSize",
    /// Simple passwords ("1111", "1234") are allowed.
    allow_simple_device_password: bool = "AllowSimpleDevicePassword",
    /// Days after which the password must be changed.
    device_password_expiration: u32 = "DevicePasswordExpiration",
    /// Number of previous passwords that may not be reused.
    device_password_history: u32 = "DevicePasswordHistory",
    allow_storage_card: bool = "AllowStorageCard",
    allow_camera: bool = "AllowCamera",
    require_device_encryption: bool = "RequireDeviceEncryption",
    allow_unsigned_applications: bool = "AllowUnsignedApplications",
    allow_unsigned_installation_packages: bool = "AllowUnsignedInstallationPackages",
    /// Character classes the password must contain.
    min_device_password_complex_characters: u32 = "MinDevicePasswordComplexCharacters",
    allow_wifi: bool = "AllowWiFi",
    allow_text_messaging: bool = "AllowTextMessaging",
    allow_pop_imap_email: bool = "AllowPOPIMAPEmail",
    allow_bluetooth: Bluetooth = "AllowBluetooth",
    allow_irda: bool = "AllowIrDA",
    require_manual_sync_when_roaming: bool = "RequireManualSyncWhenRoaming",
    allow_desktop_sync: bool = "AllowDesktopSync",
    max_calendar_age_filter: AgeFilter = "MaxCalendarAgeFilter",
    allow_html_email: bool = "AllowHTMLEmail",
    max_email_age_filter: AgeFilter = "MaxEmailAgeFilter",
    max_email_body_truncation_size: Truncation = "MaxEmailBodyTruncationSize",
    max_email_html_body_truncation_size: Truncation = "MaxEmailHTMLBodyTruncationSize",
    require_signed_smime_messages: bool = "RequireSignedSMIMEMessages",
    require_encrypted_smime_messages: bool = "RequireEncryptedSMIMEMessages",
    require_signed_smime_algorithm: SigningAlgorithm = "RequireSignedSMIMEAlgorithm",
    require_encryption_smime_algorithm: EncryptionAlgorithm = "RequireEncryptionSMIMEAlgorithm",
    allow_smime_encryption_algorithm_negotiation: AlgorithmNegotiation =
        "AllowSMIMEEncryptionAlgorithmNegotiation",
    allow_smime_soft_certs: bool = "AllowSMIMESoftCerts",
    allow_browser: bool = "AllowBrowser",
    allow_consumer_email: bool = "AllowConsumerEmail",
    allow_remote_desktop: bool = "AllowRemoteDesktop",
    allow_internet_sharing: bool = "AllowInternetSharing",
}

impl Policy {
    /// Reads the EASProvisionDoc element `doc` (already started) and everything inside it.
    /// Unknown elements are skipped; a value that is not valid for its element is an error
    /// naming the element.
    pub fn read<R: Read>(p: &mut Parser<R>, doc: Child) -> Result<Policy> {
        let mut policy = Policy::default();
        while let Some(child) = p.next_child()? {
            match child.tag {
                UNAPPROVED_IN_ROM_APPLICATION_LIST => {
                    let list = read_list(p, APPLICATION_NAME)?;
                    policy.unapproved_in_rom_applications = (!list.is_empty()).then_some(list);
                }
                APPROVED_APPLICATION_LIST => {
                    let list = read_list(p, HASH)?;
                    policy.approved_applications = (!list.is_empty()).then_some(list);
                }
                tag if tag.page == cp::PROVISION && tag != EAS_PROVISION_DOC => {
                    let Some(name) = tag.name() else {
                        p.skip(child)?;
                        continue;
                    };
                    // Check the name before reading, so an unknown element is skipped whole.
                    if !Policy::ELEMENT_NAMES.contains(&name) {
                        p.skip(child)?;
                        continue;
                    }
                    let text = p.text(child)?;
                    if let Some(Err(e)) = policy.set_scalar(name, &text) {
                        return Err(Error::Protocol {
                            offset: child.offset,
                            message: format!(
                                "{e}; the server's security policy is broken, ask its administrator to fix it"
                            ),
                        });
                    }
                }
                _ => p.skip(child)?,
            }
        }
        let _ = doc;
        Ok(policy)
    }

    /// Writes the whole `<EASProvisionDoc>` element with every set element, in code page
    /// order. All these elements exist from protocol 12.1 on.
    pub fn write<W: Write>(
        &self,
        w: &mut wbxml::Writer<W>,
    ) -> core::result::Result<(), wbxml::Error<W::Error>> {
        w.start(EAS_PROVISION_DOC)?;
        self.write_scalars(w)?;
        write_list(
            w,
            UNAPPROVED_IN_ROM_APPLICATION_LIST,
            APPLICATION_NAME,
            self.unapproved_in_rom_applications.as_deref(),
        )?;
        write_list(
            w,
            APPROVED_APPLICATION_LIST,
            HASH,
            self.approved_applications.as_deref(),
        )?;
        w.end()
    }

    /// The set elements as (element name, value as on the wire); list elements have their
    /// entries joined with [`LIST_SEPARATOR`].
    pub fn elements(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        self.scalar_elements(&mut out);
        let sep = LIST_SEPARATOR.to_string();
        if let Some(list) = &self.unapproved_in_rom_applications {
            out.push(("UnapprovedInROMApplicationList", list.join(&sep)));
        }
        if let Some(list) = &self.approved_applications {
            out.push(("ApprovedApplicationList", list.join(&sep)));
        }
        out
    }

    /// Sets the element called `name` (as in MS-ASPROV) from its wire form; an empty value
    /// unsets it. List elements take their entries separated by [`LIST_SEPARATOR`].
    pub fn set_by_name(
        &mut self,
        name: &str,
        value: &str,
    ) -> core::result::Result<(), PolicyError> {
        let list = match name {
            "UnapprovedInROMApplicationList" => &mut self.unapproved_in_rom_applications,
            "ApprovedApplicationList" => &mut self.approved_applications,
            _ => {
                return self.set_scalar(name, value).unwrap_or_else(|| {
                    Err(PolicyError::UnknownElement(
                        name.chars().take(MAX_QUOTED).collect(),
                    ))
                });
            }
        };
        let entries: Vec<String> = value
            .split(LIST_SEPARATOR)
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect();
        *list = (!entries.is_empty()).then_some(entries);
        Ok(())
    }

    /// Whether no element is set (a server without restrictions).
    pub fn is_empty(&self) -> bool {
        self == &Policy::default()
    }
}

/// Reads the entries (`entry` elements) of a list element, bounded by the parser's limits.
fn read_list<R: Read>(p: &mut Parser<R>, entry: Tag) -> Result<Vec<String>> {
    let mut out = Vec::new();
    while let Some(child) = p.next_child()? {
        if child.tag != entry {
            p.skip(child)?;
            continue;
        }
        p.check_entries(out.len(), "a policy application list", child.offset)?;
        let text = p.text(child)?;
        let text = text.trim();
        if !text.is_empty() {
            out.push(text.to_string());
        }
    }
    Ok(out)
}

fn write_list<W: Write>(
    w: &mut wbxml::Writer<W>,
    list_tag: Tag,
    entry_tag: Tag,
    entries: Option<&[String]>,
) -> core::result::Result<(), wbxml::Error<W::Error>> {
    match entries {
        None => Ok(()),
        Some([]) => w.empty(list_tag),
        Some(entries) => {
            w.start(list_tag)?;
            for e in entries {
                w.text_element(entry_tag, e)?;
            }
            w.end()
        }
    }
}

#[cfg(all(test, feature = "xml"))]
pub(crate) mod tests {
    use super::*;
    use crate::eas::command::write_wbxml;
    use crate::eas::testutil::{parser, wbxml_from_xml, xml_from_wbxml};
    use crate::wbxml::ProtocolVersion;

    /// Every element of EASProvisionDoc with a valid value.
    pub(crate) const FULL_DOC: &str = "<EASProvisionDoc>
  <DevicePasswordEnabled>1</DevicePasswordEnabled>
  <AlphanumericDevicePasswordRequired>1</AlphanumericDevicePasswordRequired>
  <RequireStorageCardEncryption>1</RequireStorageCardEncryption>
  <PasswordRecoveryEnabled>0</PasswordRecoveryEnabled>
  <AttachmentsEnabled>1</AttachmentsEnabled>
  <MinDevicePasswordLength>6</MinDevicePasswordLength>
  <MaxInactivityTimeDeviceLock>900</MaxInactivityTimeDeviceLock>
  <MaxDevicePasswordFailedAttempts>8</MaxDevicePasswordFailedAttempts>
  <MaxAttachmentSize>10485760</MaxAttachmentSize>
  <AllowSimpleDevicePassword>0</AllowSimpleDevicePassword>
  <DevicePasswordExpiration>90</DevicePasswordExpiration>
  <DevicePasswordHistory>5</DevicePasswordHistory>
  <AllowStorageCard>1</AllowStorageCard>
  <AllowCamera>0</AllowCamera>
  <RequireDeviceEncryption>1</RequireDeviceEncryption>
  <AllowUnsignedApplications>0</AllowUnsignedApplications>
  <AllowUnsignedInstallationPackages>0</AllowUnsignedInstallationPackages>
  <MinDevicePasswordComplexCharacters>3</MinDevicePasswordComplexCharacters>
  <AllowWiFi>1</AllowWiFi>
  <AllowTextMessaging>1</AllowTextMessaging>
  <AllowPOPIMAPEmail>0</AllowPOPIMAPEmail>
  <AllowBluetooth>1</AllowBluetooth>
  <AllowIrDA>0</AllowIrDA>
  <RequireManualSyncWhenRoaming>1</RequireManualSyncWhenRoaming>
  <AllowDesktopSync>0</AllowDesktopSync>
  <MaxCalendarAgeFilter>4</MaxCalendarAgeFilter>
  <AllowHTMLEmail>1</AllowHTMLEmail>
  <MaxEmailAgeFilter>3</MaxEmailAgeFilter>
  <MaxEmailBodyTruncationSize>-1</MaxEmailBodyTruncationSize>
  <MaxEmailHTMLBodyTruncationSize>51200</MaxEmailHTMLBodyTruncationSize>
  <RequireSignedSMIMEMessages>0</RequireSignedSMIMEMessages>
  <RequireEncryptedSMIMEMessages>0</RequireEncryptedSMIMEMessages>
  <RequireSignedSMIMEAlgorithm>0</RequireSignedSMIMEAlgorithm>
  <RequireEncryptionSMIMEAlgorithm>2</RequireEncryptionSMIMEAlgorithm>
  <AllowSMIMEEncryptionAlgorithmNegotiation>1</AllowSMIMEEncryptionAlgorithmNegotiation>
  <AllowSMIMESoftCerts>1</AllowSMIMESoftCerts>
  <AllowBrowser>1</AllowBrowser>
  <AllowConsumerEmail>0</AllowConsumerEmail>
  <AllowRemoteDesktop>0</AllowRemoteDesktop>
  <AllowInternetSharing>0</AllowInternetSharing>
  <UnapprovedInROMApplicationList>
    <ApplicationName>Solitaire, Deluxe</ApplicationName>
    <ApplicationName>Browser</ApplicationName>
  </UnapprovedInROMApplicationList>
  <ApprovedApplicationList>
    <Hash>3A5D8B9C0E1F</Hash>
  </ApprovedApplicationList>
</EASProvisionDoc>";

    fn doc_xml(inner: &str) -> String {
        inner.replacen(
            "<EASProvisionDoc",
            "<EASProvisionDoc xmlns=\"Provision:\"",
            1,
        )
    }

    fn read_doc(xml: &str) -> Result<Policy> {
        let bytes = wbxml_from_xml(&doc_xml(xml));
        let mut p = parser(&bytes);
        let root = p.root(EAS_PROVISION_DOC)?.expect("fixture has a body");
        let policy = Policy::read(&mut p, root)?;
        p.finish()?;
        Ok(policy)
    }

    pub(crate) fn full_policy() -> Policy {
        Policy {
            device_password_enabled: Some(true),
            alphanumeric_device_password_required: Some(true),
            require_storage_card_encryption: Some(true),
            password_recovery_enabled: Some(false),
            attachments_enabled: Some(true),
            min_device_password_length: Some(6),
            max_inactivity_time_device_lock: Some(900),
            max_device_password_failed_attempts: Some(8),
            max_attachment_size: Some(10_485_760),
            allow_simple_device_password: Some(false),
            device_password_expiration: Some(90),
            device_password_history: Some(5),
            allow_storage_card: Some(true),
            allow_camera: Some(false),
            require_device_encryption: Some(true),
            allow_unsigned_applications: Some(false),
            allow_unsigned_installation_packages: Some(false),
            min_device_password_complex_characters: Some(3),
            allow_wifi: Some(true),
            allow_text_messaging: Some(true),
            allow_pop_imap_email: Some(false),
            allow_bluetooth: Some(Bluetooth::HandsFreeOnly),
            allow_irda: Some(false),
            require_manual_sync_when_roaming: Some(true),
            allow_desktop_sync: Some(false),
            max_calendar_age_filter: Some(AgeFilter::TwoWeeks),
            allow_html_email: Some(true),
            max_email_age_filter: Some(AgeFilter::OneWeek),
            max_email_body_truncation_size: Some(Truncation::None),
            max_email_html_body_truncation_size: Some(Truncation::Bytes(51200)),
            require_signed_smime_messages: Some(false),
            require_encrypted_smime_messages: Some(false),
            require_signed_smime_algorithm: Some(SigningAlgorithm::Sha1),
            require_encryption_smime_algorithm: Some(EncryptionAlgorithm::Rc2_128),
            allow_smime_encryption_algorithm_negotiation: Some(
                AlgorithmNegotiation::StrongAlgorithm,
            ),
            allow_smime_soft_certs: Some(true),
            allow_browser: Some(true),
            allow_consumer_email: Some(false),
            allow_remote_desktop: Some(false),
            allow_internet_sharing: Some(false),
            unapproved_in_rom_applications: Some(vec![
                "Solitaire, Deluxe".into(),
                "Browser".into(),
            ]),
            approved_applications: Some(vec!["3A5D8B9C0E1F".into()]),
        }
    }

    #[test]
    fn full_document_reads_every_element() {
        let policy = read_doc(FULL_DOC).unwrap();
        assert_eq!(policy, full_policy());
        // Every element name is covered by the fixture.
        for name in Policy::ELEMENT_NAMES {
            assert!(FULL_DOC.contains(&format!("<{name}>")), "{name} missing");
        }
        assert_eq!(policy.elements().len(), Policy::ELEMENT_NAMES.len());
    }

    #[test]
    fn element_names_exist_in_the_provision_page_from_12_1() {
        for name in Policy::ELEMENT_NAMES {
            let tag = Tag::by_name("Provision", name).expect(name);
            assert!(tag.in_version(ProtocolVersion::V12_1), "{name}");
        }
    }

    #[test]
    fn written_document_is_the_fixture_and_reads_back() {
        let bytes = write_wbxml(ProtocolVersion::V12_1, |w| full_policy().write(w)).unwrap();
        assert_eq!(xml_from_wbxml(&bytes), doc_xml(FULL_DOC));
        let empty = write_wbxml(ProtocolVersion::V16_1, |w| Policy::default().write(w)).unwrap();
        assert_eq!(
            xml_from_wbxml(&empty),
            "<EASProvisionDoc xmlns=\"Provision:\"></EASProvisionDoc>"
        );
    }

    #[test]
    fn empty_document_and_empty_elements_are_unset() {
        let policy = read_doc("<EASProvisionDoc/>").unwrap();
        assert!(policy.is_empty());
        let policy = read_doc(
            "<EASProvisionDoc>
  <MaxAttachmentSize/>
  <DevicePasswordExpiration></DevicePasswordExpiration>
  <AllowCamera>0</AllowCamera>
  <UnapprovedInROMApplicationList/>
</EASProvisionDoc>",
        )
        .unwrap();
        assert_eq!(policy.max_attachment_size, None);
        assert_eq!(policy.device_password_expiration, None);
        assert_eq!(policy.unapproved_in_rom_applications, None);
        assert_eq!(policy.allow_camera, Some(false));
        assert_eq!(policy.elements(), vec![("AllowCamera", "0".to_string())]);
    }

    #[test]
    fn invalid_values_are_errors_naming_the_element() {
        let err = read_doc("<EASProvisionDoc>\n  <MinDevicePasswordLength>abc</MinDevicePasswordLength>\n</EASProvisionDoc>")
            .unwrap_err()
            .to_string();
        assert!(err.contains("MinDevicePasswordLength"), "{err}");
        assert!(err.contains("\"abc\""), "{err}");
        let err = read_doc("<EASProvisionDoc>\n  <AllowCamera>2</AllowCamera>\n</EASProvisionDoc>")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AllowCamera") && err.contains("0 or 1"),
            "{err}"
        );
        let err = read_doc("<EASProvisionDoc>\n  <MaxEmailBodyTruncationSize>-2</MaxEmailBodyTruncationSize>\n</EASProvisionDoc>")
            .unwrap_err()
            .to_string();
        assert!(err.contains("MaxEmailBodyTruncationSize"), "{err}");
        let err = read_doc("<EASProvisionDoc>\n  <MaxAttachmentSize>99999999999</MaxAttachmentSize>\n</EASProvisionDoc>")
            .unwrap_err()
            .to_string();
        assert!(err.contains("MaxAttachmentSize"), "{err}");
    }

    #[test]
    fn unknown_enum_codes_are_kept() {
        let policy = read_doc("<EASProvisionDoc>\n  <AllowBluetooth>7</AllowBluetooth>\n  <MaxCalendarAgeFilter>9</MaxCalendarAgeFilter>\n</EASProvisionDoc>").unwrap();
        assert_eq!(policy.allow_bluetooth, Some(Bluetooth::Unknown(7)));
        assert_eq!(policy.max_calendar_age_filter, Some(AgeFilter::Unknown(9)));
        assert_eq!(Bluetooth::from_code(2), Bluetooth::Allowed);
        assert_eq!(Bluetooth::Unknown(7).code(), 7);
        assert_eq!(
            EncryptionAlgorithm::from_code(4),
            EncryptionAlgorithm::Rc2_40
        );
        assert_eq!(SigningAlgorithm::from_code(1), SigningAlgorithm::Md5);
        assert_eq!(AlgorithmNegotiation::from_code(2).code(), 2);
        assert_eq!(AgeFilter::from_code(7), AgeFilter::SixMonths);
    }

    #[test]
    fn elements_in_other_places_are_skipped() {
        // A Provision-page element that is no policy setting, and a nested surprise.
        let policy = read_doc("<EASProvisionDoc>\n  <PolicyKey>1</PolicyKey>\n  <AllowWiFi>1</AllowWiFi>\n  <ApprovedApplicationList>\n    <ApplicationName>x</ApplicationName>\n    <Hash>AB</Hash>\n  </ApprovedApplicationList>\n</EASProvisionDoc>").unwrap();
        assert_eq!(policy.allow_wifi, Some(true));
        assert_eq!(policy.approved_applications, Some(vec!["AB".to_string()]));
    }

    #[test]
    fn set_by_name_round_trips_elements() {
        let full = full_policy();
        let mut copy = Policy::default();
        for (name, value) in full.elements() {
            copy.set_by_name(name, &value).unwrap();
        }
        assert_eq!(copy, full);
        copy.set_by_name("AllowCamera", "").unwrap();
        assert_eq!(copy.allow_camera, None);
        copy.set_by_name("ApprovedApplicationList", "").unwrap();
        assert_eq!(copy.approved_applications, None);
        assert_eq!(
            copy.set_by_name("MaxAttachmentSize", "ten"),
            Err(PolicyError::InvalidValue {
                element: "MaxAttachmentSize",
                value: "ten".into(),
                expected: u32::EXPECTED,
            })
        );
        assert_eq!(
            copy.set_by_name("allowcamera", "1"),
            Err(PolicyError::UnknownElement("allowcamera".into()))
        );
    }

    #[test]
    fn list_limit_and_truncation_are_errors() {
        let bytes = wbxml_from_xml(&doc_xml(
            "<EASProvisionDoc>\n  <ApprovedApplicationList>\n    <Hash>A</Hash>\n    <Hash>B</Hash>\n    <Hash>C</Hash>\n  </ApprovedApplicationList>\n</EASProvisionDoc>",
        ));
        let limits = crate::eas::Limits {
            max_entries: 2,
            ..Default::default()
        };
        let mut p = Parser::with_limits(&bytes[..], limits);
        let root = p.root(EAS_PROVISION_DOC).unwrap().unwrap();
        assert!(matches!(
            Policy::read(&mut p, root),
            Err(Error::Limit { .. })
        ));

        let bytes = wbxml_from_xml(&doc_xml(FULL_DOC));
        for cut in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 2] {
            let mut p = parser(&bytes[..cut]);
            let root = p.root(EAS_PROVISION_DOC).unwrap().unwrap();
            assert!(Policy::read(&mut p, root).is_err(), "cut at {cut}");
        }
    }
}
