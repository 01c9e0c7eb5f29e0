#![cfg(feature = "xml")]
//! The store's item conversions end to end: an item arrives as WBXML ApplicationData (read
//! the way `eas::sync` reads it, body and picture streamed), becomes a vCard / iCalendar /
//! note file, and is read back into ApplicationData that must carry every field and be
//! writable for the protocol version. Also real-world-looking files and malformed input.

use easync::eas::item::{LargeValue, SinkSource, read_application_data, write_node};
use easync::eas::parse::{Node, Parser, Value};
use easync::eas::sink::Sink;
use easync::store::ical::{event_to_ical, ical_to_event, ical_to_task, task_to_ical};
use easync::store::note::{note_to_text, text_to_note};
use easync::store::timezone::{SystemTime, TimeZone};
use easync::store::vcard::{FromServer, contact_to_vcard, parse_content_lines, vcard_to_contact};
use easync::wbxml::tags::cp;
use easync::wbxml::{ProtocolVersion, Tag};

const V14: ProtocolVersion = ProtocolVersion::V14_1;
const V16: ProtocolVersion = ProtocolVersion::V16_1;

#[derive(Default)]
struct Collect {
    body: Vec<u8>,
    picture: Vec<u8>,
}

impl SinkSource for Collect {
    fn sink_for(&mut self, value: &LargeValue) -> Option<&mut dyn Sink> {
        match value {
            LargeValue::Picture => Some(&mut self.picture),
            LargeValue::Body { .. } => Some(&mut self.body),
            _ => None,
        }
    }
}

struct Item {
    node: Node,
    body: Option<String>,
    picture: Option<String>,
}

/// Reads `<ApplicationData>` XML the way a Sync response's item is read.
fn item(inner: &str) -> Item {
    let xml = format!(
        "<ApplicationData xmlns=\"AirSync:\" xmlns:contacts=\"Contacts:\" \
         xmlns:contacts2=\"Contacts2:\" xmlns:calendar=\"Calendar:\" xmlns:tasks=\"Tasks:\" \
         xmlns:notes=\"Notes:\" xmlns:airsyncbase=\"AirSyncBase:\">{inner}</ApplicationData>"
    );
    let bytes = easync::wbxml::xml::encode::encode(xml.as_bytes(), Vec::new())
        .unwrap_or_else(|e| panic!("bad fixture: {e:?}"));
    let mut p = Parser::new(&bytes[..], V16);
    let root = p
        .root(Tag::named(cp::AIRSYNC, "ApplicationData"))
        .unwrap()
        .unwrap();
    let mut sinks = Collect::default();
    let data = read_application_data(&mut p, root, &mut sinks).unwrap();
    p.finish().unwrap();
    let text = |v: Vec<u8>| (!v.is_empty()).then(|| String::from_utf8(v).unwrap());
    Item {
        node: data.node,
        body: text(sinks.body),
        picture: text(sinks.picture),
    }
}

/// A node with containers' children in a canonical order, for order-free comparison.
fn canonical(node: &Node) -> Node {
    match &node.value {
        Value::Children(c) => {
            let mut c: Vec<Node> = c.iter().map(canonical).collect();
            c.sort_by_key(|n| format!("{n:?}"));
            Node {
                tag: node.tag,
                value: Value::Children(c),
            }
        }
        _ => node.clone(),
    }
}

/// Every child of `original` except bodies is in `back`, and `back` has nothing else but
/// the tags in `extra`.
fn assert_same_fields(original: &Node, back: &[Node], extra: &[Tag]) {
    let body = Tag::named(cp::AIRSYNCBASE, "Body");
    let back: Vec<Node> = back.iter().map(canonical).collect();
    for child in original.children().iter().filter(|c| c.tag != body) {
        assert!(
            back.contains(&canonical(child)),
            "{} lost or changed: {child:?}\nback: {back:#?}",
            child.tag
        );
    }
    for b in &back {
        assert!(
            b.tag == body
                || extra.contains(&b.tag)
                || original.children().iter().any(|c| c.tag == b.tag),
            "unexpected {b:?}"
        );
    }
}

fn body_text(data: &[Node]) -> Option<&str> {
    data.iter()
        .find(|n| n.tag == Tag::named(cp::AIRSYNCBASE, "Body"))
        .and_then(|b| b.child_text(Tag::named(cp::AIRSYNCBASE, "Data")))
}

/// The nodes must be writable as ApplicationData in `version` (every tag exists there).
fn assert_writable(data: &[Node], version: ProtocolVersion) {
    easync::eas::command::write_wbxml(version, |w| {
        w.start(Tag::named(cp::AIRSYNC, "ApplicationData"))?;
        for n in data {
            write_node(w, n)?;
        }
        w.end()
    })
    .unwrap_or_else(|e| panic!("not writable in {version}: {e}"));
}

fn west_europe() -> TimeZone {
    TimeZone {
        bias: -60,
        standard_name: "W. Europe Standard Time".into(),
        standard_date: SystemTime {
            month: 10,
            day: 5,
            hour: 3,
            ..SystemTime::default()
        },
        standard_bias: 0,
        daylight_name: "W. Europe Daylight Time".into(),
        daylight_date: SystemTime {
            month: 3,
            day: 5,
            hour: 2,
            ..SystemTime::default()
        },
        daylight_bias: -60,
    }
}

const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

