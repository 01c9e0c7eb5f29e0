//! The corpus: realistic EAS documents, then one document per code page holding every tag of
//! that page. Built deterministically as trees, written with our `Writer`.

use easync::wbxml::Tag;

use crate::libwbxml::BINARY;
use crate::tree::{Content, Node, Ns};

const AIRSYNC: Ns = Ns("AirSync");
const CONTACTS: Ns = Ns("Contacts");
const EMAIL: Ns = Ns("Email");
const CALENDAR: Ns = Ns("Calendar");
const MOVE: Ns = Ns("Move");
const ESTIMATE: Ns = Ns("GetItemEstimate");
const FOLDERS: Ns = Ns("FolderHierarchy");
const MEETING: Ns = Ns("MeetingResponse");
const TASKS: Ns = Ns("Tasks");
const RESOLVE: Ns = Ns("ResolveRecipients");
const VALIDATE: Ns = Ns("ValidateCert");
const CONTACTS2: Ns = Ns("Contacts2");
const PING: Ns = Ns("Ping");
const PROVISION: Ns = Ns("Provision");
const SEARCH: Ns = Ns("Search");
const GAL: Ns = Ns("GAL");
const BASE: Ns = Ns("AirSyncBase");
const SETTINGS: Ns = Ns("Settings");
const ITEMOPS: Ns = Ns("ItemOperations");
const COMPOSE: Ns = Ns("ComposeMail");
const EMAIL2: Ns = Ns("Email2");
const NOTES: Ns = Ns("Notes");
const RIGHTS: Ns = Ns("RightsManagement");
const FIND: Ns = Ns("Find");

