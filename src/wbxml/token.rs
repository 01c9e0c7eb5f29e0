//! The WBXML 1.3 global tokens (section 7.1) and tag-byte bits that EAS documents use.

pub const SWITCH_PAGE: u8 = 0x00;
pub const END: u8 = 0x01;
pub const ENTITY: u8 = 0x02;
pub const STR_I: u8 = 0x03;
pub const LITERAL: u8 = 0x04;
pub const EXT_I_0: u8 = 0x40;
pub const PI: u8 = 0x43;
pub const LITERAL_C: u8 = 0x44;
pub const EXT_T_0: u8 = 0x80;
pub const EXT_T_2: u8 = 0x82;
pub const STR_T: u8 = 0x83;
pub const LITERAL_A: u8 = 0x84;
pub const EXT_0: u8 = 0xC0;
pub const EXT_2: u8 = 0xC2;
pub const OPAQUE: u8 = 0xC3;
pub const LITERAL_AC: u8 = 0xC4;

/// Tag byte bit: the element has content (an END token closes it).
pub const HAS_CONTENT: u8 = 0x40;
/// Tag byte bit: the element has attributes (never in EAS).
pub const HAS_ATTRIBUTES: u8 = 0x80;
/// The token part of a tag byte.
pub const TOKEN_MASK: u8 = 0x3F;

/// The header EAS sends: WBXML 1.3, public id 1 (unknown), UTF-8, no string table.
pub const EAS_HEADER: [u8; 4] = [0x03, 0x01, 0x6A, 0x00];
/// IANA MIBenum of UTF-8.
pub const CHARSET_UTF8: u32 = 106;