#[test]
fn contact_round_trip_keeps_every_field() {
    let it = item(&format!(
        "<contacts:FirstName>Jürgen</contacts:FirstName>
        <contacts:LastName>Müller-Lüdenscheidt</contacts:LastName>
        <contacts:MiddleName>K.</contacts:MiddleName>
        <contacts:Title>Dr.</contacts:Title>
        <contacts:Suffix>Jr.</contacts:Suffix>
        <contacts:YomiFirstName>ユルゲン</contacts:YomiFirstName>
        <contacts:YomiLastName>ミュラー</contacts:YomiLastName>
        <contacts:YomiCompanyName>エーシーエム</contacts:YomiCompanyName>
        <contacts:FileAs>Müller-Lüdenscheidt, Jürgen</contacts:FileAs>
        <contacts:Email1Address>juergen@example.com</contacts:Email1Address>
        <contacts:Email2Address>jm@example.org</contacts:Email2Address>
        <contacts:Email3Address>j.m@example.net</contacts:Email3Address>
        <contacts:MobilePhoneNumber>+49 170 1</contacts:MobilePhoneNumber>
        <contacts:HomePhoneNumber>+49 30 2</contacts:HomePhoneNumber>
        <contacts:Home2PhoneNumber>+49 30 3</contacts:Home2PhoneNumber>
        <contacts:BusinessPhoneNumber>+49 89 4</contacts:BusinessPhoneNumber>
        <contacts:Business2PhoneNumber>+49 89 5</contacts:Business2PhoneNumber>
        <contacts:HomeFaxNumber>+49 30 6</contacts:HomeFaxNumber>
        <contacts:BusinessFaxNumber>+49 89 7</contacts:BusinessFaxNumber>
        <contacts:PagerNumber>8</contacts:PagerNumber>
        <contacts:CarPhoneNumber>9</contacts:CarPhoneNumber>
        <contacts:RadioPhoneNumber>10</contacts:RadioPhoneNumber>
        <contacts:AssistantPhoneNumber>11</contacts:AssistantPhoneNumber>
        <contacts2:CompanyMainPhone>12</contacts2:CompanyMainPhone>
        <contacts2:MMS>13</contacts2:MMS>
        <contacts:HomeAddressStreet>Hauptstraße 1\nHinterhaus</contacts:HomeAddressStreet>
        <contacts:HomeAddressCity>Berlin</contacts:HomeAddressCity>
        <contacts:HomeAddressState>BE</contacts:HomeAddressState>
        <contacts:HomeAddressPostalCode>10115</contacts:HomeAddressPostalCode>
        <contacts:HomeAddressCountry>Germany</contacts:HomeAddressCountry>
        <contacts:BusinessAddressStreet>Work St. 5; Floor 3</contacts:BusinessAddressStreet>
        <contacts:BusinessAddressCity>München</contacts:BusinessAddressCity>
        <contacts:BusinessAddressPostalCode>80331</contacts:BusinessAddressPostalCode>
        <contacts:OtherAddressStreet>Beach Rd, 7</contacts:OtherAddressStreet>
        <contacts:OtherAddressCountry>Portugal</contacts:OtherAddressCountry>
        <contacts:CompanyName>ACME, Inc.</contacts:CompanyName>
        <contacts:Department>R&amp;D</contacts:Department>
        <contacts:JobTitle>Chief \\ Engineer</contacts:JobTitle>
        <contacts:OfficeLocation>Building 3</contacts:OfficeLocation>
        <contacts:WebPage>https://example.com/~jm?a=1,b=2</contacts:WebPage>
        <contacts:Birthday>1980-04-12T00:00:00.000Z</contacts:Birthday>
        <contacts:Anniversary>2005-06-30T00:00:00.000Z</contacts:Anniversary>
        <contacts:Spouse>Anna</contacts:Spouse>
        <contacts:Children><contacts:Child>Tim</contacts:Child><contacts:Child>Lea</contacts:Child></contacts:Children>
        <contacts:AssistantName>Paula</contacts:AssistantName>
        <contacts2:ManagerName>Boss</contacts2:ManagerName>
        <contacts2:NickName>Jü</contacts2:NickName>
        <contacts2:IMAddress>jm@jabber.example</contacts2:IMAddress>
        <contacts2:IMAddress2>jm2@jabber.example</contacts2:IMAddress2>
        <contacts2:IMAddress3>jm3@jabber.example</contacts2:IMAddress3>
        <contacts2:CustomerId>C-1</contacts2:CustomerId>
        <contacts2:GovernmentId>G-2</contacts2:GovernmentId>
        <contacts2:AccountName>acc</contacts2:AccountName>
        <contacts:Categories><contacts:Category>Family</contacts:Category><contacts:Category>VIP, gold</contacts:Category></contacts:Categories>
        <airsyncbase:Body><airsyncbase:Type>1</airsyncbase:Type><airsyncbase:Data>Met at FOSDEM; likes tea, not coffee.\nSecond line \\ end</airsyncbase:Data></airsyncbase:Body>
        <contacts:Picture>{PNG_B64}</contacts:Picture>"
    ));
    assert_eq!(it.picture.as_deref(), Some(PNG_B64));
    let ctx = FromServer {
        server_id: "2:17",
        uid: None,
        body: it.body.as_deref(),
        picture: it.picture.as_deref(),
    };
    let card = contact_to_vcard(&it.node, &ctx);
    for expected in [
        "UID:easync-2:17\r\n",
        "N:Müller-Lüdenscheidt;Jürgen;K.;Dr.;Jr.\r\n",
        "FN:Dr. Jürgen K. Müller-Lüdenscheidt Jr.\r\n",
        "TEL;TYPE=cell:+49 170 1\r\n",
        "TEL;TYPE=\"work,fax\":+49 89 7\r\n",
        "ADR;TYPE=work:;;Work St. 5\\; Floor 3;München;;80331;\r\n",
        "ORG:ACME\\, Inc.;R&D\r\n",
        "BDAY:19800412\r\n",
        "RELATED;TYPE=child;VALUE=text:Lea\r\n",
        "CATEGORIES:Family,VIP\\, gold\r\n",
        "PHOTO:data:image/png;base64,iVBOR",
    ] {
        assert!(card.contains(expected), "{expected:?} missing in\n{card}");
    }
    for line in card.split("\r\n") {
        assert!(line.len() <= 75, "unfolded line: {line}");
    }
    let back = vcard_to_contact(&card, V14).unwrap();
    assert_eq!(back.uid.as_deref(), Some("easync-2:17"));
    assert_eq!(body_text(&back.data), it.body.as_deref());
    assert_same_fields(&it.node, &back.data, &[Tag::named(cp::CONTACTS, "Picture")]);
    assert!(
        back.data
            .iter()
            .any(|n| n.tag == Tag::named(cp::CONTACTS, "Picture") && n.text() == Some(PNG_B64))
    );
    assert_writable(&back.data, V14);
    assert_writable(&back.data, V16);
    // A second conversion with the kept UID gives the same file.
    let again = FromServer {
        uid: back.uid.as_deref(),
        ..ctx
    };
    assert_eq!(contact_to_vcard(&it.node, &again), card);
}