/// Elements holding text, all in one namespace.
fn fields(ns: Ns, pairs: &[(&str, &str)]) -> Vec<Node> {
    pairs
        .iter()
        .map(|&(name, text)| ns.tx(name, text))
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift), every byte value likely.
fn bytes(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// Text with everything XML and libwbxml handle specially.
const NASTY: &str = "Grüße an <alle> & \"jeden\" — 'quoted' ]]> 日本語 😀\r\nZeile 2\tmit Tab\n";

/// Characters at the edges of XML: a byte order mark, Unicode line ends that XML 1.0 leaves
/// alone, DEL, and CRs alone and doubled (XML would fold them into LF).
const EDGES: &str = "\u{FEFF}BOM \u{2028}LS \u{85}NEL \u{7F}DEL a\rb\r\r\nc\r";

fn html_body() -> String {
    let mut s = String::from(
        "<html>\r\n<head><meta charset=\"utf-8\"></head>\r\n<body>\r\n\t<p>Hallo Team,</p>\r\n",
    );
    for i in 0..40 {
        s.push_str(&format!(
            "\t<p>Punkt {i}: Umsatz &gt; Plan &amp; Kosten &lt; Budget — Grüße, Jörg 😀</p>\r\n"
        ));
    }
    s.push_str("</body>\r\n</html>\r\n");
    s
}

/// A MIME message long enough to come through our reader in many pieces.
fn mime_message() -> String {
    let mut s = String::from(
        "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.com>\r\n\
         To: \"Ops <24/7>\" <ops@example.com>\r\n\
         Subject: =?utf-8?b?UmU6IFEzIFphaGxlbg==?=\r\n\
         Date: Fri, 1 Mar 2024 09:15:00 +0100\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1_<&>\"\r\n\r\n\
         --b1_<&>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n",
    );
    for i in 0..300 {
        s.push_str(&format!(
            "Zeile {i:03}: Grüße aus München — Umsatz < Plan & Kosten > Budget\t€ 1.234,56\r\n"
        ));
    }
    s.push_str(
        "--b1_<&>\r\nContent-Type: application/octet-stream\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n--b1_<&>--\r\n",
    );
    s
}

fn sync_response(collection_id: &str, commands: Vec<Node>, after: Vec<Node>) -> Node {
    let collection = [
        vec![
            AIRSYNC.tx("SyncKey", "1587912245"),
            AIRSYNC.tx("CollectionId", collection_id),
            AIRSYNC.tx("Status", "1"),
            AIRSYNC.el("Commands", commands),
        ],
        after,
    ]
    .concat();
    AIRSYNC.el(
        "Sync",
        vec![AIRSYNC.el("Collections", vec![AIRSYNC.el("Collection", collection)])],
    )
}

fn add(server_id: &str, data: Vec<Node>) -> Node {
    AIRSYNC.el(
        "Add",
        vec![
            AIRSYNC.tx("ServerId", server_id),
            AIRSYNC.el("ApplicationData", data),
        ],
    )
}

fn body(kind: &str, data: &str) -> Node {
    BASE.el(
        "Body",
        vec![
            BASE.tx("Type", kind),
            BASE.tx("EstimatedDataSize", data.len().to_string()),
            BASE.tx("Data", data),
        ],
    )
}

fn sync_email() -> Node {
    let message = [
        fields(
            EMAIL,
            &[
                (
                    "To",
                    "\"Jörg Müller\" <joerg@example.com>, \"Ops <24/7>\" <ops@example.com>",
                ),
                ("Cc", "\"Café & Co\" <cafe@example.com>"),
                ("From", "\"Åsa Ødegård\" <asa@example.no>"),
                ("ReplyTo", "\"No Reply\" <noreply@example.com>"),
                ("Subject", "Re: Q3 Zahlen <Entwurf> & Pläne — €1,2 Mio ✓"),
                ("DateReceived", "2024-03-01T09:15:00.000Z"),
                ("DisplayTo", "Jörg Müller; Ops <24/7>"),
                ("ThreadTopic", "Q3 Zahlen"),
                ("Importance", "2"),
                ("Read", "0"),
            ],
        ),
        vec![
            BASE.el(
                "Body",
                vec![
                    BASE.tx("Type", "2"),
                    BASE.tx("EstimatedDataSize", "52344"),
                    BASE.tx("Truncated", "1"),
                    BASE.tx("Data", html_body()),
                    BASE.tx("Preview", "Hallo Team, Punkt 0: Umsatz > Plan & Kosten"),
                ],
            ),
            BASE.el(
                "Attachments",
                vec![
                    BASE.el(
                        "Attachment",
                        fields(
                            BASE,
                            &[
                                ("DisplayName", "Zahlen Q3 <final> & geprüft.xlsx"),
                                ("FileReference", "5%3a1%3a0"),
                                ("Method", "1"),
                                ("EstimatedDataSize", "20480"),
                            ],
                        ),
                    ),
                    BASE.el(
                        "Attachment",
                        fields(
                            BASE,
                            &[
                                ("DisplayName", "logo.png"),
                                ("FileReference", "5%3a1%3a1"),
                                ("Method", "1"),
                                ("EstimatedDataSize", "2048"),
                                ("ContentId", "<logo@example.com>"),
                                ("IsInline", "1"),
                            ],
                        ),
                    ),
                ],
            ),
            EMAIL.tx("MessageClass", "IPM.Note"),
            EMAIL.tx("InternetCPID", "65001"),
            EMAIL.em("Flag"),
            EMAIL.tx("ContentClass", "urn:content-classes:message"),
            BASE.tx("NativeBodyType", "2"),
            EMAIL2.op("ConversationId", bytes(1, 16)),
            EMAIL2.op("ConversationIndex", bytes(2, 22)),
            EMAIL2.tx("ReceivedAsBcc", "0"),
            EMAIL2.tx("Sender", "\"Assistenz\" <assist@example.com>"),
            EMAIL.el(
                "Categories",
                vec![
                    EMAIL.tx("Category", "Rot"),
                    EMAIL.tx("Category", "Wichtig & dringend <heute>"),
                ],
            ),
        ],
    ]
    .concat();
    let flagged = AIRSYNC.el(
        "Change",
        vec![
            AIRSYNC.tx("ServerId", "5:0"),
            AIRSYNC.el(
                "ApplicationData",
                vec![
                    EMAIL.tx("Read", "1"),
                    EMAIL.el(
                        "Flag",
                        vec![
                            EMAIL.tx("Status", "2"),
                            EMAIL.tx("FlagType", "Zur Nachverfolgung"),
                            TASKS.tx("StartDate", "2024-03-04T00:00:00.000Z"),
                            TASKS.tx("UtcStartDate", "2024-03-03T23:00:00.000Z"),
                            TASKS.tx("DueDate", "2024-03-08T00:00:00.000Z"),
                            TASKS.tx("UtcDueDate", "2024-03-07T23:00:00.000Z"),
                            TASKS.tx("ReminderSet", "1"),
                            TASKS.tx("ReminderTime", "2024-03-08T08:00:00.000Z"),
                        ],
                    ),
                    EMAIL2.tx("LastVerbExecuted", "1"),
                    EMAIL2.tx("LastVerbExecutionTime", "2024-03-01T10:00:00.000Z"),
                ],
            ),
        ],
    );
    sync_response(
        "5",
        vec![
            add("5:1", message),
            flagged,
            AIRSYNC.el("Delete", vec![AIRSYNC.tx("ServerId", "5:7")]),
            AIRSYNC.el("SoftDelete", vec![AIRSYNC.tx("ServerId", "5:8")]),
        ],
        vec![AIRSYNC.em("MoreAvailable")],
    )
}

fn sync_email_mime_fetch() -> Node {
    AIRSYNC.el(
        "Sync",
        vec![AIRSYNC.el(
            "Collections",
            vec![AIRSYNC.el(
                "Collection",
                vec![
                    AIRSYNC.tx("SyncKey", "1587912246"),
                    AIRSYNC.tx("CollectionId", "5"),
                    AIRSYNC.tx("Status", "1"),
                    AIRSYNC.el(
                        "Responses",
                        vec![AIRSYNC.el(
                            "Fetch",
                            vec![
                                AIRSYNC.tx("ServerId", "5:1"),
                                AIRSYNC.tx("Status", "1"),
                                AIRSYNC.el(
                                    "ApplicationData",
                                    vec![
                                        EMAIL.tx("Subject", "Re: Q3 Zahlen"),
                                        EMAIL.tx("MessageClass", "IPM.Note"),
                                        body("4", &mime_message()),
                                        BASE.tx("NativeBodyType", "1"),
                                    ],
                                ),
                            ],
                        )],
                    ),
                ],
            )],
        )],
    )
}

fn sync_meeting_request_email() -> Node {
    sync_response(
        "5",
        vec![add(
            "5:20",
            vec![
                EMAIL.tx("To", "<joerg@example.com>"),
                EMAIL.tx("From", "\"Chefin\" <chefin@example.com>"),
                EMAIL.tx("Subject", "Einladung: Planung Q4 <wöchentlich>"),
                EMAIL.tx("DateReceived", "2024-03-02T08:00:00.000Z"),
                EMAIL.tx("Read", "0"),
                EMAIL.tx("MessageClass", "IPM.Schedule.Meeting.Request"),
                EMAIL.el(
                    "MeetingRequest",
                    vec![
                        EMAIL.tx("AllDayEvent", "0"),
                        EMAIL.tx("StartTime", "2024-03-11T09:00:00.000Z"),
                        EMAIL.tx("DtStamp", "2024-03-02T08:00:00.000Z"),
                        EMAIL.tx("EndTime", "2024-03-11T10:00:00.000Z"),
                        EMAIL.tx("InstanceType", "1"),
                        EMAIL.tx("Location", "Raum 3.14 <Nord> & Teams"),
                        EMAIL.tx("Organizer", "\"Chefin\" <chefin@example.com>"),
                        EMAIL.tx("RecurrenceId", "2024-03-11T09:00:00.000Z"),
                        EMAIL.tx("Reminder", "900"),
                        EMAIL.tx("ResponseRequested", "1"),
                        EMAIL.el(
                            "Recurrences",
                            vec![EMAIL.el(
                                "Recurrence",
                                fields(
                                    EMAIL,
                                    &[
                                        ("Type", "1"),
                                        ("Interval", "1"),
                                        ("Until", "2024-06-30T09:00:00.000Z"),
                                        ("DayOfWeek", "2"),
                                    ],
                                ),
                            )],
                        ),
                        EMAIL.tx("Sensitivity", "0"),
                        EMAIL.tx("BusyStatus", "2"),
                        EMAIL.tx(
                            "TimeZone",
                            "xP///1cALgAgAEUAdQByAG8AcABlACAAUwB0AGEAbgBkAGEAcgBkACAAVABpAG0AZQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAKAAAABQADAAAAAAAAAAAAAABXAC4AIABFAHUAcgBvAHAAZQAgAEQAYQB5AGwAaQBnAGgAdAAgAFQAaQBtAGUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAwAAAAUAAgAAAAAAAAAAAMT///8=",
                        ),
                        EMAIL.tx("GlobalObjId", "BAAAAIIA4AB0xbcQGoLgCAAAAAAAAAAAAAAAAAAAAAAAAAAAMQAAAHZDYWwtVWlkAQAAADEyMzQ1AA=="),
                        EMAIL.tx("DisallowNewTimeProposal", "0"),
                    ],
                ),
                EMAIL.tx("InternetCPID", "65001"),
                EMAIL.tx("ContentClass", "urn:content-classes:calendarmessage"),
                EMAIL2.tx("MeetingMessageType", "1"),
                EMAIL2.tx("CalendarType", "1"),
                EMAIL2.tx("IsLeapMonth", "0"),
                EMAIL2.tx("FirstDayOfWeek", "1"),
                EMAIL2.tx("UmCallerID", "+49 89 123456"),
                EMAIL2.tx("UmUserNotes", "Rückruf erbeten <dringend>"),
                EMAIL2.tx("UmAttDuration", "42"),
                EMAIL2.tx("UmAttOrder", "1"),
                EMAIL2.tx("AccountId", "acct-1"),
                EMAIL2.tx("IsDraft", "0"),
                EMAIL2.tx("Bcc", "<geheim@example.com>"),
                RIGHTS.el(
                    "RightsManagementLicense",
                    vec![
                        RIGHTS.tx("Owner", "0"),
                        RIGHTS.tx("ContentOwner", "chefin@example.com"),
                        RIGHTS.tx("EditAllowed", "0"),
                        RIGHTS.tx("ReplyAllowed", "1"),
                        RIGHTS.tx("ReplyAllAllowed", "1"),
                        RIGHTS.tx("ForwardAllowed", "0"),
                        RIGHTS.tx("ModifyRecipientsAllowed", "0"),
                        RIGHTS.tx("ExtractAllowed", "0"),
                        RIGHTS.tx("PrintAllowed", "1"),
                        RIGHTS.tx("ExportAllowed", "0"),
                        RIGHTS.tx("ProgrammaticAccessAllowed", "1"),
                        RIGHTS.tx("ContentExpiryDate", "9999-12-30T23:59:59.999Z"),
                        RIGHTS.tx("TemplateID", "cf5cf348-a8d7-40d5-91ef-a600b88a395d"),
                        RIGHTS.tx("TemplateName", "Vertraulich – nur intern"),
                        RIGHTS.tx("TemplateDescription", "Nur für <Mitarbeiter> & Partner"),
                    ],
                ),
            ],
        )],
        vec![],
    )
}

fn sync_contacts() -> Node {
    let contact = [
        fields(
            CONTACTS,
            &[
                ("FileAs", "Müller, Jörg"),
                ("FirstName", "Jörg"),
                ("MiddleName", "Ünal"),
                ("LastName", "Müller"),
                ("Suffix", "Jr."),
                ("Title", "Dr."),
                ("CompanyName", "Müller & Söhne <GmbH>"),
                ("JobTitle", "Leiter \"Vertrieb\""),
                ("Department", "Vertrieb"),
                ("OfficeLocation", "3.14"),
                ("Email1Address", "\"Jörg Müller\" <joerg@example.com>"),
                ("Email2Address", "joerg.privat@example.net"),
                ("Email3Address", "jm@example.org"),
                ("BusinessPhoneNumber", "+49 89 1234-0"),
                ("Business2PhoneNumber", "+49 89 1234-1"),
                ("BusinessFaxNumber", "+49 89 1234-9"),
                ("MobilePhoneNumber", "+49 170 1234567"),
                ("HomePhoneNumber", "+49 89 765432"),
                ("Home2PhoneNumber", "+49 89 765433"),
                ("HomeFaxNumber", "+49 89 765439"),
                ("CarPhoneNumber", "+49 171 1"),
                ("PagerNumber", "12345"),
                ("RadioPhoneNumber", "4711"),
                ("AssistantName", "Åsa"),
                ("AssistantPhoneNumber", "+49 89 1234-2"),
                ("BusinessAddressStreet", "Hauptstraße 1\r\nHinterhaus, 2. OG"),
                ("BusinessAddressCity", "München"),
                ("BusinessAddressPostalCode", "80331"),
                ("BusinessAddressState", "Bayern"),
                ("BusinessAddressCountry", "Deutschland"),
                ("HomeAddressStreet", "Gartenweg 7"),
                ("HomeAddressCity", "Grünwald"),
                ("HomeAddressPostalCode", "82031"),
                ("HomeAddressState", "Bayern"),
                ("HomeAddressCountry", "Deutschland"),
                ("OtherAddressStreet", "Fjellveien 2"),
                ("OtherAddressCity", "Tromsø"),
                ("OtherAddressPostalCode", "9010"),
                ("OtherAddressState", "Troms"),
                ("OtherAddressCountry", "Norge"),
                ("Birthday", "1970-05-17T11:59:00.000Z"),
                ("Anniversary", "1999-09-09T11:59:00.000Z"),
                ("Spouse", "Anna"),
                ("WebPage", "https://example.com/?a=1&b=<2>"),
                ("YomiFirstName", "ヨルク"),
                ("YomiLastName", "ミュラー"),
                ("YomiCompanyName", "ミュラー"),
            ],
        ),
        vec![
            CONTACTS.el(
                "Children",
                vec![CONTACTS.tx("Child", "Lena"), CONTACTS.tx("Child", "Tom")],
            ),
            CONTACTS.el("Categories", vec![CONTACTS.tx("Category", "Kunden & Partner")]),
            CONTACTS.tx("Picture", "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="),
            body("1", NASTY),
            BASE.tx("NativeBodyType", "1"),
        ],
        fields(
            CONTACTS2,
            &[
                ("CustomerId", "K-0815"),
                ("GovernmentId", "DE-12 345 678"),
                ("IMAddress", "xmpp:joerg@example.com"),
                ("IMAddress2", "sip:joerg@example.com"),
                ("IMAddress3", "skype:joerg.mueller"),
                ("ManagerName", "Chefin"),
                ("CompanyMainPhone", "+49 89 1234-0"),
                ("AccountName", "jmueller"),
                ("NickName", "Jö"),
                ("MMS", "+49 170 1234567"),
            ],
        ),
    ]
    .concat();
    sync_response(
        "2",
        vec![
            add("2:1", contact),
            add(
                "2:2",
                vec![
                    CONTACTS.tx("FileAs", "Ødegård, Åsa"),
                    CONTACTS.tx("FirstName", "Åsa"),
                    CONTACTS.tx("LastName", "Ødegård"),
                    CONTACTS.tx("Email1Address", "asa@example.no"),
                ],
            ),
        ],
        vec![],
    )
}

fn attendee(email: &str, name: &str, status: &str, kind: &str) -> Node {
    CALENDAR.el(
        "Attendee",
        fields(
            CALENDAR,
            &[
                ("Email", email),
                ("Name", name),
                ("AttendeeStatus", status),
                ("AttendeeType", kind),
            ],
        ),
    )
}

fn sync_calendar() -> Node {
    let event = vec![
        CALENDAR.tx("Timezone", "xP///1cALgAgAEUAdQByAG8AcABlACAAUwB0AGEAbgBkAGEAcgBkACAAVABpAG0AZQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAKAAAABQADAAAAAAAAAAAAAABXAC4AIABFAHUAcgBvAHAAZQAgAEQAYQB5AGwAaQBnAGgAdAAgAFQAaQBtAGUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAwAAAAUAAgAAAAAAAAAAAMT///8="),
        CALENDAR.tx("AllDayEvent", "0"),
        CALENDAR.tx("StartTime", "20240311T090000Z"),
        CALENDAR.tx("EndTime", "20240311T100000Z"),
        CALENDAR.tx("DtStamp", "20240302T080000Z"),
        CALENDAR.tx("Subject", "Planung Q4 <wöchentlich> & offen"),
        CALENDAR.tx("UID", "040000008200E00074C5B7101A82E00800000000"),
        CALENDAR.tx("OrganizerName", "Chefin"),
        CALENDAR.tx("OrganizerEmail", "chefin@example.com"),
        BASE.el(
            "Location",
            fields(
                BASE,
                &[
                    ("DisplayName", "Raum 3.14 <Nord>"),
                    ("Annotation", "2. OG, links"),
                    ("Street", "Hauptstraße 1"),
                    ("City", "München"),
                    ("State", "Bayern"),
                    ("Country", "Deutschland"),
                    ("PostalCode", "80331"),
                    ("Latitude", "48.137154"),
                    ("Longitude", "11.576124"),
                    ("Accuracy", "10"),
                    ("Altitude", "519"),
                    ("AltitudeAccuracy", "5"),
                    ("LocationUri", "geo:48.137154,11.576124"),
                ],
            ),
        ),
        CALENDAR.el(
            "Attendees",
            vec![
                attendee("joerg@example.com", "Jörg Müller", "3", "1"),
                attendee("asa@example.no", "Åsa Ødegård", "5", "2"),
                attendee("raum314@example.com", "Raum 3.14 <Nord>", "0", "3"),
            ],
        ),
        CALENDAR.el(
            "Recurrence",
            fields(
                CALENDAR,
                &[
                    ("Type", "1"),
                    ("Interval", "1"),
                    ("DayOfWeek", "2"),
                    ("Until", "20240630T090000Z"),
                    ("FirstDayOfWeek", "1"),
                ],
            ),
        ),
        CALENDAR.el(
            "Exceptions",
            vec![
                CALENDAR.el(
                    "Exception",
                    vec![
                        CALENDAR.tx("Deleted", "1"),
                        CALENDAR.tx("ExceptionStartTime", "20240318T090000Z"),
                    ],
                ),
                CALENDAR.el(
                    "Exception",
                    vec![
                        CALENDAR.tx("ExceptionStartTime", "20240325T090000Z"),
                        CALENDAR.tx("Subject", "Planung Q4 (verschoben!)"),
                        CALENDAR.tx("StartTime", "20240326T140000Z"),
                        CALENDAR.tx("EndTime", "20240326T150000Z"),
                        CALENDAR.tx("DtStamp", "20240320T080000Z"),
                        CALENDAR.tx("BusyStatus", "1"),
                        CALENDAR.tx("MeetingStatus", "1"),
                        CALENDAR.tx("Reminder", "5"),
                        body("1", "Ausnahme: Dienstag statt Montag.\r\n"),
                        CALENDAR.el(
                            "Attendees",
                            vec![attendee("joerg@example.com", "Jörg Müller", "2", "1")],
                        ),
                        CALENDAR.tx("AppointmentReplyTime", "20240320T090000Z"),
                        CALENDAR.tx("ResponseType", "3"),
                    ],
                ),
            ],
        ),
        CALENDAR.tx("Reminder", "15"),
        CALENDAR.tx("Sensitivity", "0"),
        CALENDAR.tx("BusyStatus", "2"),
        CALENDAR.tx("MeetingStatus", "3"),
        CALENDAR.tx("ResponseRequested", "1"),
        CALENDAR.tx("ResponseType", "3"),
        CALENDAR.tx("AppointmentReplyTime", "20240302T090000Z"),
        CALENDAR.tx("DisallowNewTimeProposal", "0"),
        CALENDAR.tx("OnlineMeetingConfLink", "sip:chefin@example.com;gruu;opaque=app:conf:focus:id:ABC"),
        CALENDAR.tx("OnlineMeetingExternalLink", "https://meet.example.com/chefin/ABC?x=1&y=<2>"),
        CALENDAR.el(
            "Categories",
            vec![CALENDAR.tx("Category", "Planung"), CALENDAR.tx("Category", "Q4")],
        ),
        body("1", NASTY),
        BASE.tx("NativeBodyType", "1"),
    ];
    let all_day = vec![
        CALENDAR.tx("AllDayEvent", "1"),
        CALENDAR.tx("StartTime", "20240501T000000Z"),
        CALENDAR.tx("EndTime", "20240502T000000Z"),
        CALENDAR.tx("Subject", "Tag der Arbeit"),
        CALENDAR.el(
            "Recurrence",
            fields(
                CALENDAR,
                &[
                    ("Type", "5"),
                    ("Interval", "1"),
                    ("DayOfMonth", "1"),
                    ("MonthOfYear", "5"),
                    ("Occurrences", "10"),
                    ("CalendarType", "1"),
                    ("IsLeapMonth", "0"),
                ],
            ),
        ),
        CALENDAR.el(
            "Recurrence",
            fields(
                CALENDAR,
                &[("Type", "3"), ("WeekOfMonth", "2"), ("DayOfWeek", "4")],
            ),
        ),
        CALENDAR.tx("BusyStatus", "0"),
        CALENDAR.tx("Sensitivity", "2"),
    ];
    sync_response("3", vec![add("3:1", event), add("3:2", all_day)], vec![])
}

fn sync_tasks() -> Node {
    let weekly = [
        fields(
            TASKS,
            &[
                ("Subject", "Bericht <Q3> & Anhänge prüfen"),
                ("Importance", "2"),
                ("UtcStartDate", "2024-03-03T23:00:00.000Z"),
                ("StartDate", "2024-03-04T00:00:00.000Z"),
                ("UtcDueDate", "2024-03-07T23:00:00.000Z"),
                ("DueDate", "2024-03-08T00:00:00.000Z"),
            ],
        ),
        vec![
            TASKS.el("Categories", vec![TASKS.tx("Category", "Büro")]),
            TASKS.el(
                "Recurrence",
                fields(
                    TASKS,
                    &[
                        ("Type", "1"),
                        ("Start", "2024-03-04T00:00:00.000Z"),
                        ("Until", "2024-12-30T00:00:00.000Z"),
                        ("Interval", "1"),
                        ("DayOfWeek", "2"),
                        ("Regenerate", "0"),
                        ("DeadOccur", "0"),
                        ("FirstDayOfWeek", "1"),
                    ],
                ),
            ),
        ],
        fields(
            TASKS,
            &[
                ("Complete", "0"),
                ("Sensitivity", "0"),
                ("ReminderSet", "1"),
                ("ReminderTime", "2024-03-08T08:00:00.000Z"),
            ],
        ),
        vec![body("1", NASTY)],
    ]
    .concat();
    let yearly = vec![
        TASKS.tx("Subject", "Steuererklärung"),
        TASKS.tx("Complete", "1"),
        TASKS.tx("DateCompleted", "2024-05-31T12:00:00.000Z"),
        TASKS.el(
            "Recurrence",
            fields(
                TASKS,
                &[
                    ("Type", "5"),
                    ("Start", "2024-05-31T00:00:00.000Z"),
                    ("Occurrences", "5"),
                    ("Interval", "1"),
                    ("DayOfMonth", "31"),
                    ("MonthOfYear", "5"),
                    ("WeekOfMonth", "5"),
                    ("CalendarType", "1"),
                    ("IsLeapMonth", "0"),
                ],
            ),
        ),
        TASKS.tx("OrdinalDate", "2024-05-31T00:00:00.000Z"),
        TASKS.tx("SubOrdinalDate", "0"),
        TASKS.tx("ReminderSet", "0"),
    ];
    sync_response("4", vec![add("4:1", weekly), add("4:2", yearly)], vec![])
}

fn sync_notes() -> Node {
    sync_response(
        "6",
        vec![
            add(
                "6:1",
                vec![
                    body(
                        "1",
                        "Einkaufsliste:\r\n\t- Brot & Butter\r\n\t- Käse <alt>\r\n",
                    ),
                    NOTES.tx("Subject", "Einkaufsliste"),
                    NOTES.tx("MessageClass", "IPM.StickyNote"),
                    NOTES.tx("LastModifiedDate", "2024-03-01T18:30:00.000Z"),
                    NOTES.el("Categories", vec![NOTES.tx("Category", "Privat")]),
                ],
            ),
            add(
                "6:2",
                vec![
                    // Whitespace is the value: nothing may trim it.
                    body("1", "\r\n"),
                    NOTES.tx("Subject", "   "),
                    NOTES.tx("MessageClass", " IPM.StickyNote\t"),
                    NOTES.el("Categories", vec![NOTES.tx("Category", EDGES)]),
                ],
            ),
        ],
        vec![],
    )
}

fn sync_request() -> Node {
    let email = AIRSYNC.el(
        "Collection",
        vec![
            AIRSYNC.tx("SyncKey", "1587912245"),
            AIRSYNC.tx("CollectionId", "5"),
            AIRSYNC.tx("DeletesAsMoves", "1"),
            AIRSYNC.em("GetChanges"),
            AIRSYNC.tx("WindowSize", "100"),
            AIRSYNC.el(
                "Options",
                vec![
                    AIRSYNC.tx("FilterType", "3"),
                    AIRSYNC.tx("Conflict", "1"),
                    AIRSYNC.tx("MIMESupport", "2"),
                    AIRSYNC.tx("MIMETruncation", "8"),
                    BASE.el(
                        "BodyPreference",
                        vec![
                            BASE.tx("Type", "2"),
                            BASE.tx("TruncationSize", "51200"),
                            BASE.tx("AllOrNone", "0"),
                            BASE.tx("Preview", "255"),
                        ],
                    ),
                    BASE.el(
                        "BodyPartPreference",
                        vec![BASE.tx("Type", "2"), BASE.tx("TruncationSize", "4096")],
                    ),
                    RIGHTS.tx("RightsManagementSupport", "1"),
                ],
            ),
            AIRSYNC.el(
                "Commands",
                vec![
                    AIRSYNC.el(
                        "Change",
                        vec![
                            AIRSYNC.tx("ServerId", "5:1"),
                            AIRSYNC.el("ApplicationData", vec![EMAIL.tx("Read", "1")]),
                        ],
                    ),
                    AIRSYNC.el("Delete", vec![AIRSYNC.tx("ServerId", "5:2")]),
                    AIRSYNC.el("Fetch", vec![AIRSYNC.tx("ServerId", "5:3")]),
                ],
            ),
        ],
    );
    let contacts = AIRSYNC.el(
        "Collection",
        vec![
            AIRSYNC.tx("SyncKey", "77"),
            AIRSYNC.tx("CollectionId", "2"),
            AIRSYNC.el(
                "Commands",
                vec![
                    AIRSYNC.el(
                        "Add",
                        vec![
                            AIRSYNC.tx("ClientId", "c-1"),
                            AIRSYNC.el(
                                "ApplicationData",
                                vec![
                                    CONTACTS.tx("FirstName", "Zoë"),
                                    CONTACTS.tx("LastName", "O'Brien & Söhne"),
                                    CONTACTS.tx("MobilePhoneNumber", "+353 87 123 4567"),
                                    body("1", "Kennengelernt auf der <Messe>\r\n"),
                                ],
                            ),
                        ],
                    ),
                    AIRSYNC.el(
                        "Change",
                        vec![
                            AIRSYNC.tx("ServerId", "2:1"),
                            AIRSYNC.el(
                                "ApplicationData",
                                vec![
                                    CONTACTS.tx("FirstName", "Jörg"),
                                    // Clearing fields: an empty string, and categories
                                    // with content but nothing in it.
                                    CONTACTS.tx("MiddleName", ""),
                                    CONTACTS.el("Categories", vec![]),
                                ],
                            ),
                        ],
                    ),
                ],
            ),
        ],
    );
    let calendar = AIRSYNC.el(
        "Collection",
        vec![
            AIRSYNC.tx("SyncKey", "12"),
            AIRSYNC.tx("CollectionId", "3"),
            AIRSYNC.el(
                "Commands",
                vec![AIRSYNC.el(
                    "Add",
                    vec![
                        AIRSYNC.tx("ClientId", "c-2"),
                        AIRSYNC.el(
                            "ApplicationData",
                            vec![
                                CALENDAR.tx("Subject", "Zahnarzt"),
                                CALENDAR.tx("StartTime", "20240320T073000Z"),
                                CALENDAR.tx("EndTime", "20240320T080000Z"),
                                CALENDAR.tx("ClientUid", "c2-uid-7f3a"),
                                BASE.tx("InstanceId", "20240320T073000Z"),
                                BASE.el(
                                    "Location",
                                    vec![BASE.tx("DisplayName", "Praxis Dr. Ömer")],
                                ),
                            ],
                        ),
                    ],
                )],
            ),
        ],
    );
    AIRSYNC.el(
        "Sync",
        vec![
            AIRSYNC.el("Collections", vec![email, contacts, calendar]),
            AIRSYNC.tx("Wait", "10"),
            AIRSYNC.tx("WindowSize", "512"),
        ],
    )
}

fn sync_draft_request() -> Node {
    // 16.0 drafts: an email added by the client, with attachments added and deleted.
    AIRSYNC.el(
        "Sync",
        vec![AIRSYNC.el(
            "Collections",
            vec![AIRSYNC.el(
                "Collection",
                vec![
                    AIRSYNC.tx("SyncKey", "9"),
                    AIRSYNC.tx("CollectionId", "7"),
                    AIRSYNC.el(
                        "Commands",
                        vec![AIRSYNC.el(
                            "Add",
                            vec![
                                AIRSYNC.tx("ClientId", "draft-1"),
                                AIRSYNC.el(
                                    "ApplicationData",
                                    vec![
                                        EMAIL.tx("To", "ops@example.com"),
                                        EMAIL.tx("Subject", "Entwurf: <bitte prüfen>"),
                                        EMAIL2.tx("Bcc", "chefin@example.com"),
                                        EMAIL2.tx("IsDraft", "1"),
                                        EMAIL2.em("Send"),
                                        body("1", "Entwurf\r\n"),
                                        BASE.el(
                                            "Attachments",
                                            vec![
                                                BASE.el(
                                                    "Add",
                                                    vec![
                                                        BASE.tx("ClientId", "att-1"),
                                                        BASE.tx("Method", "1"),
                                                        BASE.op("Content", bytes(3, 700)),
                                                        BASE.tx("DisplayName", "scan.pdf"),
                                                        BASE.tx("ContentType", "application/pdf"),
                                                    ],
                                                ),
                                                BASE.el(
                                                    "Delete",
                                                    vec![BASE.tx("FileReference", "7%3a1%3a0")],
                                                ),
                                            ],
                                        ),
                                    ],
                                ),
                            ],
                        )],
                    ),
                ],
            )],
        )],
    )
}

fn device_information() -> Node {
    SETTINGS.el(
        "DeviceInformation",
        vec![SETTINGS.el(
            "Set",
            fields(
                SETTINGS,
                &[
                    ("Model", "Gerät <Modell> & Co"),
                    ("IMEI", "356938035643809"),
                    ("FriendlyName", "Jörgs Telefon"),
                    ("OS", "Linux 6.1 (embedded)"),
                    ("OSLanguage", "Deutsch"),
                    ("PhoneNumber", "+49 170 1234567"),
                    ("UserAgent", "easync/0.1"),
                    ("EnableOutboundSMS", "0"),
                    ("MobileOperator", "Telekom"),
                ],
            ),
        )],
    )
}

fn provision_request() -> Node {
    PROVISION.el(
        "Provision",
        vec![
            device_information(),
            PROVISION.el(
                "Policies",
                vec![PROVISION.el(
                    "Policy",
                    vec![PROVISION.tx("PolicyType", "MS-EAS-Provisioning-WBXML")],
                )],
            ),
        ],
    )
}

fn provision_response() -> Node {
    let mut doc = fields(
        PROVISION,
        &[
            ("DevicePasswordEnabled", "1"),
            ("AlphanumericDevicePasswordRequired", "1"),
            ("RequireStorageCardEncryption", "0"),
            ("PasswordRecoveryEnabled", "1"),
            ("AttachmentsEnabled", "1"),
            ("MinDevicePasswordLength", "6"),
            ("MaxInactivityTimeDeviceLock", "900"),
            ("MaxDevicePasswordFailedAttempts", "8"),
        ],
    );
    doc.extend([
        PROVISION.em("MaxAttachmentSize"),
        PROVISION.tx("AllowSimpleDevicePassword", "0"),
        PROVISION.em("DevicePasswordExpiration"),
    ]);
    doc.extend(fields(
        PROVISION,
        &[
            ("DevicePasswordHistory", "5"),
            ("AllowStorageCard", "1"),
            ("AllowCamera", "1"),
            ("RequireDeviceEncryption", "1"),
            ("AllowUnsignedApplications", "0"),
            ("AllowUnsignedInstallationPackages", "0"),
            ("MinDevicePasswordComplexCharacters", "3"),
            ("AllowWiFi", "1"),
            ("AllowTextMessaging", "1"),
            ("AllowPOPIMAPEmail", "0"),
            ("AllowBluetooth", "2"),
            ("AllowIrDA", "0"),
            ("RequireManualSyncWhenRoaming", "1"),
            ("AllowDesktopSync", "1"),
            ("MaxCalendarAgeFilter", "4"),
            ("AllowHTMLEmail", "1"),
            ("MaxEmailAgeFilter", "3"),
            ("MaxEmailBodyTruncationSize", "-1"),
            ("MaxEmailHTMLBodyTruncationSize", "-1"),
            ("RequireSignedSMIMEMessages", "0"),
            ("RequireEncryptedSMIMEMessages", "0"),
            ("RequireSignedSMIMEAlgorithm", "0"),
            ("RequireEncryptionSMIMEAlgorithm", "0"),
            ("AllowSMIMEEncryptionAlgorithmNegotiation", "2"),
            ("AllowSMIMESoftCerts", "1"),
            ("AllowBrowser", "1"),
            ("AllowConsumerEmail", "1"),
            ("AllowRemoteDesktop", "0"),
            ("AllowInternetSharing", "0"),
        ],
    ));
    doc.extend([
        PROVISION.el(
            "UnapprovedInROMApplicationList",
            vec![
                PROVISION.tx("ApplicationName", "Solitär <Classic>"),
                PROVISION.tx("ApplicationName", "Spiele & Spaß"),
            ],
        ),
        PROVISION.em("ApprovedApplicationList"),
    ]);
    PROVISION.el(
        "Provision",
        vec![
            PROVISION.tx("Status", "1"),
            SETTINGS.el("DeviceInformation", vec![SETTINGS.tx("Status", "1")]),
            PROVISION.el(
                "Policies",
                vec![PROVISION.el(
                    "Policy",
                    vec![
                        PROVISION.tx("PolicyType", "MS-EAS-Provisioning-WBXML"),
                        PROVISION.tx("Status", "1"),
                        PROVISION.tx("PolicyKey", "1307199584"),
                        PROVISION.el("Data", vec![PROVISION.el("EASProvisionDoc", doc)]),
                    ],
                )],
            ),
        ],
    )
}

fn provision_acknowledgement() -> Node {
    PROVISION.el(
        "Provision",
        vec![PROVISION.el(
            "Policies",
            vec![PROVISION.el(
                "Policy",
                fields(
                    PROVISION,
                    &[
                        ("PolicyType", "MS-EAS-Provisioning-WBXML"),
                        ("PolicyKey", "1307199584"),
                        ("Status", "1"),
                    ],
                ),
            )],
        )],
    )
}

fn remote_wipe() -> Node {
    PROVISION.el(
        "Provision",
        vec![PROVISION.tx("Status", "1"), PROVISION.em("RemoteWipe")],
    )
}

fn remote_wipe_acknowledgement() -> Node {
    PROVISION.el(
        "Provision",
        vec![PROVISION.el("RemoteWipe", vec![PROVISION.tx("Status", "1")])],
    )
}

fn folder(kind: &str, server_id: &str, parent: &str, name: &str, folder_type: &str) -> Node {
    FOLDERS.el(
        kind,
        fields(
            FOLDERS,
            &[
                ("ServerId", server_id),
                ("ParentId", parent),
                ("DisplayName", name),
                ("Type", folder_type),
            ],
        ),
    )
}

fn folder_sync() -> Node {
    FOLDERS.el(
        "FolderSync",
        vec![
            FOLDERS.tx("Status", "1"),
            FOLDERS.tx("SyncKey", "3"),
            FOLDERS.el(
                "Changes",
                vec![
                    FOLDERS.tx("Count", "6"),
                    folder("Add", "5", "0", "Posteingang", "2"),
                    folder("Add", "7", "0", "Entwürfe", "3"),
                    folder("Add", "9", "5", "Rechnungen <2024> & Belege", "12"),
                    folder("Add", "10", "0", "日本語フォルダ", "1"),
                    folder("Update", "9", "0", "Rechnungen 2024", "12"),
                    FOLDERS.el("Delete", vec![FOLDERS.tx("ServerId", "11")]),
                ],
            ),
        ],
    )
}

fn folder_create() -> Node {
    FOLDERS.el(
        "FolderCreate",
        fields(
            FOLDERS,
            &[
                ("SyncKey", "3"),
                ("ParentId", "5"),
                ("DisplayName", "Neu: <Projekte> & Ideen"),
                ("Type", "12"),
            ],
        ),
    )
}

fn ping_request() -> Node {
    let f =
        |id: &str, class: &str| PING.el("Folder", vec![PING.tx("Id", id), PING.tx("Class", class)]);
    PING.el(
        "Ping",
        vec![
            PING.tx("HeartbeatInterval", "900"),
            PING.el(
                "Folders",
                vec![
                    f("5", "Email"),
                    f("2", "Contacts"),
                    f("3", "Calendar"),
                    f("4", "Tasks"),
                ],
            ),
        ],
    )
}

fn ping_response() -> Node {
    PING.el(
        "Ping",
        vec![
            PING.tx("Status", "2"),
            PING.el(
                "Folders",
                vec![PING.tx("Folder", "5"), PING.tx("Folder", "3")],
            ),
        ],
    )
}

fn item_operations_fetch() -> Node {
    // A text attachment as an opaque value (libwbxml prints it raw and reads it back from a
    // CDATA section, so it has no CR: see `dialect.rs`).
    let attachment = "Quartalszahlen Q3\n\tUmsatz: <1,2 Mio €> & steigend\n\tKosten: > Plan 😀\n";
    ITEMOPS.el(
        "ItemOperations",
        vec![
            ITEMOPS.tx("Status", "1"),
            ITEMOPS.el(
                "Response",
                vec![
                    ITEMOPS.el(
                        "Fetch",
                        vec![
                            ITEMOPS.tx("Status", "1"),
                            BASE.tx("FileReference", "5%3a1%3a0"),
                            ITEMOPS.el(
                                "Properties",
                                vec![
                                    BASE.tx("ContentType", "text/plain; charset=utf-8"),
                                    ITEMOPS.tx("Range", "0-63"),
                                    ITEMOPS.tx("Total", attachment.len().to_string()),
                                    ITEMOPS.op("Data", attachment.as_bytes()),
                                    ITEMOPS.tx("Version", "2024-03-01T09:15:00.000Z"),
                                ],
                            ),
                        ],
                    ),
                    ITEMOPS.el(
                        "Fetch",
                        vec![
                            ITEMOPS.tx("Status", "1"),
                            BASE.tx("FileReference", "5%3a1%3a2"),
                            ITEMOPS.el(
                                "Properties",
                                vec![
                                    BASE.tx("ContentType", "application/octet-stream"),
                                    ITEMOPS.tx("Total", "0"),
                                    // An empty file.
                                    ITEMOPS.op("Data", Vec::new()),
                                ],
                            ),
                        ],
                    ),
                    ITEMOPS.el(
                        "Fetch",
                        vec![
                            ITEMOPS.tx("Status", "1"),
                            AIRSYNC.tx("CollectionId", "5"),
                            AIRSYNC.tx("ServerId", "5:1"),
                            AIRSYNC.tx("Class", "Email"),
                            ITEMOPS.el(
                                "Properties",
                                vec![
                                    EMAIL.tx("Subject", "Re: Q3 Zahlen"),
                                    body("2", &html_body()),
                                    ITEMOPS.tx("Part", "1"),
                                ],
                            ),
                        ],
                    ),
                ],
            ),
        ],
    )
}

fn item_operations_request() -> Node {
    ITEMOPS.el(
        "ItemOperations",
        vec![
            ITEMOPS.el(
                "Fetch",
                vec![
                    ITEMOPS.tx("Store", "Mailbox"),
                    BASE.tx("FileReference", "5%3a1%3a0"),
                    ITEMOPS.el(
                        "Options",
                        vec![
                            ITEMOPS.tx("Range", "0-1023"),
                            ITEMOPS.tx("UserName", "domain\\jörg"),
                            ITEMOPS.tx("Password", "p<a>&ss\"wörd"),
                        ],
                    ),
                ],
            ),
            ITEMOPS.el(
                "EmptyFolderContents",
                vec![
                    AIRSYNC.tx("CollectionId", "8"),
                    ITEMOPS.el("Options", vec![ITEMOPS.em("DeleteSubFolders")]),
                ],
            ),
            ITEMOPS.el(
                "Move",
                vec![
                    ITEMOPS.op("ConversationId", bytes(4, 16)),
                    ITEMOPS.tx("DstFldId", "9"),
                    ITEMOPS.el("Options", vec![ITEMOPS.em("MoveAlways")]),
                ],
            ),
        ],
    )
}

fn settings_request() -> Node {
    SETTINGS.el(
        "Settings",
        vec![
            SETTINGS.el(
                "Oof",
                vec![SETTINGS.el("Get", vec![SETTINGS.tx("BodyType", "Text")])],
            ),
            device_information(),
            SETTINGS.el("UserInformation", vec![SETTINGS.em("Get")]),
            SETTINGS.el("RightsManagementInformation", vec![SETTINGS.em("Get")]),
            SETTINGS.el(
                "DevicePassword",
                vec![SETTINGS.el("Set", vec![SETTINGS.tx("Password", "Geh<eim>&1234 ü")])],
            ),
        ],
    )
}

fn oof_message(audience: &str, enabled: &str, text: &str) -> Node {
    SETTINGS.el(
        "OofMessage",
        vec![
            SETTINGS.em(audience),
            SETTINGS.tx("Enabled", enabled),
            SETTINGS.tx("ReplyMessage", text),
            SETTINGS.tx("BodyType", "TEXT"),
        ],
    )
}

fn settings_response() -> Node {
    SETTINGS.el(
        "Settings",
        vec![
            SETTINGS.tx("Status", "1"),
            SETTINGS.el(
                "Oof",
                vec![
                    SETTINGS.tx("Status", "1"),
                    SETTINGS.el(
                        "Get",
                        vec![
                            SETTINGS.tx("OofState", "2"),
                            SETTINGS.tx("StartTime", "2024-04-01T00:00:00.000Z"),
                            SETTINGS.tx("EndTime", "2024-05-03T00:00:00.000Z"),
                            oof_message(
                                "AppliesToInternal",
                                "1",
                                "Ich bin bis 3.5. nicht im Büro.\r\nIn dringenden Fällen: <ops@example.com> & Team.\r\n",
                            ),
                            oof_message("AppliesToExternalKnown", "1", NASTY),
                            oof_message("AppliesToExternalUnknown", "0", ""),
                        ],
                    ),
                ],
            ),
            SETTINGS.el("DeviceInformation", vec![SETTINGS.tx("Status", "1")]),
            SETTINGS.el(
                "UserInformation",
                vec![
                    SETTINGS.tx("Status", "1"),
                    SETTINGS.el(
                        "Get",
                        vec![SETTINGS.el(
                            "Accounts",
                            vec![SETTINGS.el(
                                "Account",
                                vec![
                                    SETTINGS.tx("AccountId", "acct-1"),
                                    SETTINGS.tx("AccountName", "Jörg Müller"),
                                    SETTINGS.tx("UserDisplayName", "Jörg Müller <Vertrieb>"),
                                    SETTINGS.tx("SendDisabled", "0"),
                                    SETTINGS.el(
                                        "EmailAddresses",
                                        vec![
                                            SETTINGS.tx("SMTPAddress", "joerg@example.com"),
                                            SETTINGS.tx("SMTPAddress", "jm@example.com"),
                                            SETTINGS.tx(
                                                "PrimarySmtpAddress",
                                                "joerg@example.com",
                                            ),
                                        ],
                                    ),
                                ],
                            )],
                        )],
                    ),
                ],
            ),
            SETTINGS.el(
                "RightsManagementInformation",
                vec![
                    SETTINGS.tx("Status", "1"),
                    SETTINGS.el(
                        "Get",
                        vec![RIGHTS.el(
                            "RightsManagementTemplates",
                            vec![RIGHTS.el(
                                "RightsManagementTemplate",
                                fields(
                                    RIGHTS,
                                    &[
                                        ("TemplateID", "cf5cf348-a8d7-40d5-91ef-a600b88a395d"),
                                        ("TemplateName", "Nicht weiterleiten"),
                                        (
                                            "TemplateDescription",
                                            "Empfänger dürfen <nicht> weiterleiten & drucken",
                                        ),
                                    ],
                                ),
                            )],
                        )],
                    ),
                ],
            ),
            SETTINGS.el("DevicePassword", vec![SETTINGS.tx("Status", "1")]),
        ],
    )
}

/// A MIME message with 8-bit ISO-8859-1 text: bytes that are not UTF-8.
fn mime_bytes() -> Vec<u8> {
    let mut m = b"From: joerg@example.com\r\nTo: \"Ops <24/7>\" <ops@example.com>\r\n\
                  Subject: Gr=?iso-8859-1?q?=FC=DFe?=\r\nMIME-Version: 1.0\r\n\
                  Content-Type: text/plain; charset=iso-8859-1\r\n\
                  Content-Transfer-Encoding: 8bit\r\n\r\n"
        .to_vec();
    for _ in 0..50 {
        m.extend_from_slice(b"Gr\xFC\xDFe aus M\xFCnchen <&> \xA4 \x00\x01\xFF\r\n");
    }
    m
}

fn send_mail() -> Node {
    COMPOSE.el(
        "SendMail",
        vec![
            COMPOSE.tx("ClientId", "send-1"),
            COMPOSE.tx("AccountId", "acct-1"),
            COMPOSE.em("SaveInSentItems"),
            COMPOSE.op("Mime", mime_bytes()),
        ],
    )
}

fn smart_forward() -> Node {
    COMPOSE.el(
        "SmartForward",
        vec![
            COMPOSE.tx("ClientId", "fwd-1"),
            COMPOSE.el(
                "Source",
                vec![
                    COMPOSE.tx("FolderId", "5"),
                    COMPOSE.tx("ItemId", "5:1"),
                    COMPOSE.tx("InstanceId", "2024-03-11T09:00:00.000Z"),
                ],
            ),
            COMPOSE.em("SaveInSentItems"),
            COMPOSE.em("ReplaceMime"),
            COMPOSE.el(
                "Forwardees",
                vec![COMPOSE.el(
                    "Forwardee",
                    vec![
                        COMPOSE.tx("ForwardeeName", "Åsa Ødegård"),
                        COMPOSE.tx("ForwardeeEmail", "asa@example.no"),
                    ],
                )],
            ),
            COMPOSE.op("Mime", mime_message().into_bytes()),
        ],
    )
}

fn smart_reply_and_status() -> Node {
    COMPOSE.el(
        "SmartReply",
        vec![
            COMPOSE.tx("ClientId", "re-1"),
            COMPOSE.el("Source", vec![COMPOSE.tx("LongId", "RgAAAAD3x%2bK<&>")]),
            COMPOSE.op("Mime", b"Subject: Re\r\n\r\nOK\r\n".to_vec()),
            COMPOSE.tx("Status", "120"),
        ],
    )
}

fn get_item_estimate() -> Node {
    let estimate = |id: &str, n: &str| {
        ESTIMATE.el(
            "Response",
            vec![
                ESTIMATE.tx("Status", "1"),
                ESTIMATE.el(
                    "Collection",
                    vec![ESTIMATE.tx("CollectionId", id), ESTIMATE.tx("Estimate", n)],
                ),
            ],
        )
    };
    ESTIMATE.el(
        "GetItemEstimate",
        vec![estimate("5", "42"), estimate("2", "0")],
    )
}

fn get_item_estimate_request() -> Node {
    ESTIMATE.el(
        "GetItemEstimate",
        vec![ESTIMATE.el(
            "Collections",
            vec![ESTIMATE.el(
                "Collection",
                vec![
                    AIRSYNC.tx("SyncKey", "1587912245"),
                    ESTIMATE.tx("CollectionId", "5"),
                    AIRSYNC.el("Options", vec![AIRSYNC.tx("FilterType", "3")]),
                ],
            )],
        )],
    )
}

fn move_items() -> Node {
    MOVE.el(
        "MoveItems",
        vec![
            MOVE.el(
                "Move",
                fields(
                    MOVE,
                    &[("SrcMsgId", "5:1"), ("SrcFldId", "5"), ("DstFldId", "9")],
                ),
            ),
            MOVE.el(
                "Response",
                fields(
                    MOVE,
                    &[("SrcMsgId", "5:2"), ("Status", "3"), ("DstMsgId", "9:1")],
                ),
            ),
        ],
    )
}

fn meeting_response() -> Node {
    MEETING.el(
        "MeetingResponse",
        vec![
            MEETING.el(
                "Request",
                vec![
                    MEETING.tx("UserResponse", "1"),
                    MEETING.tx("CollectionId", "5"),
                    MEETING.tx("RequestId", "5:20"),
                    MEETING.tx("InstanceId", "2024-03-11T09:00:00.000Z"),
                    MEETING.el("SendResponse", vec![body("1", "Gerne! <Jörg>\r\n")]),
                ],
            ),
            MEETING.el(
                "Result",
                vec![
                    MEETING.tx("RequestId", "5:20"),
                    MEETING.tx("Status", "1"),
                    MEETING.tx("CalendarId", "3:9"),
                ],
            ),
        ],
    )
}

fn search_gal() -> Node {
    let person = |name: &str, mail: &str, picture: Node| {
        let mut properties = fields(
            GAL,
            &[
                ("DisplayName", name),
                ("Phone", "+49 89 1234-0"),
                ("Office", "3.14 <Nord>"),
                ("Title", "Leitung & Planung"),
                ("Company", "Müller & Söhne"),
                ("Alias", "jmueller"),
                ("FirstName", "Jörg"),
                ("LastName", "Müller"),
                ("HomePhone", "+49 89 765432"),
                ("MobilePhone", "+49 170 1234567"),
                ("EmailAddress", mail),
            ],
        );
        properties.push(picture);
        SEARCH.el("Result", vec![SEARCH.el("Properties", properties)])
    };
    SEARCH.el(
        "Search",
        vec![
            SEARCH.tx("Status", "1"),
            SEARCH.el(
                "Response",
                vec![SEARCH.el(
                    "Store",
                    vec![
                        SEARCH.tx("Status", "1"),
                        person(
                            "Jörg Müller",
                            "joerg@example.com",
                            GAL.el(
                                "Picture",
                                vec![GAL.tx("Status", "1"), GAL.op("Data", bytes(5, 300))],
                            ),
                        ),
                        person(
                            "Jörg Müller (Privat)",
                            "joerg.privat@example.net",
                            GAL.el("Picture", vec![GAL.tx("Status", "173")]),
                        ),
                        SEARCH.tx("Range", "0-1"),
                        SEARCH.tx("Total", "2"),
                    ],
                )],
            ),
        ],
    )
}

fn search_mailbox() -> Node {
    SEARCH.el(
        "Search",
        vec![SEARCH.el(
            "Store",
            vec![
                SEARCH.tx("Name", "Mailbox"),
                SEARCH.el(
                    "Query",
                    vec![SEARCH.el(
                        "And",
                        vec![
                            AIRSYNC.tx("Class", "Email"),
                            AIRSYNC.tx("CollectionId", "5"),
                            SEARCH.tx("FreeText", "Rechnung <2024> & Mahnung"),
                            SEARCH.el(
                                "GreaterThan",
                                vec![
                                    EMAIL.em("DateReceived"),
                                    SEARCH.tx("Value", "2024-01-01T00:00:00.000Z"),
                                ],
                            ),
                            SEARCH.el(
                                "LessThan",
                                vec![
                                    EMAIL.em("DateReceived"),
                                    SEARCH.tx("Value", "2024-12-31T00:00:00.000Z"),
                                ],
                            ),
                            SEARCH.el(
                                "EqualTo",
                                vec![
                                    SEARCH.tx("ConversationId", "AAQkADAwATM0MDAAMS0xYmQ2"),
                                    SEARCH.tx("Value", "x"),
                                ],
                            ),
                        ],
                    )],
                ),
                SEARCH.el(
                    "Options",
                    vec![
                        SEARCH.em("RebuildResults"),
                        SEARCH.em("DeepTraversal"),
                        SEARCH.tx("Range", "0-9"),
                        SEARCH.tx("UserName", "jmueller"),
                        SEARCH.tx("Password", "p<a>&ss"),
                        BASE.el(
                            "BodyPreference",
                            vec![BASE.tx("Type", "1"), BASE.tx("TruncationSize", "5120")],
                        ),
                        SEARCH.el(
                            "Picture",
                            vec![
                                SEARCH.tx("MaxSize", "102400"),
                                SEARCH.tx("MaxPictures", "5"),
                            ],
                        ),
                    ],
                ),
            ],
        )],
    )
}

fn search_mailbox_response() -> Node {
    SEARCH.el(
        "Search",
        vec![
            SEARCH.tx("Status", "1"),
            SEARCH.el(
                "Response",
                vec![SEARCH.el(
                    "Store",
                    vec![
                        SEARCH.tx("Status", "1"),
                        SEARCH.el(
                            "Result",
                            vec![
                                AIRSYNC.tx("Class", "Email"),
                                SEARCH.tx("LongId", "RgAAAAD3x%2bK"),
                                AIRSYNC.tx("CollectionId", "5"),
                                SEARCH.el(
                                    "Properties",
                                    vec![
                                        EMAIL.tx("Subject", "Rechnung <2024-03> & Mahnung"),
                                        EMAIL.tx("DateReceived", "2024-03-05T10:00:00.000Z"),
                                        body("1", NASTY),
                                        SEARCH.op("ConversationId", bytes(6, 16)),
                                    ],
                                ),
                            ],
                        ),
                        SEARCH.tx("Range", "0-0"),
                        SEARCH.tx("Total", "1"),
                    ],
                )],
            ),
        ],
    )
}

fn resolve_recipients() -> Node {
    RESOLVE.el(
        "ResolveRecipients",
        vec![
            RESOLVE.tx("Status", "1"),
            RESOLVE.el(
                "Response",
                vec![
                    RESOLVE.tx("To", "jörg"),
                    RESOLVE.tx("Status", "1"),
                    RESOLVE.tx("RecipientCount", "1"),
                    RESOLVE.el(
                        "Recipient",
                        vec![
                            RESOLVE.tx("Type", "1"),
                            RESOLVE.tx("DisplayName", "Jörg Müller <Vertrieb>"),
                            RESOLVE.tx("EmailAddress", "joerg@example.com"),
                            RESOLVE.el(
                                "Availability",
                                vec![
                                    RESOLVE.tx("Status", "1"),
                                    RESOLVE.tx("MergedFreeBusy", "0022200000"),
                                ],
                            ),
                            RESOLVE.el(
                                "Certificates",
                                vec![
                                    RESOLVE.tx("Status", "1"),
                                    RESOLVE.tx("CertificateCount", "1"),
                                    RESOLVE.tx("RecipientCount", "1"),
                                    RESOLVE.tx("Certificate", "MIIBszCCAVmgAwIBAgIUQ0VSVA=="),
                                    RESOLVE.tx("MiniCertificate", "MIIBAQ=="),
                                ],
                            ),
                            RESOLVE.el(
                                "Picture",
                                vec![RESOLVE.tx("Status", "1"), RESOLVE.op("Data", bytes(7, 64))],
                            ),
                        ],
                    ),
                ],
            ),
        ],
    )
}

fn resolve_recipients_request() -> Node {
    RESOLVE.el(
        "ResolveRecipients",
        vec![
            RESOLVE.tx("To", "jörg"),
            RESOLVE.tx("To", "asa@example.no"),
            RESOLVE.el(
                "Options",
                vec![
                    RESOLVE.tx("CertificateRetrieval", "2"),
                    RESOLVE.tx("MaxCertificates", "5"),
                    RESOLVE.tx("MaxAmbiguousRecipients", "10"),
                    RESOLVE.el(
                        "Availability",
                        vec![
                            RESOLVE.tx("StartTime", "2024-03-11T00:00:00.000Z"),
                            RESOLVE.tx("EndTime", "2024-03-12T00:00:00.000Z"),
                        ],
                    ),
                    RESOLVE.el(
                        "Picture",
                        vec![
                            RESOLVE.tx("MaxSize", "65536"),
                            RESOLVE.tx("MaxPictures", "2"),
                        ],
                    ),
                ],
            ),
        ],
    )
}

fn validate_cert() -> Node {
    VALIDATE.el(
        "ValidateCert",
        vec![
            VALIDATE.el(
                "CertificateChain",
                vec![VALIDATE.tx(
                    "Certificate",
                    "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa",
                )],
            ),
            VALIDATE.el(
                "Certificates",
                vec![VALIDATE.tx("Certificate", "MIIBszCCAVmgAwIBAgIUQ0VSVA==")],
            ),
            VALIDATE.tx("CheckCRL", "1"),
            VALIDATE.tx("Status", "1"),
        ],
    )
}

// --- 16.1 ------------------------------------------------------------------------------

fn find_request() -> Node {
    FIND.el(
        "Find",
        vec![
            FIND.tx("SearchId", "8b3b1c2e-0000-4f00-9c8e-5e1d2b3a4c5d"),
            FIND.el(
                "ExecuteSearch",
                vec![
                    FIND.el(
                        "MailBoxSearchCriterion",
                        vec![
                            FIND.el(
                                "Query",
                                vec![
                                    AIRSYNC.tx("Class", "Email"),
                                    AIRSYNC.tx("CollectionId", "5"),
                                    FIND.tx("FreeText", "Q3 <Zahlen> & Pläne"),
                                ],
                            ),
                            FIND.el(
                                "Options",
                                vec![FIND.tx("Range", "0-99"), FIND.em("DeepTraversal")],
                            ),
                        ],
                    ),
                    FIND.el(
                        "GalSearchCriterion",
                        vec![
                            FIND.el("Query", vec![FIND.tx("FreeText", "Müller")]),
                            FIND.el(
                                "Options",
                                vec![
                                    FIND.tx("Range", "0-9"),
                                    FIND.el(
                                        "Picture",
                                        vec![
                                            FIND.tx("MaxSize", "65536"),
                                            FIND.tx("MaxPictures", "3"),
                                        ],
                                    ),
                                ],
                            ),
                        ],
                    ),
                ],
            ),
        ],
    )
}

fn find_response() -> Node {
    FIND.el(
        "Find",
        vec![
            FIND.tx("Status", "1"),
            FIND.el(
                "Response",
                vec![
                    ITEMOPS.tx("Store", "Mailbox"),
                    FIND.tx("Status", "1"),
                    FIND.el(
                        "Result",
                        vec![
                            AIRSYNC.tx("Class", "Email"),
                            AIRSYNC.tx("ServerId", "5:1"),
                            AIRSYNC.tx("CollectionId", "5"),
                            FIND.el(
                                "Properties",
                                vec![
                                    EMAIL.tx("Subject", "Re: Q3 Zahlen <Entwurf> & Pläne"),
                                    EMAIL.tx("DateReceived", "2024-03-01T09:15:00.000Z"),
                                    EMAIL.tx("DisplayTo", "Jörg Müller"),
                                    FIND.tx("DisplayCc", "Café & Co"),
                                    FIND.tx("DisplayBcc", ""),
                                    EMAIL.tx("Importance", "1"),
                                    EMAIL.tx("Read", "1"),
                                    EMAIL2.tx("IsDraft", "0"),
                                    FIND.tx("Preview", NASTY),
                                    FIND.tx("HasAttachments", "1"),
                                    EMAIL.tx("From", "\"Åsa Ødegård\" <asa@example.no>"),
                                    BASE.el("Body", vec![BASE.tx("Type", "1")]),
                                    EMAIL2.op("ConversationId", bytes(8, 16)),
                                    FIND.el(
                                        "Picture",
                                        vec![GAL.tx("Status", "1"), GAL.op("Data", bytes(9, 40))],
                                    ),
                                ],
                            ),
                        ],
                    ),
                    FIND.tx("Range", "0-0"),
                    FIND.tx("Total", "1"),
                ],
            ),
        ],
    )
}

fn provision_account_only_wipe() -> Node {
    PROVISION.el(
        "Provision",
        vec![
            PROVISION.tx("Status", "1"),
            PROVISION.em("AccountOnlyRemoteWipe"),
        ],
    )
}

fn provision_account_only_wipe_acknowledgement() -> Node {
    PROVISION.el(
        "Provision",
        vec![PROVISION.el("AccountOnlyRemoteWipe", vec![PROVISION.tx("Status", "1")])],
    )
}

fn meeting_response_proposal() -> Node {
    MEETING.el(
        "MeetingResponse",
        vec![MEETING.el(
            "Request",
            vec![
                MEETING.tx("UserResponse", "2"),
                MEETING.tx("CollectionId", "5"),
                MEETING.tx("RequestId", "5:20"),
                MEETING.el(
                    "SendResponse",
                    vec![
                        body("1", "Lieber eine Stunde später? <Jörg>\r\n"),
                        MEETING.tx("ProposedStartTime", "2024-03-11T10:00:00.000Z"),
                        MEETING.tx("ProposedEndTime", "2024-03-11T11:00:00.000Z"),
                    ],
                ),
            ],
        )],
    )
}

/// The realistic documents, with names for the scratch files and messages.
pub fn realistic() -> Vec<(&'static str, Node)> {
    vec![
        ("sync-email", sync_email()),
        ("sync-email-mime-fetch", sync_email_mime_fetch()),
        ("sync-meeting-request-email", sync_meeting_request_email()),
        ("sync-contacts", sync_contacts()),
        ("sync-calendar", sync_calendar()),
        ("sync-tasks", sync_tasks()),
        ("sync-notes", sync_notes()),
        ("sync-request", sync_request()),
        ("sync-draft-request", sync_draft_request()),
        ("provision-request", provision_request()),
        ("provision-response", provision_response()),
        ("provision-acknowledgement", provision_acknowledgement()),
        ("remote-wipe", remote_wipe()),
        ("remote-wipe-acknowledgement", remote_wipe_acknowledgement()),
        ("folder-sync", folder_sync()),
        ("folder-create", folder_create()),
        ("ping-request", ping_request()),
        ("ping-response", ping_response()),
        ("itemoperations-fetch", item_operations_fetch()),
        ("itemoperations-request", item_operations_request()),
        ("settings-request", settings_request()),
        ("settings-response", settings_response()),
        ("sendmail", send_mail()),
        ("smartforward", smart_forward()),
        ("smartreply", smart_reply_and_status()),
        ("getitemestimate", get_item_estimate()),
        ("getitemestimate-request", get_item_estimate_request()),
        ("moveitems", move_items()),
        ("meetingresponse", meeting_response()),
        ("search-gal", search_gal()),
        ("search-mailbox", search_mailbox()),
        ("search-mailbox-response", search_mailbox_response()),
        ("resolverecipients", resolve_recipients()),
        ("resolverecipients-request", resolve_recipients_request()),
        ("validatecert", validate_cert()),
        ("16.1-find-request", find_request()),
        ("16.1-find-response", find_response()),
        (
            "16.1-provision-account-only-wipe",
            provision_account_only_wipe(),
        ),
        (
            "16.1-provision-account-only-wipe-ack",
            provision_account_only_wipe_acknowledgement(),
        ),
        ("16.1-meetingresponse-proposal", meeting_response_proposal()),
    ]
}

/// One document per code page holding every tag of that page four ways (as a container of
/// the other three: with text, without content, with an opaque value), under an AirSync
/// `Sync` root.
pub fn every_tag() -> Vec<(String, Node)> {
    easync::wbxml::tags::PAGES
        .iter()
        .map(|page| {
            let children = page
                .tags
                .iter()
                .map(|def| {
                    let tag = Tag::new(page.number, def.token);
                    let leaf = |content| Node { tag, content };
                    let text = format!("{}:{} {NASTY}", page.name, def.name);
                    // Text only LF (libwbxml reads opaque data outside its binary tags from a
                    // CDATA section, where a CR cannot survive); binary tags get every byte.
                    let opaque = if BINARY.contains(&(page.name, def.name)) {
                        (0..=255).collect()
                    } else {
                        format!("{}:{} <&>\n\t€😀 ", page.name, def.name).into_bytes()
                    };
                    leaf(Content::Children(vec![
                        leaf(Content::Text(text)),
                        leaf(Content::Empty),
                        leaf(Content::Opaque(opaque)),
                    ]))
                })
                .collect();
            let root = Node {
                tag: AIRSYNC.tag("Sync"),
                content: Content::Children(children),
            };
            (format!("page-{:02}-{}", page.number, page.name), root)
        })
        .collect()
}