/// A contact from an iPhone export (vCard 3.0, CRLF, folded, grouped, escaped).
const APPLE_VCARD: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nPRODID:-//Apple Inc.//iPhone OS 17.0//EN\r\n\
N:Ångström;Zoë;;;\r\nFN:Zoë Ångström\r\nORG:Fjord AB;\r\n\
item1.EMAIL;type=INTERNET;type=pref:zoe@fjord.se\r\nTEL;type=CELL;type=VOICE;type=pref:+46 70 123 45 67\r\n\
TEL;type=WORK;type=VOICE:+46 8 123\r\n\
item2.ADR;type=HOME;type=pref:;;Storgatan 1;Stockholm;;111 22;Sweden\r\nitem2.X-ABADR:se\r\n\
NOTE:Line one\\nLine two\\, with comma\\; and semicolon — and a very long tail that will be \r\n folded by the exporter.\r\n\
BDAY;VALUE=date:1990-02-28\r\nCATEGORIES:friends,work\r\nEND:VCARD\r\n";

#[test]
fn apple_vcard_is_read() {
    let c = vcard_to_contact(APPLE_VCARD, V14).unwrap();
    let get = |name: &str| {
        c.data
            .iter()
            .find(|n| n.tag == Tag::named(cp::CONTACTS, name))
            .and_then(Node::text)
    };
    assert_eq!(get("FirstName"), Some("Zoë"));
    assert_eq!(get("LastName"), Some("Ångström"));
    assert_eq!(get("CompanyName"), Some("Fjord AB"));
    assert_eq!(get("Email1Address"), Some("zoe@fjord.se"));
    assert_eq!(get("MobilePhoneNumber"), Some("+46 70 123 45 67"));
    assert_eq!(get("BusinessPhoneNumber"), Some("+46 8 123"));
    assert_eq!(get("HomeAddressStreet"), Some("Storgatan 1"));
    assert_eq!(get("HomeAddressPostalCode"), Some("111 22"));
    assert_eq!(get("Birthday"), Some("1990-02-28T00:00:00.000Z"));
    assert_eq!(
        body_text(&c.data),
        Some(
            "Line one\nLine two, with comma; and semicolon — and a very long tail that will be \
             folded by the exporter."
        )
    );
    assert_eq!(c.uid, None);
    // The same card with LF line ends reads the same.
    assert_eq!(
        vcard_to_contact(&APPLE_VCARD.replace("\r\n", "\n"), V14).unwrap(),
        c
    );
}

fn event_item() -> Item {
    item(&format!(
        "<calendar:Timezone>{tz}</calendar:Timezone>
        <calendar:AllDayEvent>0</calendar:AllDayEvent>
        <calendar:BusyStatus>2</calendar:BusyStatus>
        <calendar:OrganizerName>Chef, Eva</calendar:OrganizerName>
        <calendar:OrganizerEmail>eva@example.com</calendar:OrganizerEmail>
        <calendar:DtStamp>20261120T080000Z</calendar:DtStamp>
        <calendar:EndTime>20261125T100000Z</calendar:EndTime>
        <calendar:Location>Raum 4; Haus B</calendar:Location>
        <calendar:Reminder>15</calendar:Reminder>
        <calendar:Sensitivity>2</calendar:Sensitivity>
        <calendar:Subject>Café-Runde, wöchentlich</calendar:Subject>
        <calendar:StartTime>20261125T090000Z</calendar:StartTime>
        <calendar:UID>040000008200E00074C5B7101A82E008</calendar:UID>
        <calendar:MeetingStatus>1</calendar:MeetingStatus>
        <calendar:Attendees>
          <calendar:Attendee><calendar:Email>bob@example.com</calendar:Email><calendar:Name>Bob</calendar:Name><calendar:AttendeeStatus>3</calendar:AttendeeStatus><calendar:AttendeeType>1</calendar:AttendeeType></calendar:Attendee>
          <calendar:Attendee><calendar:Email>room@example.com</calendar:Email><calendar:Name>Room 4</calendar:Name><calendar:AttendeeStatus>4</calendar:AttendeeStatus><calendar:AttendeeType>3</calendar:AttendeeType></calendar:Attendee>
        </calendar:Attendees>
        <calendar:Categories><calendar:Category>Team</calendar:Category></calendar:Categories>
        <calendar:Recurrence><calendar:Type>1</calendar:Type><calendar:Interval>1</calendar:Interval><calendar:Until>20261230T090000Z</calendar:Until><calendar:DayOfWeek>8</calendar:DayOfWeek><calendar:FirstDayOfWeek>1</calendar:FirstDayOfWeek></calendar:Recurrence>
        <calendar:Exceptions>
          <calendar:Exception><calendar:Deleted>1</calendar:Deleted><calendar:ExceptionStartTime>20261202T090000Z</calendar:ExceptionStartTime></calendar:Exception>
          <calendar:Exception><calendar:ExceptionStartTime>20261209T090000Z</calendar:ExceptionStartTime><calendar:StartTime>20261209T130000Z</calendar:StartTime><calendar:EndTime>20261209T140000Z</calendar:EndTime><calendar:Subject>Verschoben</calendar:Subject><calendar:BusyStatus>1</calendar:BusyStatus></calendar:Exception>
        </calendar:Exceptions>
        <airsyncbase:Body><airsyncbase:Type>1</airsyncbase:Type><airsyncbase:Data>Agenda:\n1. Kaffee\n2. Kuchen</airsyncbase:Data></airsyncbase:Body>",
        tz = west_europe().to_base64()
    ))
}

#[test]
fn weekly_event_with_exceptions_round_trip() {
    let it = event_item();
    let ctx = FromServer {
        server_id: "1:5",
        body: it.body.as_deref(),
        ..FromServer::default()
    };
    let ics = event_to_ical(&it.node, &ctx).unwrap();
    for expected in [
        "UID:040000008200E00074C5B7101A82E008\r\n",
        "TZID:W. Europe Standard Time\r\n",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\n",
        "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\n",
        "DTSTART;TZID=W. Europe Standard Time:20261125T100000\r\n",
        "DTEND;TZID=W. Europe Standard Time:20261125T110000\r\n",
        "RRULE:FREQ=WEEKLY;BYDAY=WE;INTERVAL=1;UNTIL=20261230T090000Z;WKST=MO\r\n",
        "EXDATE;TZID=W. Europe Standard Time:20261202T100000\r\n",
        "RECURRENCE-ID;TZID=W. Europe Standard Time:20261209T100000\r\n",
        "DTSTART;TZID=W. Europe Standard Time:20261209T140000\r\n",
        "SUMMARY:Verschoben\r\n",
        "SUMMARY:Café-Runde\\, wöchentlich\r\n",
        "LOCATION:Raum 4\\; Haus B\r\n",
        "CLASS:PRIVATE\r\n",
        "TRANSP:OPAQUE\r\n",
        "ORGANIZER;CN=\"Chef, Eva\":mailto:eva@example.com\r\n",
        "ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:bob@example.com\r\n",
        "TRIGGER:-PT15M\r\n",
        "DESCRIPTION:Agenda:\\n1. Kaffee\\n2. Kuchen\r\n",
    ] {
        let unfolded = ics.replace("\r\n ", "");
        assert!(
            unfolded.contains(expected),
            "{expected:?} missing in\n{ics}"
        );
    }
    // Components come after all properties of a VEVENT (RFC 5545 3.6.1).
    for (at, _) in ics.match_indices("END:VALARM\r\n") {
        assert!(ics[at + 12..].starts_with("END:VEVENT\r\n"), "{ics}");
    }
    // The moved instance carries the series' values it does not override.
    let instance = &ics[ics.find("RECURRENCE-ID").unwrap()..];
    assert!(
        instance.contains("LOCATION:Raum 4\\; Haus B\r\n"),
        "{instance}"
    );
    assert!(
        instance.contains("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE\r\n"),
        "{instance}"
    );
    let back = ical_to_event(&ics, V14).unwrap();
    assert_eq!(
        back.uid.as_deref(),
        Some("040000008200E00074C5B7101A82E008")
    );
    assert_eq!(body_text(&back.data), Some("Agenda:\n1. Kaffee\n2. Kuchen"));
    assert_same_fields(&it.node, &back.data, &[]);
    assert_writable(&back.data, V14);

    // 16.1: ClientUid instead of UID, airsyncbase:Location and InstanceId, no organizer.
    let back16 = ical_to_event(&ics, V16).unwrap();
    assert_writable(&back16.data, V16);
    let has = |name: Tag| back16.data.iter().any(|n| n.tag == name);
    assert!(has(Tag::named(cp::CALENDAR, "ClientUid")));
    assert!(!has(Tag::named(cp::CALENDAR, "UID")));
    assert!(has(Tag::named(cp::AIRSYNCBASE, "Location")));
    assert!(!has(Tag::named(cp::CALENDAR, "OrganizerEmail")));
    let attendees = back16
        .data
        .iter()
        .find(|n| n.tag == Tag::named(cp::CALENDAR, "Attendees"))
        .unwrap();
    assert_eq!(attendees.children().len(), 2);
    for a in attendees.children() {
        assert!(
            a.child(Tag::named(cp::CALENDAR, "AttendeeStatus"))
                .is_none()
        );
        assert!(a.child(Tag::named(cp::CALENDAR, "AttendeeType")).is_some());
    }
    let exceptions = back16
        .data
        .iter()
        .find(|n| n.tag == Tag::named(cp::CALENDAR, "Exceptions"))
        .unwrap();
    assert_eq!(exceptions.children().len(), 2);
    for ex in exceptions.children() {
        assert!(
            ex.child(Tag::named(cp::AIRSYNCBASE, "InstanceId"))
                .is_some()
        );
    }
}

#[test]
fn all_day_event_round_trip() {
    let it = item(&format!(
        "<calendar:Timezone>{}</calendar:Timezone>
        <calendar:AllDayEvent>1</calendar:AllDayEvent>
        <calendar:StartTime>20261124T230000Z</calendar:StartTime>
        <calendar:EndTime>20261125T230000Z</calendar:EndTime>
        <calendar:Subject>Geburtstag</calendar:Subject>
        <calendar:BusyStatus>0</calendar:BusyStatus>
        <calendar:Sensitivity>0</calendar:Sensitivity>
        <calendar:DtStamp>20261101T000000Z</calendar:DtStamp>
        <calendar:Recurrence><calendar:Type>5</calendar:Type><calendar:Interval>1</calendar:Interval><calendar:DayOfMonth>25</calendar:DayOfMonth><calendar:MonthOfYear>11</calendar:MonthOfYear></calendar:Recurrence>",
        west_europe().to_base64()
    ));
    let ics = event_to_ical(
        &it.node,
        &FromServer {
            server_id: "1:9",
            ..FromServer::default()
        },
    )
    .unwrap();
    assert!(ics.contains("DTSTART;VALUE=DATE:20261125\r\n"), "{ics}");
    assert!(ics.contains("DTEND;VALUE=DATE:20261126\r\n"), "{ics}");
    assert!(ics.contains("TRANSP:TRANSPARENT\r\n"), "{ics}");
    assert!(
        ics.contains("RRULE:FREQ=YEARLY;BYMONTH=11;BYMONTHDAY=25;INTERVAL=1\r\n"),
        "{ics}"
    );
    assert!(ics.contains("UID:easync-1:9\r\n"), "{ics}");
    let back = ical_to_event(&ics, V14).unwrap();
    assert_same_fields(&it.node, &back.data, &[Tag::named(cp::CALENDAR, "UID")]);
}

/// A Thunderbird-style file: Europe/Berlin VTIMEZONE, LF line ends, a folded description.
const THUNDERBIRD_ICS: &str = "BEGIN:VCALENDAR
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN
VERSION:2.0
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
CREATED:20261101T101010Z
UID:7f3c1a2e-5b1d-4c52-9a0e-ffe1d2c3b4a5
SUMMARY:Zahnarzt 🦷
DTSTART;TZID=Europe/Berlin:20260710T083000
DTEND;TZID=Europe/Berlin:20260710T091500
DESCRIPTION:Bitte 10 Minuten früher da sein\\, Versichertenkarte mitbringen
 . Adresse: Hauptstr. 3\\; 2. OG
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER;VALUE=DURATION:-PT1H
END:VALARM
END:VEVENT
END:VCALENDAR
";

#[test]
fn thunderbird_event_is_read() {
    let e = ical_to_event(THUNDERBIRD_ICS, V14).unwrap();
    let get = |name: &str| {
        e.data
            .iter()
            .find(|n| n.tag == Tag::named(cp::CALENDAR, name))
            .and_then(Node::text)
    };
    // 08:30 CEST is 06:30 UTC.
    assert_eq!(get("StartTime"), Some("20260710T063000Z"));
    assert_eq!(get("EndTime"), Some("20260710T071500Z"));
    assert_eq!(get("Subject"), Some("Zahnarzt 🦷"));
    assert_eq!(get("Reminder"), Some("60"));
    assert_eq!(get("UID"), Some("7f3c1a2e-5b1d-4c52-9a0e-ffe1d2c3b4a5"));
    let tz = TimeZone::from_base64(get("Timezone").unwrap()).unwrap();
    assert_eq!(tz.bias, -60);
    assert_eq!(tz.daylight_bias, -60);
    assert_eq!(
        (
            tz.standard_date.month,
            tz.standard_date.day,
            tz.standard_date.hour
        ),
        (10, 5, 3)
    );
    assert_eq!(
        (
            tz.daylight_date.month,
            tz.daylight_date.day,
            tz.daylight_date.hour
        ),
        (3, 5, 2)
    );
    assert_eq!(
        body_text(&e.data),
        Some(
            "Bitte 10 Minuten früher da sein, Versichertenkarte mitbringen. Adresse: \
             Hauptstr. 3; 2. OG"
        )
    );
    let crlf = THUNDERBIRD_ICS.replace('\n', "\r\n");
    assert_eq!(ical_to_event(&crlf, V14).unwrap(), e);
}

#[test]
fn task_round_trip() {
    let it = item(
        "<tasks:Subject>Steuererklärung, endlich</tasks:Subject>
        <tasks:Importance>2</tasks:Importance>
        <tasks:StartDate>2026-11-25T00:00:00.000Z</tasks:StartDate>
        <tasks:UtcStartDate>2026-11-24T23:00:00.000Z</tasks:UtcStartDate>
        <tasks:DueDate>2026-12-01T00:00:00.000Z</tasks:DueDate>
        <tasks:UtcDueDate>2026-11-30T23:00:00.000Z</tasks:UtcDueDate>
        <tasks:Complete>1</tasks:Complete>
        <tasks:DateCompleted>2026-11-28T17:00:00.000Z</tasks:DateCompleted>
        <tasks:Sensitivity>1</tasks:Sensitivity>
        <tasks:ReminderSet>1</tasks:ReminderSet>
        <tasks:ReminderTime>2026-11-30T08:00:00.000Z</tasks:ReminderTime>
        <tasks:Categories><tasks:Category>Büro</tasks:Category></tasks:Categories>
        <tasks:Recurrence><tasks:Type>2</tasks:Type><tasks:Start>2026-11-24T23:00:00.000Z</tasks:Start><tasks:Interval>1</tasks:Interval><tasks:DayOfMonth>25</tasks:DayOfMonth><tasks:Occurrences>12</tasks:Occurrences><tasks:Regenerate>0</tasks:Regenerate><tasks:DeadOccur>0</tasks:DeadOccur></tasks:Recurrence>
        <airsyncbase:Body><airsyncbase:Type>1</airsyncbase:Type><airsyncbase:Data>Belege sammeln</airsyncbase:Data></airsyncbase:Body>",
    );
    let ctx = FromServer {
        server_id: "7:3",
        body: it.body.as_deref(),
        ..FromServer::default()
    };
    let ics = task_to_ical(&it.node, &ctx).unwrap();
    for expected in [
        "BEGIN:VTODO\r\n",
        "PRIORITY:1\r\n",
        "DTSTART:20261124T230000Z\r\n",
        "DUE:20261130T230000Z\r\n",
        "STATUS:COMPLETED\r\n",
        "COMPLETED:20261128T170000Z\r\n",
        "CLASS:X-PERSONAL\r\n",
        "RRULE:FREQ=MONTHLY;BYMONTHDAY=25;INTERVAL=1;COUNT=12\r\n",
        "TRIGGER;VALUE=DATE-TIME:20261130T080000Z\r\n",
    ] {
        assert!(ics.contains(expected), "{expected:?} missing in\n{ics}");
    }
    let back = ical_to_task(&ics, V14).unwrap();
    assert_eq!(back.uid.as_deref(), Some("easync-7:3"));
    assert_eq!(body_text(&back.data), Some("Belege sammeln"));
    assert_same_fields(&it.node, &back.data, &[]);
    assert_writable(&back.data, V14);
    assert_writable(&back.data, V16);
}

#[test]
fn todoman_task_is_read() {
    let ics = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//todoman//EN\nBEGIN:VTODO\n\
               UID:abc@host\nSUMMARY:Milch kaufen\nDUE;VALUE=DATE:20261126\nPRIORITY:0\n\
               STATUS:NEEDS-ACTION\nEND:VTODO\nEND:VCALENDAR\n";
    let t = ical_to_task(ics, V14).unwrap();
    let get = |name: &str| {
        t.data
            .iter()
            .find(|n| n.tag == Tag::named(cp::TASKS, name))
            .and_then(Node::text)
    };
    assert_eq!(get("Subject"), Some("Milch kaufen"));
    assert_eq!(get("DueDate"), Some("2026-11-26T00:00:00.000Z"));
    assert_eq!(get("UtcDueDate"), Some("2026-11-26T00:00:00.000Z"));
    assert_eq!(get("Complete"), Some("0"));
    assert_eq!(get("ReminderSet"), Some("0"));
    assert_eq!(t.uid.as_deref(), Some("abc@host"));
}

#[test]
fn note_round_trip() {
    let it = item(
        "<notes:Subject>Einkauf</notes:Subject>
        <notes:MessageClass>IPM.StickyNote</notes:MessageClass>
        <notes:LastModifiedDate>2026-11-25T09:00:00.000Z</notes:LastModifiedDate>
        <notes:Categories><notes:Category>Privat</notes:Category></notes:Categories>
        <airsyncbase:Body><airsyncbase:Type>1</airsyncbase:Type><airsyncbase:Data>Brot\nÄpfel</airsyncbase:Data></airsyncbase:Body>",
    );
    let ctx = FromServer {
        server_id: "9:1",
        body: it.body.as_deref(),
        ..FromServer::default()
    };
    let text = note_to_text(&it.node, &ctx);
    assert_eq!(
        text,
        "Subject: Einkauf\nCategories: Privat\nMessage-Class: IPM.StickyNote\n\
         Last-Modified: 2026-11-25T09:00:00.000Z\n\nBrot\nÄpfel"
    );
    let back = text_to_note(&text, V16).unwrap();
    assert_same_fields(&it.node, &back.data, &[]);
    assert_eq!(body_text(&back.data), Some("Brot\nÄpfel"));
    assert_writable(&back.data, V16);
}

/// Every prefix of a file, and lines made huge, must give a result or an error: no panic.
#[test]
fn malformed_files_never_panic() {
    let vcard = contact_to_vcard(
        &item("<contacts:FirstName>Ä</contacts:FirstName>").node,
        &FromServer {
            server_id: "1",
            body: Some("n\u{f6}te"),
            picture: Some(PNG_B64),
            ..FromServer::default()
        },
    );
    let it = event_item();
    let ics = event_to_ical(
        &it.node,
        &FromServer {
            server_id: "1",
            ..FromServer::default()
        },
    )
    .unwrap();
    for file in [vcard.as_str(), APPLE_VCARD, ics.as_str(), THUNDERBIRD_ICS] {
        for (i, _) in file.char_indices() {
            let prefix = &file[..i];
            let _ = vcard_to_contact(prefix, V14);
            let _ = ical_to_event(prefix, V16);
            let _ = ical_to_task(prefix, V14);
            let _ = text_to_note(prefix, V14);
        }
    }
    // Truncated files are errors, not half items.
    assert!(ical_to_event(&ics[..ics.len() / 2], V14).is_err());
    assert!(vcard_to_contact(&APPLE_VCARD[..APPLE_VCARD.len() - 12], V14).is_err());
    // A pseudo-random byte soup made of the syntax characters.
    let alphabet: Vec<char> = "BEGIN:VCALENDAREVTODOCARD;=,\"\\\r\n \tZT0123456789-+PÄ🦷"
        .chars()
        .collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let mut s = String::from("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:");
        for _ in 0..64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        let _ = ical_to_event(&s, V14);
        let _ = ical_to_task(&s, V14);
        let _ = vcard_to_contact(&s.replace("VCALENDAR", "VCARD"), V14);
        let _ = parse_content_lines(&s);
    }
    // Huge lines and files are refused.
    let huge = format!(
        "BEGIN:VCARD\nNOTE:{}\nEND:VCARD\n",
        "x".repeat(5 * 1024 * 1024)
    );
    assert!(vcard_to_contact(&huge, V14).is_err());
    let long_value = format!("BEGIN:VCARD\nFN:{}\nEND:VCARD\n", "x".repeat(100_000));
    assert!(vcard_to_contact(&long_value, V14).is_err());
    let many = format!("BEGIN:VCARD\n{}END:VCARD\n", "X-A:b\n".repeat(20_000));
    assert!(vcard_to_contact(&many, V14).is_err());
    let deep = format!("{}{}", "BEGIN:VCALENDAR\n", "BEGIN:X\n".repeat(50));
    assert!(ical_to_event(&deep, V14).is_err());
}

#[test]
fn bad_values_are_errors() {
    let bad_dates = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nDTSTART:20261350T250000Z\nEND:VEVENT\nEND:VCALENDAR\n";
    assert!(ical_to_event(bad_dates, V14).is_err());
    let unknown_tz = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;TZID=Mars/Olympus:20261125T100000\nEND:VEVENT\nEND:VCALENDAR\n";
    assert!(
        ical_to_event(unknown_tz, V14)
            .unwrap_err()
            .to_string()
            .contains("Mars/Olympus")
    );
    let hourly = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261125T100000Z\nRRULE:FREQ=HOURLY\nEND:VEVENT\nEND:VCALENDAR\n";
    assert!(ical_to_event(hourly, V14).is_err());
    let no_event = "BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n";
    assert!(ical_to_event(no_event, V14).is_err());
    assert!(ical_to_task(no_event, V14).is_err());

    let ctx = FromServer {
        server_id: "1",
        ..FromServer::default()
    };
    let bad_tz = item(
        "<calendar:Timezone>%%%notbase64</calendar:Timezone><calendar:StartTime>20261125T090000Z</calendar:StartTime>",
    );
    assert!(event_to_ical(&bad_tz.node, &ctx).is_err());
    let short_tz = item(
        "<calendar:Timezone>AAAA</calendar:Timezone><calendar:StartTime>20261125T090000Z</calendar:StartTime>",
    );
    assert!(event_to_ical(&short_tz.node, &ctx).is_err());
    let bad_start = item("<calendar:StartTime>yesterday</calendar:StartTime>");
    assert!(event_to_ical(&bad_start.node, &ctx).is_err());
    let no_start = item("<calendar:Subject>x</calendar:Subject>");
    assert!(event_to_ical(&no_start.node, &ctx).is_err());
    let bad_rec = item(
        "<calendar:StartTime>20261125T090000Z</calendar:StartTime><calendar:Recurrence><calendar:Type>9</calendar:Type></calendar:Recurrence>",
    );
    assert!(event_to_ical(&bad_rec.node, &ctx).is_err());
    let bad_due = item("<tasks:UtcDueDate>2026-13-01</tasks:UtcDueDate>");
    assert!(task_to_ical(&bad_due.node, &ctx).is_err());
}

/// A Google Calendar export: an all-day weekly series with two cancelled instances (one
/// EXDATE line with a list) and a moved one.
const GOOGLE_ICS: &str = "BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n\
VERSION:2.0\r\nCALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\nBEGIN:VEVENT\r\n\
DTSTART;VALUE=DATE:20260310\r\nDTEND;VALUE=DATE:20260311\r\n\
RRULE:FREQ=WEEKLY;WKST=MO;COUNT=6;BYDAY=TU\r\nEXDATE;VALUE=DATE:20260317,20260324\r\n\
DTSTAMP:20261125T120000Z\r\nUID:0abc123def456@google.com\r\nCLASS:PRIVATE\r\n\
DESCRIPTION:Mitbringen: Badesachen\\, Handtuch\r\nSTATUS:CONFIRMED\r\n\
SUMMARY:Schwimmkurs für Kinder – Gruppe 2\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260401\r\nDTEND;VALUE=DATE:20260402\r\n\
DTSTAMP:20261125T120000Z\r\nUID:0abc123def456@google.com\r\n\
RECURRENCE-ID;VALUE=DATE:20260331\r\nSUMMARY:Schwimmkurs (verschoben)\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

#[test]
fn google_all_day_series_is_read() {
    let e = ical_to_event(GOOGLE_ICS, V14).unwrap();
    let cal = |name: &str| Tag::named(cp::CALENDAR, name);
    let get = |name: &str| {
        e.data
            .iter()
            .find(|n| n.tag == cal(name))
            .and_then(Node::text)
    };
    assert_eq!(get("AllDayEvent"), Some("1"));
    assert_eq!(get("StartTime"), Some("20260310T000000Z"));
    assert_eq!(get("EndTime"), Some("20260311T000000Z"));
    assert_eq!(get("BusyStatus"), Some("0"));
    assert_eq!(get("Sensitivity"), Some("2"));
    assert_eq!(get("Subject"), Some("Schwimmkurs für Kinder – Gruppe 2"));
    let rec = e.data.iter().find(|n| n.tag == cal("Recurrence")).unwrap();
    assert_eq!(rec.child_text(cal("Type")), Some("1"));
    assert_eq!(rec.child_text(cal("DayOfWeek")), Some("4"));
    assert_eq!(rec.child_text(cal("Occurrences")), Some("6"));
    assert_eq!(rec.child_text(cal("FirstDayOfWeek")), Some("1"));
    let ex = e.data.iter().find(|n| n.tag == cal("Exceptions")).unwrap();
    let starts: Vec<&str> = ex
        .children()
        .iter()
        .filter_map(|x| x.child_text(cal("ExceptionStartTime")))
        .collect();
    assert_eq!(
        starts,
        ["20260317T000000Z", "20260324T000000Z", "20260331T000000Z"]
    );
    let moved = &ex.children()[2];
    assert_eq!(moved.child_text(cal("Deleted")), None);
    assert_eq!(moved.child_text(cal("StartTime")), Some("20260401T000000Z"));
    assert_eq!(
        moved.child_text(cal("Subject")),
        Some("Schwimmkurs (verschoben)")
    );
    assert_eq!(body_text(&e.data), Some("Mitbringen: Badesachen, Handtuch"));
    assert_writable(&e.data, V14);
}

/// A Nextcloud/khard-style vCard 4.0: LF line ends, folded lines among multi-byte
/// characters, a folded JPEG PHOTO data URI, a `tel:` URI and an unknown X- property.
#[test]
fn vcard4_with_photo_is_read() {
    let jpeg = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwg";
    let card = format!(
        "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\n\
         FN:Łukasz Żółć\nN:Żółć;Łukasz;;;\nEMAIL;TYPE=work;PREF=2:lz@firma.pl\n\
         EMAIL;TYPE=home;PREF=1:lukasz@dom.pl\nTEL;VALUE=uri;TYPE=\"voice,cell\":tel:+48-600-000-000\n\
         X-UNKNOWN;X-P=1:kept aside\nNOTE:Zażółć gęślą jaźń — to jest długa notatka\\, która zo\n stanie zawinięta.\n\
         PHOTO:data:image/jpeg;base64,{}\n {}\nEND:VCARD\n",
        &jpeg[..40],
        &jpeg[40..]
    );
    let c = vcard_to_contact(&card, V16).unwrap();
    let get = |page: u8, name: &str| {
        c.data
            .iter()
            .find(|n| n.tag == Tag::named(page, name))
            .and_then(Node::text)
    };
    assert_eq!(
        c.uid.as_deref(),
        Some("urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1")
    );
    assert_eq!(get(cp::CONTACTS, "Email1Address"), Some("lukasz@dom.pl"));
    assert_eq!(get(cp::CONTACTS, "Email2Address"), Some("lz@firma.pl"));
    assert_eq!(
        get(cp::CONTACTS, "MobilePhoneNumber"),
        Some("+48-600-000-000")
    );
    assert_eq!(get(cp::CONTACTS, "Picture"), Some(jpeg));
    assert_eq!(get(cp::CONTACTS, "LastName"), Some("Żółć"));
    assert_eq!(
        body_text(&c.data),
        Some("Zażółć gęślą jaźń — to jest długa notatka, która zostanie zawinięta.")
    );
    assert_writable(&c.data, V16);
}

#[test]
fn writing_the_same_task_twice_gives_the_same_bytes() {
    // A task has no DtStamp: the file must still be a pure function of the item, so that
    // applying the same batch twice changes nothing on disk.
    let xml = "<Sync xmlns=\"AirSync:\" xmlns:tasks=\"Tasks:\"><ApplicationData>\
        <tasks:Subject>Twice</tasks:Subject><tasks:Complete>0</tasks:Complete>\
        </ApplicationData></Sync>";
    let doc = easync::wbxml::xml::encode::encode(xml.as_bytes(), Vec::new()).unwrap();
    let mut p = easync::eas::Parser::new(&doc[..], easync::eas::ProtocolVersion::V16_1);
    p.root(easync::wbxml::Tag::named(
        easync::wbxml::tags::cp::AIRSYNC,
        "Sync",
    ))
    .unwrap();
    let child = p.next_child().unwrap().unwrap();
    let node = p.tree(child).unwrap();
    let ctx = easync::store::vcard::FromServer {
        server_id: "7:1",
        uid: None,
        body: None,
        picture: None,
    };
    let first = easync::store::ical::task_to_ical(&node, &ctx).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = easync::store::ical::task_to_ical(&node, &ctx).unwrap();
    assert_eq!(first, second);
}

#[test]
fn an_all_year_utc_zone_is_written_as_utc_times() {
    // SOGo sends a time zone blob of all zeros: UTC with no daylight saving.
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD.encode([0u8; 172]);
    let xml = format!(
        "<Sync xmlns=\"AirSync:\" xmlns:calendar=\"Calendar:\"><ApplicationData>\
         <calendar:Timezone>{blob}</calendar:Timezone>\
         <calendar:StartTime>20261126T090000Z</calendar:StartTime>\
         <calendar:EndTime>20261126T100000Z</calendar:EndTime>\
         <calendar:Subject>Standup</calendar:Subject>\
         </ApplicationData></Sync>"
    );
    let doc = easync::wbxml::xml::encode::encode(xml.as_bytes(), Vec::new()).unwrap();
    let mut p = easync::eas::Parser::new(&doc[..], easync::eas::ProtocolVersion::V14_1);
    p.root(easync::wbxml::Tag::named(
        easync::wbxml::tags::cp::AIRSYNC,
        "Sync",
    ))
    .unwrap();
    let child = p.next_child().unwrap().unwrap();
    let node = p.tree(child).unwrap();
    let ctx = easync::store::vcard::FromServer {
        server_id: "8:1",
        uid: None,
        body: None,
        picture: None,
    };
    let ics = easync::store::ical::event_to_ical(&node, &ctx).unwrap();
    assert!(!ics.contains("VTIMEZONE"), "{ics}");
    assert!(ics.contains("DTSTART:20261126T090000Z"), "{ics}");
    assert!(ics.contains("DTEND:20261126T100000Z"), "{ics}");
}
